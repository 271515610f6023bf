/** paas-deploy status against the real shared etcd, with fake routers reporting what they applied. */
import { afterEach, expect, test } from 'vitest';
import { acquireAppLock, collectStatus, formatStatus } from '@paas/deployer';
import { sharedEtcdEndpoints, uniquePrefix } from '../harness/etcd.js';
import { waitFor } from '../harness/wait.js';
import { World } from '../../packages/deployer/test/support/world.js';

let world: World;
afterEach(async () => {
  await world?.close();
});

test('routers with revision, lag and a digest that differs from its peers; apps with instances and in-flight sums', async () => {
  const w = (world = new World(sharedEtcdEndpoints(), uniquePrefix('deployer-status')));
  await w.app('mango', { routes: [{ host: 'www.mango.com' }, { host: '*.mango.com', path: '/api' }], balance: 'least-connections' });
  await w.put('mango', 'v1-a', { url: 'http://127.0.0.1:4001', state: 'draining', release: 'v1' });
  await w.put('mango', 'v2-b', { url: 'http://127.0.0.1:4002', state: 'ready', release: 'v2' });
  await w.etcd.put(w.layout.instance('mango', 'broken'), '{"url": 42}');
  await w.put('kiwi', 'k1', { url: 'http://127.0.0.1:4003', state: 'starting' });
  const r1 = await w.router('r1');
  const r2 = await w.router('r2');
  const r3 = await w.router('r3');
  await r1.setInflight('mango', 'v1-a', 2);
  await r2.setInflight('mango', 'v1-a', 1);
  await r3.setDigest('ffffffffffffffff');
  // One more routing change, so every router applies the same revision.
  await w.etcd.put(w.layout.override('old.mango.com'), JSON.stringify({ app: 'mango' }));
  const lock = await acquireAppLock(w.etcd, w.layout, 'mango', 5, { host: 'ci-1', pid: 77, startedAt: new Date().toISOString(), command: 'redeploy mango' });
  w.onClose(() => lock.release());

  const status = await waitFor(async () => {
    const s = await collectStatus(w.etcd, w.layout);
    return s.routers.length === 3 && s.routers.every((r) => r.revision === s.routers[0]!.revision) ? s : undefined;
  }, { message: 'three routers at one revision' });
  expect(status.routers.map((r) => [r.id, r.digestMismatch])).toEqual([['r1', false], ['r2', false], ['r3', true]]);
  // Every router applied the newest routing change: the status writes after it are not lag.
  for (const r of status.routers) expect(r.lag).toBe(0n);

  const text = formatStatus(status);
  expect(text).toMatch(/r3\s+\d+\s+\d+\s+ffffffffffffffff !\s+\d+\s+0\s+0\s+0\s+0\s+digest differs from peers at the same revision/);
  expect(text).toContain('APP mango  routes www.mango.com, *.mango.com/api  balance least-connections  health passive (deploys GET /healthz)');
  expect(text).toContain('deployment in progress: lock held by pid 77 on host ci-1 (redeploy mango)');
  expect(text).toMatch(/v1-a\s+draining\s+v1\s+http:\/\/127\.0\.0\.1:4001\s+3\s+ok\n/);
  expect(text).toMatch(/broken\s+INVALID\s+-\s+\(state: must be one of starting, ready, draining\)/);
  expect(text).toContain('APP kiwi  (no app record)');
  console.log(text);

  const only = await collectStatus(w.etcd, w.layout, 'kiwi');
  expect(only.apps.map((a) => a.name)).toEqual(['kiwi']);
});
