/**
 * The deployer's redeploy against the real shared etcd, with fake routers playing the routers'
 * part (a real status record on a real lease, advancing as etcd changes) so each test can make a
 * router slow, stuck, dead or busy, and real HTTP instances for the health checks.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { redeploy, type ProgressEvent, type RedeployOptions } from '@paas/deployer';
import { waitFor } from '../harness/wait.js';
import type { World } from '../../packages/deployer/test/support/world.js';
import { expectDeployError, mangoWorld, serveV1 } from '../../packages/deployer/test/support/scenario.js';

let world: World;
afterEach(async () => {
  await world?.close();
});

const setup = async (name: string): Promise<World> => (world = await mangoWorld(name));

function collect(): { events: ProgressEvent[]; listener: (e: ProgressEvent) => void } {
  const events: ProgressEvent[] = [];
  return { events, listener: (e) => events.push(e) };
}

describe('redeploy', () => {
  test('replaces every old instance once every live router confirmed the new ones', async () => {
    const w = await setup('happy');
    await serveV1(w);
    const r1 = await w.router('r1');
    const r2 = await w.router('r2');
    const n1 = await w.instance();
    const n2 = await w.instance();
    const { events, listener } = collect();

    const result = await redeploy(w.etcd, w.layout, { app: 'mango', urls: [n1.url, n2.url], release: 'v2' }, listener);

    const now = await w.read('mango');
    expect([...now.values()].map((r) => [r.url, r.state, r.release]).sort()).toEqual(
      [[n1.url, 'ready', 'v2'], [n2.url, 'ready', 'v2']].sort(),
    );
    for (const id of now.keys()) expect(id).toMatch(/^v2-[a-z0-9]{6}$/);
    expect(result.drain?.deleted.sort()).toEqual(['v1-a', 'v1-b']);
    // Both routers confirmed R1 before anything was drained, and the drain was confirmed too.
    expect(result.confirm.routers.map((r) => r.id).sort()).toEqual(['r1', 'r2']);
    expect(r1.published.some((rev) => rev >= result.readyRevision)).toBe(true);
    expect(r2.published.some((rev) => rev >= result.readyRevision)).toBe(true);
    const order = events.filter((e) => e.type === 'step-end').map((e) => (e as { step: string }).step);
    expect(order).toEqual(['lock', 'health', 'write', 'confirm', 'drain', 'confirm-drain', 'inflight', 'delete']);
    const drainAt = events.findIndex((e) => e.type === 'step-start' && e.step === 'drain');
    const applied = events.filter((e, i) => e.type === 'router-applied' && e.step === 'confirm' && i < drainAt);
    expect(applied).toHaveLength(2);
    console.log(`[timing] step 4 (routers confirm R1=${result.readyRevision}) waited ${result.confirm.ms.toFixed(1)} ms: ${result.confirm.routers.map((r) => `${r.id} ${r.ms.toFixed(1)} ms`).join(', ')}`);
    // The lock is released.
    expect(await w.etcd.get(w.layout.lock('mango'))).toBeUndefined();
  });

  test('a router that never advances fails the redeploy naming it; the new instances are removed, the old ones untouched', async () => {
    const w = await setup('stuck');
    const old = await serveV1(w);
    await w.router('r1');
    const stuck = await w.router('r-stuck');
    stuck.freeze();
    const n1 = await w.instance();
    const t0 = performance.now();

    const err = await expectDeployError(redeploy(w.etcd, w.layout, { app: 'mango', urls: [n1.url], release: 'v2', routerTimeoutMs: 1500 }));

    expect(err.kind).toBe('router-timeout');
    expect(err.message).toContain('r-stuck');
    expect(err.message).not.toContain('r1,');
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(err.rollback?.removed).toHaveLength(1);
    const now = await w.read('mango');
    expect([...now.keys()].sort()).toEqual(old.ids);
    expect(now.get('v1-a')).toMatchObject({ state: 'ready', modRevision: old.revisions[0] });
    expect(now.get('v1-b')).toMatchObject({ state: 'ready', modRevision: old.revisions[1] });
    expect(err.steps.map((s) => `${s.step}:${s.ok}`)).toEqual(['lock:true', 'health:true', 'write:true', 'confirm:false', 'rollback:true']);
    expect(await w.etcd.get(w.layout.lock('mango'))).toBeUndefined();
  });

  test('a router that dies during the wait drops out when its lease expires, and the redeploy goes on', async () => {
    const w = await setup('dies');
    await serveV1(w);
    await w.router('r1');
    const doomed = await w.router('r-doomed', { ttlSeconds: 1 });
    doomed.freeze();
    const n1 = await w.instance();
    const { events, listener } = collect();
    const run = redeploy(w.etcd, w.layout, { app: 'mango', urls: [n1.url], release: 'v2', routerTimeoutMs: 15_000 }, listener);
    await waitFor(() => events.some((e) => e.type === 'routers-waiting' && e.pending.some((p) => p.id === 'r-doomed')), { message: 'the redeploy to wait on r-doomed' });
    await doomed.kill();

    const result = await run;
    expect(result.confirm.gone).toEqual(['r-doomed']);
    expect(result.confirm.routers.map((r) => r.id)).toEqual(['r1']);
    expect(events.some((e) => e.type === 'router-gone' && e.router === 'r-doomed')).toBe(true);
    expect([...(await w.read('mango')).values()].map((r) => r.url)).toEqual([n1.url]);
  });

  test('a router that appears during the wait must confirm too', async () => {
    const w = await setup('joins');
    await serveV1(w);
    const r1 = await w.router('r1');
    r1.freeze();
    const n1 = await w.instance();
    const { events, listener } = collect();
    const run = redeploy(w.etcd, w.layout, { app: 'mango', urls: [n1.url], routerTimeoutMs: 15_000 }, listener);
    await waitFor(() => events.some((e) => e.type === 'routers-waiting'), { message: 'the wait to start' });
    const late = await w.router('r-late', { frozen: true });
    await waitFor(() => events.some((e) => e.type === 'router-joined' && e.router === 'r-late'), { message: 'r-late to be seen' });
    // r-late started frozen at the revision it first listed; it must confirm R1 as well.
    await r1.resume();
    await late.resume();
    const result = await run;
    expect(result.confirm.joined).toEqual(['r-late']);
    expect(result.confirm.routers.map((r) => r.id).sort()).toEqual(['r-late', 'r1']);
  });

  test('with no live router nothing is written, unless --allow-no-routers', async () => {
    const w = await setup('norouters');
    const old = await serveV1(w);
    const n1 = await w.instance();
    const err = await expectDeployError(redeploy(w.etcd, w.layout, { app: 'mango', urls: [n1.url] }));
    expect(err.kind).toBe('no-routers');
    expect([...(await w.read('mango')).keys()].sort()).toEqual(old.ids);
    expect(n1.checks).toBe(0);

    const result = await redeploy(w.etcd, w.layout, { app: 'mango', urls: [n1.url], allowNoRouters: true });
    expect(result.confirm.routers).toEqual([]);
    expect([...(await w.read('mango')).values()].map((r) => r.url)).toEqual([n1.url]);
  });

  test('a new instance that never gets healthy: nothing written', async () => {
    const w = await setup('unhealthy');
    const old = await serveV1(w);
    await w.router('r1');
    const good = await w.instance();
    const bad = await w.instance({ healthy: false });
    const before = await w.etcd.currentRevision();
    const err = await expectDeployError(redeploy(w.etcd, w.layout, { app: 'mango', urls: [good.url, bad.url], healthTimeoutMs: 800 }));
    expect(err.kind).toBe('unhealthy');
    expect(err.message).toContain(bad.url);
    expect(err.message).toContain('HTTP 503');
    expect(err.rollback).toBeUndefined();
    const now = await w.read('mango');
    expect([...now.keys()].sort()).toEqual(old.ids);
    // Nothing under the app's instances changed (only the lock and router keys moved).
    for (const r of now.values()) expect(r.modRevision).toBeLessThanOrEqual(before);
  });

  test('an unreachable new instance fails its health check too', async () => {
    const w = await setup('unreachable');
    await serveV1(w);
    await w.router('r1');
    const gone = await w.instance();
    await gone.close();
    const err = await expectDeployError(redeploy(w.etcd, w.layout, { app: 'mango', urls: [gone.url], healthTimeoutMs: 500 }));
    expect(err.kind).toBe('unhealthy');
    expect(err.message).toMatch(/ECONNREFUSED/);
  });

  test('uses the app record health check path', async () => {
    const w = await setup('healthpath');
    await w.app('mango', { routes: [{ host: 'mango.example.com' }], healthCheck: { path: '/ready' } });
    await w.router('r1');
    const n1 = await w.instance();
    const err = await expectDeployError(redeploy(w.etcd, w.layout, { app: 'mango', urls: ['http://127.0.0.1:1'], healthTimeoutMs: 300 }));
    expect(err.message).toContain('GET /ready');
    const ok = await redeploy(w.etcd, w.layout, { app: 'mango', urls: [n1.url] });
    expect(ok.steps.find((s) => s.step === 'health')?.detail).toContain('/ready');
  });

  test('waits for requests in flight to the draining instances before deleting them', async () => {
    const w = await setup('inflight');
    await serveV1(w);
    const r1 = await w.router('r1');
    const r2 = await w.router('r2');
    await r1.setInflight('mango', 'v1-a', 2);
    await r2.setInflight('mango', 'v1-b', 1);
    const n1 = await w.instance();
    const { events, listener } = collect();
    const run = redeploy(w.etcd, w.layout, { app: 'mango', urls: [n1.url], drainTimeoutMs: 20_000 }, listener);
    await waitFor(() => events.some((e) => e.type === 'inflight' && e.total === 3), { message: 'the drain to report 3 in flight' });
    // Still there while requests are in flight.
    expect((await w.read('mango')).get('v1-a')?.state).toBe('draining');
    await r1.setInflight('mango', 'v1-a', 0);
    await waitFor(() => events.some((e) => e.type === 'inflight' && e.total === 1), { message: 'the drain to report 1 in flight' });
    expect((await w.read('mango')).has('v1-b')).toBe(true);
    await r2.setInflight('mango', 'v1-b', 0);
    const result = await run;
    expect(result.drain?.drain.timedOut).toBe(false);
    expect(result.drain?.drain.peak).toBe(3);
    expect([...(await w.read('mango')).keys()]).toEqual([result.instances[0]!.id]);
  });

  test('deletes after the drain timeout when requests stay in flight, with a warning', async () => {
    const w = await setup('draintimeout');
    await serveV1(w);
    const r1 = await w.router('r1');
    await r1.setInflight('mango', 'v1-a', 5);
    const n1 = await w.instance();
    const { events, listener } = collect();
    const result = await redeploy(w.etcd, w.layout, { app: 'mango', urls: [n1.url], drainTimeoutMs: 600 }, listener);
    expect(result.drain?.drain.timedOut).toBe(true);
    expect(result.drain?.drain.remaining).toEqual([{ router: 'r1', instance: 'mango/v1-a', count: 5 }]);
    expect(result.drain?.deleted.sort()).toEqual(['v1-a', 'v1-b']);
    expect(events.some((e) => e.type === 'warning' && e.message.includes('drain timeout'))).toBe(true);
  });

  test('a router that rejects a new instance record fails the redeploy and rolls back', async () => {
    const w = await setup('rejected');
    const old = await serveV1(w);
    const r1 = await w.router('r1');
    r1.freeze();
    const n1 = await w.instance();
    const { events, listener } = collect();
    const run = redeploy(w.etcd, w.layout, { app: 'mango', urls: [n1.url], routerTimeoutMs: 10_000 }, listener);
    const written = await waitFor(() => events.find((e) => e.type === 'written'), { message: 'the new instance to be written' });
    if (written.type !== 'written') throw new Error('unreachable');
    await r1.reject(w.layout.instance('mango', written.ids[0]!), written.revision, 'url: host not allowed here');
    const err = await expectDeployError(run);
    expect(err.kind).toBe('rejected');
    expect(err.message).toContain('r1');
    expect(err.message).toContain('host not allowed here');
    expect([...(await w.read('mango')).keys()].sort()).toEqual(old.ids);
  });

  test('an app without a record is refused before anything is written', async () => {
    const w = await setup('noapp');
    await w.router('r1');
    const n1 = await w.instance();
    const err = await expectDeployError(redeploy(w.etcd, w.layout, { app: 'kiwi', urls: [n1.url] }));
    expect(err.kind).toBe('not-found');
    expect(err.message).toContain('paas-deploy app set kiwi');
    expect((await w.read('kiwi')).size).toBe(0);
  });

  test('is idempotent: a re-run reuses instances with the same URL and finishes what a dead run left draining', async () => {
    const w = await setup('idempotent');
    await w.router('r1');
    const a = await w.instance();
    const n1 = await w.instance();
    // What a deployer killed after step 5 leaves: new one ready, old one draining.
    await w.put('mango', 'v1-a', { url: a.url, state: 'draining', release: 'v1' });
    const newRev = await w.put('mango', 'v2-keep', { url: n1.url, state: 'ready', release: 'v2' });

    const result = await redeploy(w.etcd, w.layout, { app: 'mango', urls: [n1.url], release: 'v2' } satisfies RedeployOptions);
    expect(result.instances).toEqual([expect.objectContaining({ id: 'v2-keep', reused: true })]);
    expect(result.steps.find((s) => s.step === 'write')?.detail).toContain('already ready');
    expect(result.drain?.deleted).toEqual(['v1-a']);
    const now = await w.read('mango');
    expect([...now.keys()]).toEqual(['v2-keep']);
    expect(now.get('v2-keep')?.modRevision).toBe(newRev);
  });

  test('an instance reused from draining back to ready is restored to draining on rollback', async () => {
    const w = await setup('restore');
    const a = await w.instance();
    const b = await w.instance();
    await w.put('mango', 'cur', { url: a.url, state: 'ready', release: 'v2' });
    const drainingRev = await w.put('mango', 'prev', { url: b.url, state: 'draining', release: 'v1' });
    const stuck = await w.router('r-stuck');
    stuck.freeze();
    const err = await expectDeployError(redeploy(w.etcd, w.layout, { app: 'mango', urls: [b.url], routerTimeoutMs: 800 }));
    expect(err.kind).toBe('router-timeout');
    expect(err.rollback?.restored).toEqual(['prev']);
    const now = await w.read('mango');
    expect(now.get('prev')?.state).toBe('draining');
    expect(now.get('prev')?.modRevision).toBeGreaterThan(drainingRev);
    expect(now.get('cur')?.state).toBe('ready');
  });
});
