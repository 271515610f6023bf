/**
 * The deployer's safety nets against the real shared etcd: the per-app lock (contention, a crashed
 * holder, a lock lost mid-run) and compare-and-swap against concurrent edits (etcdctl).
 */
import { afterEach, describe, expect, test } from 'vitest';
import { connectEtcd } from '@paas/registry';
import { acquireAppLock, commitChanges, describeDrift, expectationOf, readInstances, redeploy, register, retire, type ProgressEvent, type RedeployOptions } from '@paas/deployer';
import { runEtcdctl } from '../harness/etcd.js';
import { waitFor } from '../harness/wait.js';
import type { World } from '../../packages/deployer/test/support/world.js';
import { expectDeployError, mangoWorld, serveV1 } from '../../packages/deployer/test/support/scenario.js';

let world: World;
afterEach(async () => {
  await world?.close();
});

const setup = async (name: string): Promise<World> => (world = await mangoWorld(name));

function waitingIn(events: ProgressEvent[]): () => boolean {
  return () => events.some((e) => e.type === 'routers-waiting' && e.step === 'confirm');
}

/** Two v1 instances serving, and a redeploy to one new instance held at step 4 by a frozen router. */
async function heldRedeploy(name: string, opts: Partial<RedeployOptions>) {
  const w = await setup(name);
  const old = await serveV1(w);
  const r1 = await w.router('r1');
  r1.freeze();
  const n1 = await w.instance();
  const events: ProgressEvent[] = [];
  const run = redeploy(w.etcd, w.layout, { app: 'mango', urls: [n1.url], ...opts }, (e) => events.push(e));
  await waitFor(waitingIn(events), { message: 'the redeploy to wait on routers' });
  return { w, old, r1, n1, run };
}

describe('the app lock', () => {
  test('a second redeploy of the same app fails fast naming the holder; the first one finishes', async () => {
    const { w, r1, n1, run: first } = await heldRedeploy('contention', {
      routerTimeoutMs: 15_000,
      holder: { host: 'ci-7', pid: 4242, startedAt: new Date().toISOString(), command: 'redeploy mango' },
    });
    const n2 = await w.instance();

    const t0 = performance.now();
    const err = await expectDeployError(redeploy(w.etcd, w.layout, { app: 'mango', urls: [n2.url] }));
    const ms = performance.now() - t0;
    expect(err.kind).toBe('lock-held');
    expect(err.message).toContain('pid 4242 on host ci-7 (redeploy mango)');
    expect(ms).toBeLessThan(2000);
    expect(n2.checks).toBe(0);

    await r1.resume();
    const result = await first;
    expect(result.instances.map((i) => i.url)).toEqual([n1.url]);
    // Another app is not blocked by mango's lock.
    await w.app('kiwi');
    const k = await w.instance();
    await register(w.etcd, w.layout, { app: 'kiwi', url: k.url });
  });

  test("a crashed deployer's lock expires with its lease, then the next run proceeds", async () => {
    const w = await setup('expires');
    await serveV1(w);
    await w.router('r1');
    const crashed = connectEtcd({ endpoints: w.endpoints });
    await acquireAppLock(crashed, w.layout, 'mango', 2, { host: 'dead-host', pid: 1, startedAt: new Date().toISOString() });
    await crashed.close(); // keep-alives stop; the lease expires after its TTL
    const n1 = await w.instance();
    const err = await expectDeployError(redeploy(w.etcd, w.layout, { app: 'mango', urls: [n1.url] }));
    expect(err.kind).toBe('lock-held');
    expect(err.message).toContain('dead-host');
    const t0 = performance.now();
    await waitFor(async () => (await w.etcd.get(w.layout.lock('mango'))) === undefined, { timeoutMs: 10_000, message: 'the crashed lock to expire' });
    console.log(`[timing] crashed lock (ttl 2s) expired after ${(performance.now() - t0).toFixed(0)} ms`);
    const result = await redeploy(w.etcd, w.layout, { app: 'mango', urls: [n1.url] });
    expect(result.drain?.deleted.sort()).toEqual(['v1-a', 'v1-b']);
  });

  test('a lock lost mid-run stops the redeploy and rolls back its writes', async () => {
    const { w, old, run } = await heldRedeploy('lost', { routerTimeoutMs: 30_000, lockTtlSeconds: 3 });
    const lockEntry = await w.etcd.get(w.layout.lock('mango'));
    expect(lockEntry).toBeDefined();
    await runEtcdctl(w.endpoints, ['lease', 'revoke', BigInt(lockEntry!.lease).toString(16)]);
    const t0 = performance.now();
    const err = await expectDeployError(run);
    console.log(`[timing] lost lock noticed after ${(performance.now() - t0).toFixed(0)} ms`);
    expect(err.kind).toBe('lock-lost');
    expect(err.rollback?.removed).toHaveLength(1);
    expect([...(await w.read('mango')).keys()].sort()).toEqual(old.ids);
  });
});

describe('compare-and-swap', () => {
  test('an etcdctl edit of an old instance during the redeploy is not overwritten: the redeploy fails and rolls back', async () => {
    const { w, r1, run } = await heldRedeploy('cas-edit', { routerTimeoutMs: 15_000 });
    const edited = JSON.stringify({ url: (await w.read('mango')).get('v1-a')!.url, state: 'ready', release: 'v1', weight: 5 });
    await runEtcdctl(w.endpoints, ['put', w.layout.instance('mango', 'v1-a'), edited]);
    await r1.resume();

    const err = await expectDeployError(run);
    expect(err.kind).toBe('conflict');
    expect(err.message).toMatch(/v1-a was modified at revision \d+ \(now ready/);
    expect(err.rollback?.removed).toHaveLength(1);
    const now = await w.read('mango');
    expect([...now.keys()].sort()).toEqual(['v1-a', 'v1-b']);
    expect(now.get('v1-a')).toMatchObject({ weight: 5, state: 'ready' });
    expect(now.get('v1-b')?.state).toBe('ready');
  });

  test('an instance created by someone else during the redeploy is reported, nothing drained', async () => {
    const { w, r1, run } = await heldRedeploy('cas-create', { routerTimeoutMs: 15_000 });
    await runEtcdctl(w.endpoints, ['put', w.layout.instance('mango', 'hotfix'), JSON.stringify({ url: 'http://127.0.0.1:9', state: 'ready' })]);
    await r1.resume();
    const err = await expectDeployError(run);
    expect(err.kind).toBe('conflict');
    expect(err.message).toContain('hotfix was created');
    const now = await w.read('mango');
    expect([...now.values()].every((r) => r.state === 'ready')).toBe(true);
    expect([...now.keys()].sort()).toEqual(['hotfix', 'v1-a', 'v1-b']);
  });

  test('a write against a stale read fails instead of overwriting, and says what changed', async () => {
    const w = await setup('cas-stale');
    await serveV1(w);
    const snapshot = await readInstances(w.etcd, w.layout, 'mango');
    expect(snapshot.byId.size).toBe(2);
    // An operator edits v1-b with etcdctl between our read and our write.
    const edited = JSON.stringify({ url: 'http://127.0.0.1:9', state: 'draining' });
    await runEtcdctl(w.endpoints, ['put', w.layout.instance('mango', 'v1-b'), edited]);
    const rev = await commitChanges(
      w.etcd,
      [{ id: 'v2-x', key: w.layout.instance('mango', 'v2-x'), before: undefined, after: { url: 'http://127.0.0.1:10', state: 'ready' } }],
      { unchanged: [...snapshot.byId.values()] },
    );
    expect(rev).toBeUndefined();
    const now = await readInstances(w.etcd, w.layout, 'mango');
    expect(now.byId.has('v2-x')).toBe(false);
    expect(now.byId.get('v1-b')?.raw).toBe(edited);
    expect(describeDrift(expectationOf(snapshot), now)).toEqual([expect.stringMatching(/^v1-b was modified at revision \d+ \(now draining, http:\/\/127\.0\.0\.1:9\)$/)]);
    // register with an explicit id that exists under another URL refuses rather than overwrite.
    await w.router('r1');
    const n1 = await w.instance();
    const err = await expectDeployError(register(w.etcd, w.layout, { app: 'mango', url: n1.url, id: 'v1-b' }));
    expect(err.kind).toBe('conflict');
    expect(err.message).toContain('already exists with url http://127.0.0.1:9');
  });

  test('retire refuses the last ready instance unless forced, and a missing one', async () => {
    const w = await setup('retire');
    const a = await w.instance();
    await w.put('mango', 'only', { url: a.url, state: 'ready' });
    const r1 = await w.router('r1');
    const err = await expectDeployError(retire(w.etcd, w.layout, { app: 'mango', id: 'only' }));
    expect(err.kind).toBe('invalid');
    expect(err.message).toContain('last ready instance');
    expect((await w.read('mango')).get('only')?.state).toBe('ready');
    const missing = await expectDeployError(retire(w.etcd, w.layout, { app: 'mango', id: 'nope' }));
    expect(missing.kind).toBe('not-found');

    await r1.setInflight('mango', 'only', 1);
    const events: ProgressEvent[] = [];
    const run = retire(w.etcd, w.layout, { app: 'mango', id: 'only', force: true }, (e) => events.push(e));
    await waitFor(() => events.some((e) => e.type === 'inflight' && e.total === 1), { message: 'retire to wait for the request in flight' });
    expect((await w.read('mango')).get('only')?.state).toBe('draining');
    await r1.setInflight('mango', 'only', 0);
    const result = await run;
    expect(result.drain.deleted).toEqual(['only']);
    expect((await w.read('mango')).size).toBe(0);
  });

  test('register: health check, write, routers confirm; a stuck router rolls it back', async () => {
    const w = await setup('register');
    const r1 = await w.router('r1');
    const a = await w.instance();
    const ok = await register(w.etcd, w.layout, { app: 'mango', url: a.url, id: 'web-1', release: 'v1', weight: 3 });
    expect(ok.confirm.routers.map((r) => r.id)).toEqual(['r1']);
    expect((await w.read('mango')).get('web-1')).toMatchObject({ url: a.url, state: 'ready', release: 'v1', weight: 3 });
    // Same URL again: reused, not duplicated.
    const again = await register(w.etcd, w.layout, { app: 'mango', url: a.url + '/', release: 'v1', weight: 3 });
    expect(again.instance).toMatchObject({ id: 'web-1', reused: true });
    // --state starting skips the health check.
    const b = await w.instance({ healthy: false });
    const starting = await register(w.etcd, w.layout, { app: 'mango', url: b.url, state: 'starting' });
    expect(starting.steps.find((s) => s.step === 'health')?.detail).toContain('no health check');
    expect(b.checks).toBe(0);
    expect((await w.read('mango')).get(starting.instance.id)?.state).toBe('starting');

    r1.freeze();
    const c = await w.instance();
    const err = await expectDeployError(register(w.etcd, w.layout, { app: 'mango', url: c.url, routerTimeoutMs: 700 }));
    expect(err.kind).toBe('router-timeout');
    expect(err.message).toContain('r1');
    expect(err.rollback?.removed).toHaveLength(1);
    expect([...(await w.read('mango')).values()].some((r) => r.url === c.url)).toBe(false);
  });
});
