/**
 * Waiting on conditions instead of sleeping: every wait polls a condition and fails with a
 * message that says what it waited for and what it saw last.
 */
import net from 'node:net';

export interface WaitOptions {
  /** Give up after this long (default 10 000 ms). */
  timeoutMs?: number;
  /** Time between two polls (default 50 ms). */
  intervalMs?: number;
  /** What is awaited, for the timeout error: "router r1 to apply revision 42". */
  message?: string;
  /** Stops waiting at once, rejecting with the signal's reason (e.g. "the process exited"). */
  signal?: AbortSignal;
}

/**
 * Polls `fn` until it returns a truthy value and resolves with that value. A throw counts as
 * "not yet"; the last one is quoted in the timeout error.
 *
 *   await waitFor(() => seen.length >= 3, { message: '3 revisions delivered' });
 *   const entry = await waitFor(() => etcd.get(key), { message: `${key} to exist` });
 */
export async function waitFor<T>(fn: () => T | Promise<T>, opts: WaitOptions = {}): Promise<NonNullable<T>> {
  const { timeoutMs = 10_000, intervalMs = 50, message = 'condition', signal } = opts;
  const deadline = Date.now() + timeoutMs;
  let last: string = 'never polled';
  for (;;) {
    signal?.throwIfAborted();
    try {
      const value = await fn();
      if (value) return value as NonNullable<T>;
      last = `last result: ${String(value)}`;
    } catch (err) {
      last = `last error: ${err instanceof Error ? err.message : String(err)}`;
    }
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${message} (${last})`);
    await sleep(Math.min(intervalMs, Math.max(0, deadline - Date.now())), signal);
  }
}

/** Resolves after `ms`, or early when `signal` aborts (the next throwIfAborted then rejects). */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Waits until a TCP connection to host:port succeeds. */
export async function waitForPort(port: number, opts: WaitOptions & { host?: string } = {}): Promise<void> {
  const host = opts.host ?? '127.0.0.1';
  await waitFor(() => canConnect(host, port), { message: `${host}:${port} to accept connections`, ...opts });
}

export interface HttpAnswer {
  status: number;
  headers: Headers;
  body: string;
}

/**
 * Polls `url` (GET) until `predicate` accepts the answer (default: status 200) and resolves with
 * that answer. A refused connection or a request taking longer than 2 s counts as "not yet".
 */
export async function waitForHttp(
  url: string,
  predicate: (answer: HttpAnswer) => boolean = (a) => a.status === 200,
  opts: WaitOptions = {},
): Promise<HttpAnswer> {
  return waitFor(
    async () => {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      const answer = { status: res.status, headers: res.headers, body: await res.text() };
      if (predicate(answer)) return answer;
      throw new Error(`answered ${answer.status}: ${answer.body.slice(0, 200)}`);
    },
    { message: `GET ${url} to answer as expected`, ...opts },
  );
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Resolves once `count` more requests succeeded under a load loop (progress, not a fixed sleep). */
export async function served(count: number, load: { ok: () => number }): Promise<void> {
  const target = load.ok() + count;
  await waitFor(() => (load.ok() >= target ? true : undefined), { timeoutMs: 20_000, message: `${count} more answered requests` });
}
