/**
 * One etcd server process, as the single-member harness (etcd.ts) and the cluster harness
 * (etcd-cluster.ts) run it: spawned with the tail of its output kept for error messages,
 * watched until it exits, stopped with SIGTERM (SIGKILL after 10 s), and killed with the worker.
 */
import { spawn, type ChildProcess } from 'node:child_process';

/** Children still running when the worker exits are killed, so no etcd outlives its test run. */
const liveChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

export class EtcdServerProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private output: string[] = [];

  constructor(
    /** Names the process in errors, e.g. "etcd" or "etcd member m1". */
    private readonly label: string,
    private readonly etcdBin: string,
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  /**
   * Spawns etcd with `args`. The returned signal aborts, with the reason and the output's tail,
   * if the process exits or cannot be run: give it to the wait for the process to be healthy.
   */
  spawn(args: string[]): AbortSignal {
    const child = spawn(this.etcdBin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    liveChildren.add(child);
    this.output = [];
    const keep = (chunk: Buffer) => {
      this.output.push(chunk.toString());
      if (this.output.length > 50) this.output.shift();
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const exitedEarly = new AbortController();
    this.exited = new Promise((resolve) => {
      const gone = (why: string) => {
        liveChildren.delete(child);
        if (this.child === child) this.child = undefined;
        exitedEarly.abort(new Error(`${this.label} ${why}: ${this.output.join('').trim().slice(-2000)}`));
        resolve();
      };
      child.once('exit', (code, signal) => gone(`exited (code ${code}, signal ${signal})`));
      child.once('error', (err) => gone(`could not be run: ${err.message}`));
    });
    return exitedEarly.signal;
  }

  /** SIGTERM, then resolves once the process has exited. A no-op when it is not running. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill('SIGTERM');
    child.kill('SIGCONT'); // a SIGSTOPped server handles SIGTERM only once it runs again
    const killTimer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(killTimer);
  }

  /** Sends `signal`; resolves once the process has exited, except for SIGSTOP/SIGCONT (at once). */
  async kill(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill(signal);
    if (signal === 'SIGSTOP' || signal === 'SIGCONT') return;
    await this.exited;
  }
}
