/**
 * Child processes for multi-process tests (routers, sample app instances, CLIs): line-split
 * output capture, waiting for a line, and no leftovers — everything spawned through
 * `processes` is stopped when the test file ends (an afterAll registered on import).
 *
 *   const app = await startSampleApp({ app: 'mango', name: 'mango-1', release: 'v1' });
 *   const router = await startRouter({ etcdEndpoints, prefix, id: 'r1' });
 *   await fetch(`${router.url}/`, { headers: { host: 'www.mango.com' } });
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeEach } from 'vitest';
import { freePorts } from './ports.js';
import { waitForHttp } from './wait.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SAMPLE_APP = `${REPO_ROOT}test/apps/sample-app.mjs`;
const ROUTER_BIN = `${REPO_ROOT}packages/router/bin/paas-router.js`;
const ROUTER_BUILD = `${REPO_ROOT}packages/router/dist/main.js`;

export type Stream = 'stdout' | 'stderr';

export interface SpawnOptions {
  /** Shown in errors and logs (default: the command's base name). */
  name?: string;
  cwd?: string;
  /** Added to (and overriding) this process's environment. */
  env?: Record<string, string | undefined>;
}

export interface ManagedProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number | undefined;
  /** Every complete line printed so far, per stream. */
  readonly stdout: readonly string[];
  readonly stderr: readonly string[];
  readonly running: boolean;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /**
   * Resolves with the first line (already printed or still to come) that `predicate` accepts.
   * Rejects when the process exits first or after timeoutMs (default 10 000), quoting its output.
   */
  waitForLine(predicate: (line: string, stream: Stream) => boolean, opts?: { timeoutMs?: number; stream?: Stream }): Promise<string>;
  /** SIGTERM (or `signal`), SIGKILL after timeoutMs (default 5 000); resolves once exited. */
  stop(opts?: { signal?: NodeJS.Signals; timeoutMs?: number }): Promise<void>;
  /** Sends a signal without waiting (SIGSTOP to freeze, SIGKILL to crash...). */
  kill(signal?: NodeJS.Signals): void;
  /** The last lines of both streams, for error messages. */
  tail(lines?: number): string;
  /** True once the test sent it a signal (stop or kill): an exit after that was asked for. */
  readonly signalled: boolean;
}

/** If the worker itself dies, no child outlives it. */
const liveChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

/** What each process that exited without being asked (and not with 0) printed last: a failed test's first clue. */
const unaskedExits: string[] = [];

/** A set of spawned processes that are stopped together. */
export class ProcessGroup {
  private readonly members = new Set<ManagedProcess>();

  spawn(command: string, args: string[], opts: SpawnOptions = {}): ManagedProcess {
    const proc = spawnManaged(command, args, opts);
    this.members.add(proc);
    liveChildren.add(proc.child);
    void proc.exited.then(({ code, signal }) => {
      this.members.delete(proc);
      liveChildren.delete(proc.child);
      if (!proc.signalled && code !== 0) unaskedExits.push(`--- ${proc.name} exited by itself (code ${code}, signal ${signal}) ---\n${proc.tail()}`);
    });
    return proc;
  }

  /** Stops every process of the group still running (SIGTERM, then SIGKILL). */
  async stopAll(): Promise<void> {
    await Promise.all([...this.members].map((proc) => proc.stop()));
  }
}

/** The group of the current test file: stopped automatically when the file ends. */
export const processes = new ProcessGroup();

try {
  afterAll(() => processes.stopAll());
  // A router that crashed shows up in a test as a refused port; its own last lines say why.
  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => {
      for (const exit of unaskedExits) console.error(exit);
    });
  });
} catch {
  // Imported outside a vitest test file: whoever spawns stops processes with stopAll().
}

export interface SampleApp {
  port: number;
  /** http://127.0.0.1:<port> */
  url: string;
  proc: ManagedProcess;
}

/** Starts test/apps/sample-app.mjs on a free port; resolves once it prints {"event":"listening"}. */
export async function startSampleApp(opts: {
  app: string;
  name: string;
  release?: string;
  unhealthy?: boolean;
  group?: ProcessGroup;
}): Promise<SampleApp> {
  const args = [SAMPLE_APP, '--port', '0', '--app', opts.app, '--name', opts.name, '--release', opts.release ?? 'v1'];
  if (opts.unhealthy) args.push('--unhealthy');
  const proc = (opts.group ?? processes).spawn(process.execPath, args, { name: `sample-app ${opts.name}` });
  const line = await proc.waitForLine((l, stream) => stream === 'stdout' && l.includes('"listening"'));
  const { port } = JSON.parse(line) as { port: number };
  return { port, url: `http://127.0.0.1:${port}`, proc };
}

export interface RouterProcess {
  port: number;
  adminPort: number;
  /** http://127.0.0.1:<port>: send requests here with a Host header. */
  url: string;
  /** http://127.0.0.1:<adminPort>: /healthz, /readyz, /metrics, /status. */
  adminUrl: string;
  proc: ManagedProcess;
}

/**
 * What may serve client HTTP/1.1 connections (--client-parser): suites that cover client
 * connections run once per value, as the upstream-client ones do per client.
 */
export const CLIENT_PARSERS = ['native', 'node'] as const;
export type ClientParser = (typeof CLIENT_PARSERS)[number];

/**
 * Starts `paas-router` (packages/router/bin/paas-router.js; build it first) on free loopback
 * ports and resolves once GET /readyz answers 200, i.e. it applied its first load from etcd.
 */
export async function startRouter(opts: {
  etcdEndpoints: string[];
  prefix: string;
  id: string;
  extraArgs?: string[];
  env?: Record<string, string | undefined>;
  /** How long to wait for /readyz (default 20 000 ms). */
  readyTimeoutMs?: number;
  group?: ProcessGroup;
}): Promise<RouterProcess> {
  if (!existsSync(ROUTER_BUILD)) {
    throw new Error(`the router is not built (${ROUTER_BUILD} is missing): run \`pnpm build\``);
  }
  // A port picked free can be taken before the router binds it: pick again then.
  for (let attempt = 1; ; attempt++) {
    const [port, adminPort] = (await freePorts(2)) as [number, number];
    const args = [
      ROUTER_BIN,
      '--etcd', opts.etcdEndpoints.join(','),
      '--prefix', opts.prefix,
      '--listen', `127.0.0.1:${port}`,
      '--admin', `127.0.0.1:${adminPort}`,
      '--id', opts.id,
      // A stopping router leaves each idle client connection open until the keep-alive timeout
      // it announced (10 s by default), and tests keep their clients' pools open: a short one
      // keeps every stop in the suite within the harness's stop timeout.
      ...(opts.extraArgs?.includes('--client-keepalive-timeout') ? [] : ['--client-keepalive-timeout', '2s']),
      ...(opts.extraArgs ?? []),
    ];
    const proc = (opts.group ?? processes).spawn(process.execPath, args, { name: `router ${opts.id}`, env: opts.env });
    const adminUrl = `http://127.0.0.1:${adminPort}`;
    const exited = new AbortController();
    void proc.exited.then(({ code, signal }) =>
      exited.abort(new Error(`router ${opts.id} exited (code ${code}, signal ${signal}) before /readyz said 200:\n${proc.tail()}`)),
    );
    try {
      await waitForHttp(`${adminUrl}/readyz`, (a) => a.status === 200, {
        timeoutMs: opts.readyTimeoutMs ?? 20_000,
        signal: exited.signal,
        message: `router ${opts.id} to be ready`,
      });
      return { port, adminPort, url: `http://127.0.0.1:${port}`, adminUrl, proc };
    } catch (err) {
      await proc.stop();
      if (attempt < 3 && proc.tail().includes('EADDRINUSE')) continue;
      throw new Error(`${err instanceof Error ? err.message : String(err)}\n--- router ${opts.id} output ---\n${proc.tail()}`);
    }
  }
}

function spawnManaged(command: string, args: string[], opts: SpawnOptions): ManagedProcess {
  const name = opts.name ?? command.split('/').at(-1) ?? command;
  const child = spawn(command, args, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<Stream, string[]> = { stdout: [], stderr: [] };
  const both: string[] = [];
  const lineListeners = new Set<(line: string, stream: Stream) => void>();
  for (const stream of ['stdout', 'stderr'] as const) {
    readline.createInterface({ input: child[stream]! }).on('line', (line) => {
      lines[stream].push(line);
      both.push(`[${stream}] ${line}`);
      for (const listener of lineListeners) listener(line, stream);
    });
  }
  let running = true;
  let signalled = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    // 'close' rather than 'exit': by then every line the process printed has been read.
    child.once('close', (code, signal) => {
      running = false;
      resolve({ code, signal });
    });
    child.once('error', (err) => {
      running = false;
      both.push(`[spawn] ${err.message}`);
      resolve({ code: null, signal: null });
    });
  });
  const tail = (n = 40) => both.slice(-n).join('\n');

  return {
    name,
    child,
    get pid() {
      return child.pid;
    },
    stdout: lines.stdout,
    stderr: lines.stderr,
    get running() {
      return running;
    },
    exited,
    tail,
    get signalled() {
      return signalled;
    },
    kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (!running) return;
      signalled ||= signal !== 'SIGSTOP' && signal !== 'SIGCONT';
      child.kill(signal);
    },
    async stop({ signal = 'SIGTERM', timeoutMs = 5_000 } = {}) {
      if (!running) return;
      signalled = true;
      child.kill(signal);
      child.kill('SIGCONT'); // a SIGSTOPped process handles the signal only once it runs again
      const killTimer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(killTimer);
    },
    waitForLine(predicate, { timeoutMs = 10_000, stream } = {}) {
      const accepts = (line: string, s: Stream) => (stream === undefined || s === stream) && predicate(line, s);
      for (const s of ['stdout', 'stderr'] as const) {
        const found = lines[s].find((line) => accepts(line, s));
        if (found !== undefined) return Promise.resolve(found);
      }
      return new Promise<string>((resolve, reject) => {
        const cleanup = () => {
          clearTimeout(timer);
          lineListeners.delete(onLine);
        };
        const onLine = (line: string, s: Stream) => {
          if (!accepts(line, s)) return;
          cleanup();
          resolve(line);
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`${name}: no matching line within ${timeoutMs} ms. Output:\n${tail()}`));
        }, timeoutMs);
        lineListeners.add(onLine);
        void exited.then(({ code, signal }) => {
          if (!lineListeners.has(onLine)) return;
          cleanup();
          reject(new Error(`${name} exited (code ${code}, signal ${signal}) before printing the awaited line. Output:\n${tail()}`));
        });
      });
    },
  };
}
