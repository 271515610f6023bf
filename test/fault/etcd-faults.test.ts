/**
 * A router keeps serving its last table while etcd misbehaves, and converges afterwards:
 * etcd stopped and restarted; and a compaction past the router's revision while its watch
 * stream is cut (forced with a TCP proxy between router and etcd), followed by a resync that
 * ends with the same table as a fresh load.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startEtcd, type EtcdProcess } from '../harness/etcd.js';
import { processes, startRouter, startSampleApp, type RouterProcess, type SampleApp } from '../harness/processes.js';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.js';
import { waitFor } from '../harness/wait.js';

interface Status { revision: string; digest: string; routes: number; etcd: { connected: boolean; downSince: string | null } }

const prefix = '/faults';
let etcd: EtcdProcess;
let app: SampleApp;

async function status(r: RouterProcess): Promise<Status> {
  return (await (await request(`${r.adminUrl}/status`)).body.json()) as Status;
}

async function statusOf(r: RouterProcess, host: string): Promise<number> {
  const res = await request(`${r.url}/`, { headers: { host } });
  await res.body.dump();
  return res.statusCode;
}

async function put(key: string, value: unknown): Promise<bigint> {
  const out = JSON.parse(await etcd.etcdctl('put', key, JSON.stringify(value), '-w', 'json')) as { header: { revision: number } };
  return BigInt(out.header.revision);
}

async function addApp(name: string): Promise<bigint> {
  await put(`${prefix}/apps/${name}`, { routes: [{ host: `${name}.example.com` }] });
  return put(`${prefix}/instances/${name}/i1`, { url: app.url, state: 'ready' });
}

async function resyncs(r: RouterProcess): Promise<number> {
  const text = await (await request(`${r.adminUrl}/metrics`)).body.text();
  return Number(/^router_resyncs_total (\d+)/m.exec(text)?.[1] ?? '0');
}

beforeAll(async () => {
  etcd = await startEtcd();
  app = await startSampleApp({ app: 'any', name: 'i1' });
  await addApp('first');
});

afterAll(async () => {
  await processes.stopAll();
  await etcd?.cleanup();
});

describe('etcd faults', () => {
  it('keeps serving while etcd is down, says so in /status, and catches up after a restart', async () => {
    const router = await startRouter({ etcdEndpoints: etcd.endpoints, prefix, id: 'outage' });
    expect(await statusOf(router, 'first.example.com')).toBe(200);

    await etcd.stop();
    await waitFor(async () => (await status(router)).etcd.connected === false, { timeoutMs: 15_000, message: 'router to notice etcd is down' });
    expect((await status(router)).etcd.downSince).not.toBeNull();
    for (let i = 0; i < 5; i++) expect(await statusOf(router, 'first.example.com')).toBe(200);
    expect((await request(`${router.adminUrl}/readyz`)).statusCode).toBe(200);

    await etcd.restart();
    const rev = await addApp('after-restart');
    await waitFor(async () => BigInt((await status(router)).revision) >= rev, { timeoutMs: 20_000, message: 'router to catch up after the restart' });
    expect(await statusOf(router, 'after-restart.example.com')).toBe(200);
    expect((await status(router)).etcd.connected).toBe(true);
    await router.proc.stop();
  });

  it('resyncs after a compaction past its revision and converges to the table of a fresh load', async () => {
    const link: TcpProxy = await startTcpProxy(etcd.endpoints[0]!);
    try {
      const router = await startRouter({ etcdEndpoints: [link.url], prefix, id: 'compacted' });
      const resyncsBefore = await resyncs(router);
      link.cut();
      await waitFor(async () => (await status(router)).etcd.connected === false, { timeoutMs: 15_000, message: 'router to lose etcd' });
      await addApp('while-cut-1');
      await put(`${prefix}/instances/first/i1`, { url: app.url, state: 'draining' });
      const last = await addApp('while-cut-2');
      await etcd.etcdctl('compact', String(last));
      link.restore();

      await waitFor(async () => BigInt((await status(router)).revision) >= last, { timeoutMs: 20_000, message: 'router to resync past the compaction' });
      expect(await resyncs(router)).toBeGreaterThan(resyncsBefore);
      expect(await statusOf(router, 'while-cut-2.example.com')).toBe(200);
      expect(await statusOf(router, 'first.example.com')).toBe(503);

      const fresh = await startRouter({ etcdEndpoints: etcd.endpoints, prefix, id: 'fresh' });
      // Both apply one more write through their watches, so both stand at exactly its revision.
      const marker = await addApp('marker');
      for (const r of [router, fresh]) {
        await waitFor(async () => BigInt((await status(r)).revision) >= marker, { timeoutMs: 10_000, message: 'both routers at the marker' });
      }
      const [a, b] = [await status(router), await status(fresh)];
      expect(a.revision).toBe(String(marker));
      expect(a.revision).toBe(b.revision);
      expect(a.digest).toBe(b.digest);
      expect(a.routes).toBe(b.routes);
    } finally {
      await link.close();
    }
  });
});
