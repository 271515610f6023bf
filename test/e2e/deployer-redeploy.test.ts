/**
 * Zero-downtime redeploys end to end: real etcd, two real router processes, real sample-app
 * processes, real HTTP load through both routers, and the deployer (library in-process, or the
 * paas-deploy CLI when the deployer process itself is killed or raced).
 */
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, test } from 'vitest';
import { request } from 'undici';
import { connectEtcd, KeyLayout, type Etcd } from '@paas/registry';
import { DeployError, redeploy, register, type ProgressEvent, type RedeployResult } from '@paas/deployer';
import { sharedEtcdEndpoints, uniquePrefix } from '../harness/etcd.js';
import { ProcessGroup, startRouter, startSampleApp, type RouterProcess, type SampleApp } from '../harness/processes.js';
import { waitFor } from '../harness/wait.js';
import { startLoad, type LoadReport } from '../../packages/deployer/test/support/load.js';

const BIN = fileURLToPath(new URL('../../packages/deployer/bin/paas-deploy.js', import.meta.url));
const HOST = 'www.mango.com';

interface Fleet {
  etcd: Etcd;
  layout: KeyLayout;
  prefix: string;
  endpoints: string[];
  group: ProcessGroup;
  routers: RouterProcess[];
}

let fleet: Fleet | undefined;
afterEach(async () => {
  if (!fleet) return;
  await fleet.group.stopAll();
  await fleet.etcd.close();
  fleet = undefined;
});

async function startFleet(name: string, routerArgs: string[] = []): Promise<Fleet> {
  const endpoints = sharedEtcdEndpoints();
  const prefix = uniquePrefix(`deployer-e2e-${name}`);
  const etcd = connectEtcd({ endpoints });
  const layout = new KeyLayout(prefix);
  const group = new ProcessGroup();
  await etcd.put(layout.app('mango'), JSON.stringify({ routes: [{ host: HOST }], healthCheck: { path: '/healthz' } }));
  const routers = await Promise.all(
    ['r1', 'r2'].map((id) => startRouter({ etcdEndpoints: endpoints, prefix, id, extraArgs: routerArgs, group })),
  );
  fleet = { etcd, layout, prefix, endpoints, group, routers };
  return fleet;
}

async function apps(f: Fleet, release: string, n: number): Promise<SampleApp[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => startSampleApp({ app: 'mango', name: `${release}-${i}`, release, group: f.group })));
}

/** v1 instances registered through the deployer itself, confirmed by both routers, serving. */
async function serveV1(f: Fleet, n: number): Promise<SampleApp[]> {
  const v1 = await apps(f, 'v1', n);
  for (const [i, a] of v1.entries()) await register(f.etcd, f.layout, { app: 'mango', url: a.url, id: `v1-${i}`, release: 'v1' });
  for (const r of f.routers) {
    await waitFor(async () => (await request(`${r.url}/`, { headers: { host: HOST } })).statusCode === 200, { message: `${r.url} to serve mango` });
  }
  return v1;
}

async function get(router: RouterProcess, path = '/'): Promise<{ status: number; release: string; body: string }> {
  const res = await request(`${router.url}${path}`, { headers: { host: HOST } });
  return { status: res.statusCode, release: String(res.headers['x-release']), body: await res.body.text() };
}

async function instances(f: Fleet): Promise<Map<string, { url: string; state: string; release?: string; modRevision: bigint }>> {
  const dir = f.layout.instancesOf('mango');
  const { entries } = await f.etcd.listPrefix(dir);
  return new Map(entries.map((e) => [e.key.slice(dir.length), { ...(JSON.parse(e.value.toString()) as { url: string; state: string; release?: string }), modRevision: e.modRevision }]));
}

async function routerInflight(r: RouterProcess): Promise<number> {
  const res = await request(`${r.adminUrl}/status`);
  const body = (await res.body.json()) as { inflight: Record<string, number> };
  return Object.values(body.inflight).reduce((a, b) => a + b, 0);
}

function expectClean(report: LoadReport): void {
  expect(report.non2xx, report.samples.join('\n')).toEqual({});
  expect(report.errors, report.samples.join('\n')).toEqual({});
}

function timings(label: string, r: RedeployResult): void {
  const step = (name: string) => r.steps.find((s) => s.step === name)?.ms.toFixed(0) ?? '-';
  console.log(
    `[timing] ${label}: step 4 (routers confirm R1=${r.readyRevision}) waited ${r.confirm.ms.toFixed(1)} ms (${r.confirm.routers.map((x) => `${x.id} ${x.ms.toFixed(1)} ms`).join(', ')})` +
      `; health ${step('health')} ms; confirm-drain ${step('confirm-drain')} ms; in-flight wait ${step('inflight')} ms; total ${r.totalMs.toFixed(0)} ms`,
  );
}

function cli(f: Fleet, args: string[]) {
  return f.group.spawn(process.execPath, [BIN, ...args], { name: `paas-deploy ${args[0]}`, env: { ETCD_ENDPOINTS: f.endpoints.join(','), PAAS_PREFIX: f.prefix } });
}

describe('redeploy through two real routers', () => {
  test('under constant load: no non-2xx, no connection error, and requests in flight on the old instances complete', async () => {
    const f = await startFleet('load');
    const v1 = await serveV1(f, 2);
    const load = startLoad({ targets: f.routers.map((r) => r.url), host: HOST, concurrency: 4, maxMs: 45_000 });
    await load.waitForRequests(200);

    // Long requests on the old instances, through both routers, held until the drain has seen them.
    const slow = [0, 1, 2, 3].map((i) => get(f.routers[i % 2]!, '/hold?id=load'));
    await waitFor(async () => (await routerInflight(f.routers[0]!)) + (await routerInflight(f.routers[1]!)) >= 4, { message: '4 slow requests in flight' });

    const v2 = await apps(f, 'v2', 2);
    const events: ProgressEvent[] = [];
    let released: Promise<unknown> | undefined;
    const result = await redeploy(f.etcd, f.layout, { app: 'mango', urls: v2.map((a) => a.url), release: 'v2' }, (e) => {
      events.push(e);
      if (e.type === 'inflight' && e.total >= 4) released ??= Promise.all(v1.map(async (a) => (await request(`${a.url}/release?id=load`)).body.text()));
    });
    await released;
    timings('redeploy under load', result);

    // The slow requests were waited for, and all ended well on the old release.
    const done = await Promise.all(slow);
    expect(done.map((d) => [d.status, d.release])).toEqual(Array(4).fill([200, 'v1']));
    expect(result.drain?.drain.peak).toBeGreaterThanOrEqual(4);
    expect(result.drain?.drain.timedOut).toBe(false);
    expect(result.confirm.routers.map((r) => r.id).sort()).toEqual(['r1', 'r2']);

    // Only v2 is registered and served now; the old processes can go away without a single error.
    const now = await instances(f);
    expect([...now.values()].map((i) => [i.url, i.state, i.release]).sort()).toEqual(v2.map((a) => [a.url, 'ready', 'v2']).sort());
    for (const r of f.routers) for (let i = 0; i < 4; i++) expect((await get(r)).release).toBe('v2');
    await Promise.all(v1.map((a) => a.proc.stop()));
    await load.waitForRequests(300);

    const report = await load.stop();
    console.log(`[load] ${report.total} requests in ${report.ms.toFixed(0)} ms through 2 routers: ${JSON.stringify(report.releases)}, non-2xx ${JSON.stringify(report.non2xx)}, errors ${JSON.stringify(report.errors)}`);
    expectClean(report);
    expect(report.releases.v1).toBeGreaterThan(0);
    expect(report.releases.v2).toBeGreaterThan(0);
  });

  test('a SIGSTOPped router: the redeploy waits, fails naming it, nothing drained; after SIGCONT a new redeploy succeeds', async () => {
    const f = await startFleet('sigstop');
    await serveV1(f, 2);
    const before = await instances(f);
    const [r1, r2] = f.routers as [RouterProcess, RouterProcess];
    const load = startLoad({ targets: [r1.url], host: HOST, concurrency: 2, maxMs: 45_000 });
    await load.waitForRequests(100);
    r2.proc.kill('SIGSTOP');
    try {
      const v2 = await apps(f, 'v2', 2);
      const t0 = performance.now();
      const err = await redeploy(f.etcd, f.layout, { app: 'mango', urls: v2.map((a) => a.url), release: 'v2', routerTimeoutMs: 3000 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      const waited = performance.now() - t0;
      expect(err).toBeInstanceOf(DeployError);
      const de = err as DeployError;
      expect(de.kind).toBe('router-timeout');
      expect(de.message).toMatch(/^router r2 did not apply revision \d+ within 3\.00s: r2 is at revision \d+/);
      expect(de.rollback?.removed).toHaveLength(2);
      console.log(`[timing] stopped router: redeploy failed after ${waited.toFixed(0)} ms: ${de.message}`);
      // Nothing drained: the old instances are exactly as they were.
      const after = await instances(f);
      expect([...after.entries()].sort()).toEqual([...before.entries()].sort());
      await load.waitForRequests(100);
    } finally {
      r2.proc.kill('SIGCONT');
    }

    // r2 catches up: it applies a write made after SIGCONT. (etcd's current revision is no
    // measure: the routers' own status writes raise it, and a router watches none of them.)
    const marker = await f.etcd.put(f.layout.app('mango'), JSON.stringify({ routes: [{ host: HOST }], healthCheck: { path: '/healthz' } }));
    await waitFor(async () => {
      const e = await f.etcd.get(f.layout.router('r2'));
      return e !== undefined && BigInt((JSON.parse(e.value.toString()) as { revision: string }).revision) >= marker;
    }, { timeoutMs: 15_000, message: 'r2 to catch up after SIGCONT' });
    const v3 = await apps(f, 'v3', 2);
    const result = await redeploy(f.etcd, f.layout, { app: 'mango', urls: v3.map((a) => a.url), release: 'v3' });
    timings('redeploy after SIGCONT', result);
    expect(result.confirm.routers.map((r) => r.id).sort()).toEqual(['r1', 'r2']);
    expect((await get(r2)).release).toBe('v3');
    const report = await load.stop();
    expectClean(report);
  });

  test('a SIGKILLed router: its lease expires and the redeploy goes on', async () => {
    const f = await startFleet('sigkill', ['--lease-ttl', '2s']);
    await serveV1(f, 1);
    const [r1, r2] = f.routers as [RouterProcess, RouterProcess];
    const load = startLoad({ targets: [r1.url], host: HOST, concurrency: 2, maxMs: 45_000 });
    await load.waitForRequests(100);
    r2.proc.kill('SIGSTOP'); // behind from now on, and still live until its lease expires
    const v2 = await apps(f, 'v2', 1);
    const events: ProgressEvent[] = [];
    const run = redeploy(f.etcd, f.layout, { app: 'mango', urls: [v2[0]!.url], release: 'v2', routerTimeoutMs: 20_000 }, (e) => events.push(e));
    await waitFor(() => events.some((e) => e.type === 'routers-waiting' && e.pending.some((p) => p.id === 'r2')), { message: 'the redeploy to wait on r2' });
    r2.proc.kill('SIGKILL');
    const killedAt = performance.now();
    const result = await run;
    const gone = performance.now() - killedAt;
    timings('redeploy with a killed router', result);
    console.log(`[timing] killed router (lease ttl 2s) dropped out of the wait ${gone.toFixed(0)} ms after SIGKILL`);
    expect(result.confirm.gone).toEqual(['r2']);
    expect(result.confirm.routers.map((r) => r.id)).toEqual(['r1']);
    expect((await get(r1)).release).toBe('v2');
    const report = await load.stop();
    expectClean(report);
  });

  test('a deployer killed mid-redeploy: its lock expires and a second run finishes the job', async () => {
    const f = await startFleet('deployer-killed');
    await serveV1(f, 1);
    const load = startLoad({ targets: f.routers.map((r) => r.url), host: HOST, concurrency: 2, maxMs: 50_000 });
    await load.waitForRequests(100);
    const slow = get(f.routers[0]!, '/slow?ms=4000');
    await waitFor(async () => (await routerInflight(f.routers[0]!)) >= 1, { message: 'the slow request in flight' });
    const v2 = await apps(f, 'v2', 1);
    const first = cli(f, ['redeploy', 'mango', '--url', v2[0]!.url, '--release', 'v2', '--lock-ttl', '2s']);
    await first.waitForLine((l) => l.startsWith('[inflight] wait for in-flight requests'), { timeoutMs: 20_000 });
    first.kill('SIGKILL');
    await first.exited;
    const left = await instances(f);
    expect(left.get('v1-0')?.state).toBe('draining');

    await waitFor(async () => (await f.etcd.get(f.layout.lock('mango'))) === undefined, { timeoutMs: 10_000, message: 'the dead deployer lock to expire' });
    const second = cli(f, ['redeploy', 'mango', '--url', v2[0]!.url, '--release', 'v2']);
    const { code } = await second.exited;
    expect(code, second.tail()).toBe(0);
    expect(second.stdout.join('\n')).toContain('(reused)');
    expect(second.stdout.join('\n')).toContain('retired: v1-0');
    const now = await instances(f);
    expect([...now.values()].map((i) => [i.url, i.state])).toEqual([[v2[0]!.url, 'ready']]);
    expect((await slow).status).toBe(200);
    const report = await load.stop();
    expectClean(report);
  });

  test('two redeploys at once: one proceeds, the other fails fast', async () => {
    const f = await startFleet('race');
    const [v1] = await serveV1(f, 1);
    const a = await apps(f, 'va', 1);
    const b = await apps(f, 'vb', 1);
    // Hold the first run inside its drain with a request held on the old instance until the
    // second run has ended, so the second surely starts while the first holds the lock.
    const slow = get(f.routers[0]!, '/hold?id=race');
    await waitFor(async () => (await routerInflight(f.routers[0]!)) >= 1, { message: 'the held request in flight' });
    const first = cli(f, ['redeploy', 'mango', '--url', a[0]!.url, '--release', 'va']);
    await first.waitForLine((l) => l.startsWith('[inflight] wait for in-flight requests'), { timeoutMs: 20_000 });
    const started = performance.now();
    const second = cli(f, ['redeploy', 'mango', '--url', b[0]!.url, '--release', 'vb']);
    expect((await second.exited).code).toBe(1);
    expect(performance.now() - started).toBeLessThan(5000);
    expect(second.stderr.join('\n')).toMatch(new RegExp(`another deployment of mango is running: the lock .* is held by pid ${first.pid} on host`));
    expect(await (await request(`${v1!.url}/release?id=race`)).body.text()).toBe('released 1');
    expect((await first.exited).code, first.tail()).toBe(0);
    expect((await slow).status).toBe(200);
    expect([...(await instances(f)).values()].map((i) => i.url)).toEqual([a[0]!.url]);
  });
});
