/**
 * One bash driven like a reader's terminal: commands are sent one at a time on its stdin, each
 * writes to output files of its own, and a line on fd 3 says it has finished, so the test can
 * wait for what a reader would wait for between two commands. `set -euo pipefail`: the first
 * command that fails ends the shell. bash leads a process group of its own, and what commands
 * start in the background (`&`) stays in it, so `kill` ends all of it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import readline from 'node:readline';
import type { Readable } from 'node:stream';
import { waitFor } from '../../harness/wait.js';

export interface CommandOutput {
  readonly stdout: string;
  readonly stderr: string;
}

export class ShellSession {
  private readonly finished = new Map<number, () => void>();
  private readonly exited: Promise<number | null>;
  private stderr = '';
  private next = 0;

  private constructor(
    private readonly child: ChildProcess,
    private readonly outDir: string,
  ) {
    readline.createInterface({ input: child.stdio[3] as Readable }).on('line', (line) => this.finished.get(Number(line))?.());
    child.stderr!.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    const killOnExit = () => this.signalGroup('SIGKILL');
    process.once('exit', killOnExit);
    void this.exited.then(() => process.off('exit', killOnExit));
  }

  /** bash in `cwd` with exactly `env`; each command's output goes to files under `outDir`. */
  static start(opts: { cwd: string; env: NodeJS.ProcessEnv; outDir: string }): ShellSession {
    const child = spawn('bash', ['--noprofile', '--norc'], {
      cwd: opts.cwd,
      env: opts.env,
      detached: true,
      stdio: ['pipe', 'ignore', 'pipe', 'pipe'],
    });
    const session = new ShellSession(child, opts.outDir);
    child.stdin!.write('set -euo pipefail\n');
    return session;
  }

  /**
   * Runs `text` (one complete command, possibly several lines) and resolves with what it printed
   * once it has finished; rejects if it fails (the shell exits) or runs past `timeoutMs`.
   */
  async run(text: string, timeoutMs: number): Promise<CommandOutput> {
    const n = this.next++;
    const { out, err } = this.files(n);
    const done = new Promise<void>((resolve) => this.finished.set(n, resolve));
    // stdin from /dev/null: a command must not read the commands that follow it. fd 3 closed: only
    // the shell itself reports on it.
    this.child.stdin!.write(`{\n${text}\n} </dev/null >'${out}' 2>'${err}' 3>&-\necho ${n} >&3\n`);
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      done.then(() => 'done' as const),
      this.exited.then((code) => ({ code })),
      new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs))),
    ]);
    clearTimeout(timer);
    this.finished.delete(n);
    const output = { stdout: await readOrEmpty(out), stderr: await readOrEmpty(err) };
    if (outcome === 'done') return output;
    const why = outcome === 'timeout' ? `still running after ${timeoutMs} ms` : `exited with code ${outcome.code}`;
    throw new Error(`${why}\n--- stdout ---\n${output.stdout}\n--- stderr ---\n${output.stderr}${this.stderr ? `\n--- bash ---\n${this.stderr}` : ''}`);
  }

  /** What the last command and whatever it left in the background have printed so far. */
  async lastOutput(): Promise<CommandOutput> {
    const { out, err } = this.files(this.next - 1);
    return { stdout: await readOrEmpty(out), stderr: await readOrEmpty(err) };
  }

  private files(n: number): { out: string; err: string } {
    return { out: path.join(this.outDir, `${n}.out`), err: path.join(this.outDir, `${n}.err`) };
  }

  /** Kills the shell and everything it started; resolves once none of them is left. */
  async kill(): Promise<void> {
    this.child.stdin!.end();
    this.signalGroup('SIGKILL');
    await waitFor(() => !this.signalGroup(0), { timeoutMs: 10_000, message: `process group ${this.child.pid} to be gone` });
  }

  /** Sends `signal` to the shell's process group; false when the group no longer exists. */
  private signalGroup(signal: NodeJS.Signals | 0): boolean {
    try {
      process.kill(-this.child.pid!, signal);
      return true;
    } catch {
      return false;
    }
  }
}

async function readOrEmpty(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    return '';
  }
}
