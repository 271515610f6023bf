/**
 * Free loopback ports and polling waits (the ideas of test/harness/ports.ts and wait.ts, in plain
 * JS so the bench runs under plain `node`, without vitest). Never a fixed port: etcd on 2379,
 * other engineers' runs and CI share this machine.
 */
import net from 'node:net';
import { sleep } from './procs.mjs';

/** `count` distinct ports that were free a moment ago (the OS picks them; listeners held together). */
export async function freePorts(count) {
  const servers = [];
  try {
    const ports = [];
    for (let i = 0; i < count; i++) {
      const server = net.createServer();
      servers.push(server);
      ports.push(
        await new Promise((resolve, reject) => {
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server.address().port));
        }),
      );
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(() => r()))));
  }
}

/** Polls `fn` until truthy; throws after timeoutMs saying what it waited for and what it saw. */
export async function waitFor(fn, { timeoutMs = 10_000, intervalMs = 20, message = 'condition', proc } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last = 'never polled';
  for (;;) {
    if (proc && !proc.running) throw new Error(`${proc.name} exited while waiting for ${message}:\n${proc.tail()}`);
    try {
      const v = await fn();
      if (v) return v;
      last = `last result: ${String(v)}`;
    } catch (err) {
      last = `last error: ${err.message}`;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${message} (${last})${proc ? `\n${proc.tail()}` : ''}`);
    }
    await sleep(intervalMs);
  }
}

/** GET url with a short timeout; resolves { status, text }. */
export async function httpGet(url, { headers, timeoutMs = 2000 } = {}) {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.status, text: await res.text() };
}

/** Waits until a TCP connect to port succeeds. */
export function waitForPort(port, opts = {}) {
  return waitFor(
    () =>
      new Promise((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port });
        const done = (ok) => {
          s.destroy();
          resolve(ok);
        };
        s.setTimeout(1000, () => done(false));
        s.once('connect', () => done(true));
        s.once('error', () => done(false));
      }),
    { message: `127.0.0.1:${port} to accept connections`, ...opts },
  );
}
