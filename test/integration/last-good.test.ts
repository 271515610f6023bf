/**
 * Issue #12: every router builds the same table from the same etcd state, whenever it started.
 * A key whose current value is rejected holds the newest valid version of its incarnation, read
 * from etcd's history by a router that did not see it, and nothing once etcd compacted that
 * history. Real routers on their own etcd (the test compacts it).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { connectEtcd, type Etcd } from '@paas/registry';
import { startEtcd, uniquePrefix, type EtcdProcess } from '../harness/etcd.js';
import { processes, startRouter, startSampleApp, type RouterProcess, type SampleApp } from '../harness/processes.js';
import { waitFor } from '../harness/wait.js';

interface Rejected { key: string; revision: string; error: string; kept?: string | null }
interface Status { revision: string; digest: string; rejected: Rejected[] }

let etcd: EtcdProcess;
let client: Etcd;
let sample: SampleApp;
const args = ['--digest-check', '300ms'];

beforeAll(async () => {
  etcd = await startEtcd();
  client = connectEtcd({ endpoints: etcd.endpoints });
  sample = await startSampleApp({ app: 'a', name: 'a1' });
});

afterAll(async () => {
  await processes.stopAll();
  await client?.close();
  await etcd?.cleanup();
});

const status = async (r: RouterProcess) => (await (await request(`${r.adminUrl}/status`)).body.json()) as Status;

/** The status code and the instance that answered, for `host`. */
async function answer(r: RouterProcess, host: string): Promise<string> {
  const res = await request(`${r.url}/`, { headers: { host } });
  await res.body.dump();
  return `${res.statusCode} ${res.headers['x-instance'] ?? '-'}`;
}

/** Writes one more app and waits for every router to apply it: they then stand at one revision. */
async function atOneRevision(prefix: string, routers: RouterProcess[]): Promise<Status[]> {
  const marker = await client.put(`${prefix}/apps/marker`, JSON.stringify({ routes: [], n: Math.random() }));
  for (const r of routers) await waitFor(async () => BigInt((await status(r)).revision) >= marker, { timeoutMs: 20_000, message: 'every router at the marker' });
  const all = await Promise.all(routers.map(status));
  for (const s of all) expect(s.revision).toBe(String(marker));
  return all;
}

/** What routers must agree on: digest, and each rejected key with what is kept for it. */
const agreed = (s: Status) => ({ digest: s.digest, rejected: s.rejected.map(({ key, revision, kept }) => ({ key, revision, kept })).sort((a, b) => (a.key < b.key ? -1 : 1)) });

async function start(prefix: string, id: string): Promise<RouterProcess> {
  return startRouter({ etcdEndpoints: etcd.endpoints, prefix, id, extraArgs: args });
}

describe('the etcd client reads history', () => {
  it('reads a key at an earlier revision, and says when that revision is compacted', async () => {
    const key = `${uniquePrefix('history')}/k`;
    const r1 = await client.put(key, 'one');
    const r2 = await client.put(key, 'two');
    const at1 = await client.getAt(key, r1);
    expect(at1.compacted === false && at1.entry?.value.toString()).toBe('one');
    expect(await client.getAt(key, r1 - 1n)).toEqual({ compacted: false, entry: undefined });
    expect(await client.servesRevision(r1)).toBe(true);
    await etcd.etcdctl('compact', String(r2));
    expect(await client.getAt(key, r1)).toEqual({ compacted: true });
    expect(await client.servesRevision(r1)).toBe(false);
    expect(await client.servesRevision(r2)).toBe(true);
    const at2 = await client.getAt(key, r2);
    expect(at2.compacted === false && at2.entry?.value.toString()).toBe('two');
  });
});

describe('a rejected key on routers started at different times', () => {
  const prefix = uniquePrefix('lastgood');
  const routers: RouterProcess[] = [];
  const put = (key: string, value: unknown) => client.put(`${prefix}/${key}`, typeof value === 'string' ? value : JSON.stringify(value));

  it('serves the last good value of an override, an app and an instance on every router, with one digest', async () => {
    // a: running before the good values; b: between the good and the bad ones; c: after.
    routers.push(await start(prefix, 'a'));
    await put('apps/a', { routes: [{ host: 'a.test' }] });
    await put('instances/a/a1', { url: sample.url, state: 'ready' });
    await put('apps/b', { routes: [{ host: 'b.test' }] });
    await put('instances/b/b1', { url: sample.url, state: 'ready' });
    await put('overrides/x.test', { app: 'a' });
    routers.push(await start(prefix, 'b'));
    // Two bad versions after the good one: the walk goes back through both.
    await put('overrides/x.test', { app: 'a', maintenance: { status: 503, message: 'both' } });
    await put('overrides/x.test', 'not json');
    await put('apps/a', { routes: 'a.test' });
    await put('instances/b/b1', { url: 'gopher://x', state: 'ready' });
    routers.push(await start(prefix, 'c'));

    const all = await atOneRevision(prefix, routers);
    for (const r of routers) {
      expect(await answer(r, 'x.test')).toBe('200 a1');
      expect(await answer(r, 'a.test')).toBe('200 a1');
      expect(await answer(r, 'b.test')).toBe('200 a1');
    }
    expect(all.map(agreed)).toEqual([agreed(all[0]!), agreed(all[0]!), agreed(all[0]!)]);
    expect(all[0]!.rejected.map((r) => r.key).sort()).toEqual([`${prefix}/apps/a`, `${prefix}/instances/b/b1`, `${prefix}/overrides/x.test`]);
    for (const r of all[0]!.rejected) expect(r.kept).toMatch(/^[0-9]+$/);
  });

  it('after a compaction past that history, every router has no value for those keys, and one digest', async () => {
    await etcd.etcdctl('compact', String(await client.currentRevision()));
    // The running routers notice within their check interval; d starts after the compaction.
    for (const r of routers) await waitFor(async () => (await status(r)).rejected.every((x) => x.kept === null), { timeoutMs: 20_000, message: 'kept values dropped' });
    routers.push(await start(prefix, 'd'));
    const all = await atOneRevision(prefix, routers);
    for (const r of routers) {
      expect(await answer(r, 'x.test')).toBe('404 -');
      expect(await answer(r, 'a.test')).toBe('404 -');
      expect(await answer(r, 'b.test')).toBe('503 -');
    }
    expect(all.map(agreed)).toEqual(all.map(() => agreed(all[0]!)));
    expect(all[0]!.rejected).toHaveLength(3);
  });

  it('a key deleted and put again with a rejected value has no value anywhere', async () => {
    await put('overrides/y.test', { app: 'a' });
    routers.push(await start(prefix, 'e'));
    await client.delete(`${prefix}/overrides/y.test`);
    await put('overrides/y.test', 'not json');
    await put('overrides/y.test', '{"app":"Not A Name"}');
    routers.push(await start(prefix, 'f'));
    const all = await atOneRevision(prefix, routers);
    for (const r of routers) expect(await answer(r, 'y.test')).toBe('404 -');
    expect(all.map(agreed)).toEqual(all.map(() => agreed(all[0]!)));
    expect(all[0]!.rejected.find((r) => r.key === `${prefix}/overrides/y.test`)).toMatchObject({ kept: null });
  });
});
