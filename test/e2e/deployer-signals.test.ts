/**
 * The deployer's lock on every way out of a signal, with real paas-deploy child processes held
 * inside a redeploy (a slow request on the old instance keeps it in the in-flight wait) and a
 * lock TTL of 30 s, so a lock that is gone within seconds was released, not expired:
 * - SIGTERM twice at once (a group signal that a forwarding parent delivers again): one stop;
 * - a second SIGTERM later, while etcd is slow to answer: quits at once, releasing the lock first;
 * - a process-group SIGTERM to `pnpm exec paas-deploy`.
 * Each time a new redeploy takes the lock right after.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, test } from 'vitest';
import { request } from 'undici';
import { connectEtcd, KeyLayout, type Etcd } from '@paas/registry';
import { register } from '@paas/deployer';
import { sharedEtcdEndpoints, uniquePrefix } from '../harness/etcd.js';
import { ProcessGroup, startRouter, startSampleApp, type ManagedProcess, type RouterProcess, type SampleApp } from '../harness/processes.js';
import { waitFor } from '../harness/wait.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = `${REPO_ROOT}packages/deployer/bin/paas-deploy.js`;
const HOST = 'www.mango.com';
const LOCK_TTL_S = 30;
/** The CLI takes a repeat of a signal within this many ms for the same signal delivered twice. */
const DUPLICATE_SIGNAL_MS = 500;

interface World {
  endpoints: string[];
  prefix: string;
  layout: KeyLayout;
  router: RouterProcess;
}

let group: ProcessGroup;
let etcd: Etcd;
const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await group.stopAll();
  await etcd.close();
});

async function world(name: string): Promise<World> {
  const endpoints = sharedEtcdEndpoints();
  const prefix = uniquePrefix(`deployer-signals-${name}`);
  const layout = new KeyLayout(prefix);
  group = new ProcessGroup();
  etcd = connectEtcd({ endpoints });
  await etcd.put(layout.app('mango'), JSON.stringify({ routes: [{ host: HOST }], healthCheck: { path: '/healthz' } }));
  const router = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'r1', group, readyTimeoutMs: 60_000 });
  const v1 = await startSampleApp({ app: 'mango', name: 'v1-0', release: 'v1', group });
  await register(etcd, layout, { app: 'mango', url: v1.url, id: 'v1-0', release: 'v1' });
  await waitFor(async () => (await request(`${router.url}/`, { headers: { host: HOST } })).statusCode === 200, { message: 'r1 to serve mango' });
  return { endpoints, prefix, layout, router };
}

/**
 * A request on the old instance that lasts until the test ends (the client gives up then): a
 * redeploy waits for it in its in-flight step, however long this loaded machine takes.
 */
async function holdOldInstance(w: World): Promise<void> {
  const ac = new AbortController();
  cleanups.push(() => ac.abort());
  void request(`${w.router.url}/slow?ms=600000`, { headers: { host: HOST }, signal: ac.signal }).catch(() => {});
  await waitFor(async () => {
    const s = (await (await request(`${w.router.adminUrl}/status`)).body.json()) as { inflight: Record<string, number> };
    return (s.inflight['mango/v1-0'] ?? 0) >= 1;
  }, { message: 'the slow request in flight' });
}

function cliEnv(w: World, endpoints = w.endpoints): Record<string, string> {
  return { ETCD_ENDPOINTS: endpoints.join(','), PAAS_PREFIX: w.prefix };
}

function redeployArgs(app: SampleApp, release: string, drainTimeout = '60s'): string[] {
  return ['redeploy', 'mango', '--url', app.url, '--release', release, '--lock-ttl', `${LOCK_TTL_S}s`, '--drain-timeout', drainTimeout];
}

async function lockHeld(w: World): Promise<boolean> {
  return (await etcd.get(w.layout.lock('mango'))) !== undefined;
}

/** After the interrupted run: the lock is free at once, and a new redeploy takes it and finishes. */
async function nextRunTakesTheLock(w: World, stoppedAt: number): Promise<void> {
  const freedMs = performance.now() - stoppedAt;
  expect(await lockHeld(w)).toBe(false);
  console.log(`[timing] lock free ${freedMs.toFixed(0)} ms after the signal (lock TTL ${LOCK_TTL_S} s)`);
  expect(freedMs).toBeLessThan(10_000);
  const v3 = await startSampleApp({ app: 'mango', name: 'v3-0', release: 'v3', group });
  const next = group.spawn(process.execPath, [BIN, ...redeployArgs(v3, 'v3', '1s')], { name: 'paas-deploy (next)', env: cliEnv(w) });
  const { code } = await next.exited;
  expect(code, next.tail()).toBe(0);
  expect(next.stdout.join('\n')).toContain('redeploy mango (release v3): done');
}

/** A TCP forwarder to etcd that can stop moving bytes (etcd "slow to answer") and start again. */
async function pausableProxy(target: string): Promise<{ url: string; pause(): void; resume(): void; close(): Promise<void> }> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<net.Socket>();
  let paused = false;
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: hostname, port: Number(port) });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
      if (paused) s.pause();
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${addr.port}`,
    pause() {
      paused = true;
      for (const s of sockets) s.pause();
    },
    resume() {
      paused = false;
      for (const s of sockets) s.resume();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

async function startHeldRedeploy(w: World, env: Record<string, string>): Promise<ManagedProcess> {
  const v2 = await startSampleApp({ app: 'mango', name: 'v2-0', release: 'v2', group });
  const cli = group.spawn(process.execPath, [BIN, ...redeployArgs(v2, 'v2')], { name: 'paas-deploy (held)', env });
  await cli.waitForLine((l) => l.startsWith('[inflight] wait for in-flight requests'), { timeoutMs: 30_000 });
  expect(await lockHeld(w)).toBe(true);
  return cli;
}

describe('paas-deploy and its lock on signals', { timeout: 120_000 }, () => {
  test('SIGTERM twice at once: one orderly stop, the lock is released at once', async () => {
    const w = await world('twice');
    await holdOldInstance(w);
    const cli = await startHeldRedeploy(w, cliEnv(w));
    const t0 = performance.now();
    cli.kill('SIGTERM');
    cli.kill('SIGTERM');
    const { code } = await cli.exited;
    // 128 + SIGTERM: stopped by the signal, after the rollback.
    expect(code, cli.tail()).toBe(143);
    expect(cli.stderr.filter((l) => l.startsWith('paas-deploy: SIGTERM'))).toEqual([
      'paas-deploy: SIGTERM: stopping (rolling back what this run wrote); SIGTERM again to quit at once',
    ]);
    expect(cli.stderr.join('\n')).toContain('interrupted by SIGTERM');
    await nextRunTakesTheLock(w, t0);
  });

  test('a second SIGTERM while the orderly stop waits on a slow etcd: quits at once, releasing the lock first', async () => {
    const w = await world('again');
    const proxy = await pausableProxy(w.endpoints[0]!);
    cleanups.push(() => proxy.close());
    await holdOldInstance(w);
    const cli = await startHeldRedeploy(w, cliEnv(w, [proxy.url]));
    // etcd stops answering the deployer: the orderly stop cannot finish on its own.
    proxy.pause();
    const t0 = performance.now();
    cli.kill('SIGTERM');
    await cli.waitForLine((l) => l.startsWith('paas-deploy: SIGTERM: stopping'), { stream: 'stderr' });
    // A repeat within the duplicate window would be taken for the same signal.
    await waitFor(() => performance.now() - t0 > DUPLICATE_SIGNAL_MS + 100, { intervalMs: 20, message: 'the duplicate-signal window to pass' });
    expect(cli.running).toBe(true);
    cli.kill('SIGTERM');
    await cli.waitForLine((l) => l.startsWith('paas-deploy: SIGTERM again: quitting now'), { stream: 'stderr' });
    proxy.resume(); // etcd answers again within the release deadline
    const { code } = await cli.exited;
    expect(code, cli.tail()).toBe(143);
    await nextRunTakesTheLock(w, t0);
  });

  test('a process-group SIGTERM to `pnpm exec paas-deploy`: the lock is released at once', async () => {
    const w = await world('pnpm');
    await holdOldInstance(w);
    const v2 = await startSampleApp({ app: 'mango', name: 'v2-0', release: 'v2', group });
    // Its own process group, so the signal goes to pnpm and paas-deploy alike, as from a shell or CI runner.
    const child: ChildProcess = spawn('pnpm', ['exec', 'paas-deploy', ...redeployArgs(v2, 'v2')], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...cliEnv(w) },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
    cleanups.push(async () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // the group is gone
      }
      await closed;
    });
    const out: string[] = [];
    const held = new Promise<void>((resolve) => {
      for (const stream of [child.stdout!, child.stderr!]) {
        readline.createInterface({ input: stream }).on('line', (l) => {
          out.push(l);
          if (l.startsWith('[inflight] wait for in-flight requests')) resolve();
        });
      }
    });
    await Promise.race([held, closed.then(() => Promise.reject(new Error(`pnpm exec paas-deploy ended early:\n${out.join('\n')}`)))]);
    expect(await lockHeld(w)).toBe(true);
    const t0 = performance.now();
    process.kill(-child.pid!, 'SIGTERM');
    await closed; // every process holding the output pipes has exited
    expect(out.join('\n')).toContain('paas-deploy: SIGTERM: stopping');
    expect(out.join('\n')).toContain('interrupted by SIGTERM');
    await nextRunTakesTheLock(w, t0);
  });
});
