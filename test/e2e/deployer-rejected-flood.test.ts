/**
 * Bad input never blocks good work: 5,000 rejected records under the prefix used to make each
 * router's status record ~600 KB, over the 64 KiB every reader applies, so the deployer saw the
 * routers as unreadable and every redeploy failed at "routers apply". Now the record lists the
 * newest few with a count and stays small, /status lists them all, and a redeploy under load
 * through two real routers goes through without a failed request.
 */
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, test } from 'vitest';
import { request } from 'undici';
import { connectEtcd, KeyLayout, MAX_VALUE_BYTES, parseRouterStatusRecord, type Etcd } from '@paas/registry';
import { redeploy, register } from '@paas/deployer';
import { sharedEtcdEndpoints, uniquePrefix } from '../harness/etcd.js';
import { ProcessGroup, startRouter, startSampleApp, type RouterProcess } from '../harness/processes.js';
import { waitFor } from '../harness/wait.js';
import { startLoad } from '../../packages/deployer/test/support/load.js';

const BIN = fileURLToPath(new URL('../../packages/deployer/bin/paas-deploy.js', import.meta.url));
const HOST = 'www.mango.com';
const BAD = 5000;
/** etcd's default --max-txn-ops is 128. */
const BATCH = 125;

let group: ProcessGroup;
let etcd: Etcd;
afterEach(async () => {
  await group.stopAll();
  await etcd.close();
});

async function adminStatus(r: RouterProcess): Promise<{ rejected: unknown[]; rejectedCount: number; revision: string }> {
  const res = await request(`${r.adminUrl}/status`);
  return (await res.body.json()) as { rejected: unknown[]; rejectedCount: number; revision: string };
}

describe('5,000 rejected records under the prefix', { timeout: 180_000 }, () => {
  test('the status records stay readable, paas-deploy status counts them, and a redeploy under load loses no request', async () => {
    const endpoints = sharedEtcdEndpoints();
    const prefix = uniquePrefix('rejected-flood');
    const layout = new KeyLayout(prefix);
    group = new ProcessGroup();
    etcd = connectEtcd({ endpoints });
    await etcd.put(layout.app('mango'), JSON.stringify({ routes: [{ host: HOST }], healthCheck: { path: '/healthz' } }));
    const routers = await Promise.all(['r1', 'r2'].map((id) => startRouter({ etcdEndpoints: endpoints, prefix, id, group, readyTimeoutMs: 60_000 })));
    const v1 = await Promise.all([0, 1].map((i) => startSampleApp({ app: 'mango', name: `v1-${i}`, release: 'v1', group })));
    for (const [i, a] of v1.entries()) await register(etcd, layout, { app: 'mango', url: a.url, id: `v1-${i}`, release: 'v1' });

    // 5,000 bad instance records of other apps, written while the routers watch.
    let last = 0n;
    for (let start = 0; start < BAD; start += BATCH) {
      const ops = Array.from({ length: Math.min(BATCH, BAD - start) }, (_, k) => ({
        put: layout.instance(`junk-${String(start + k).padStart(4, '0')}`, 'web-1'),
        value: JSON.stringify({ url: 'ftp://10.0.0.3:21', state: 'ready', release: 'broken agent' }),
      }));
      last = (await etcd.txn([], ops)).revision;
    }
    for (const r of routers) {
      await waitFor(async () => BigInt((await adminStatus(r)).revision) >= last, { timeoutMs: 30_000, message: `${r.url} to apply the bad records` });
    }

    // Each status record in etcd: readable, small, counting all 5,000; /status lists them all.
    for (const id of ['r1', 'r2']) {
      const entry = await waitFor(async () => {
        const e = await etcd.get(layout.router(id));
        return e && BigInt((JSON.parse(e.value.toString()) as { revision: string }).revision) >= last ? e : undefined;
      }, { timeoutMs: 30_000, message: `${id}'s record to show revision ${last}` });
      console.log(`[size] ${id}: status record ${entry.value.byteLength} bytes with ${BAD} rejected records`);
      expect(entry.value.byteLength).toBeLessThan(MAX_VALUE_BYTES / 4);
      const parsed = parseRouterStatusRecord(entry.value);
      expect(parsed.ok).toBe(true);
      if (!parsed.ok) return;
      expect(parsed.value.rejectedCount).toBe(BAD);
      expect(parsed.value.rejected).toHaveLength(20);
      // The newest: all from the last batch (one revision), the lowest keys of it.
      expect(parsed.value.rejected.map((r) => r.revision)).toEqual(Array(20).fill(last.toString()));
      expect(parsed.value.rejected.map((r) => r.key)).toEqual(Array.from({ length: 20 }, (_, i) => layout.instance(`junk-${BAD - BATCH + i}`, 'web-1')));
    }
    for (const r of routers) {
      const s = await adminStatus(r);
      expect(s.rejected).toHaveLength(BAD);
      expect(s.rejectedCount).toBe(BAD);
    }

    // paas-deploy status: both routers readable, 5000 rejected each.
    const status = group.spawn(process.execPath, [BIN, 'status'], { name: 'paas-deploy status', env: { ETCD_ENDPOINTS: endpoints.join(','), PAAS_PREFIX: prefix } });
    expect((await status.exited).code, status.tail()).toBe(0);
    const text = status.stdout.join('\n');
    expect(text).not.toContain('unreadable');
    expect(text).toMatch(new RegExp(`^  r1\\s+\\d+\\s+\\S+\\s+\\S+\\s+1\\s+${BAD}\\s+0`, 'm'));
    expect(text).toMatch(new RegExp(`^  r2\\s+\\d+\\s+\\S+\\s+\\S+\\s+1\\s+${BAD}\\s+0`, 'm'));

    // A redeploy under load through both routers.
    const load = startLoad({ targets: routers.map((r) => r.url), host: HOST, concurrency: 4, maxMs: 120_000 });
    await load.waitForRequests(200, 30_000);
    const v2 = await Promise.all([0, 1].map((i) => startSampleApp({ app: 'mango', name: `v2-${i}`, release: 'v2', group })));
    const result = await redeploy(etcd, layout, { app: 'mango', urls: v2.map((a) => a.url), release: 'v2' });
    expect(result.confirm.routers.map((r) => r.id).sort()).toEqual(['r1', 'r2']);
    expect(result.drain?.deleted.sort()).toEqual(['v1-0', 'v1-1']);
    await Promise.all(v1.map((a) => a.proc.stop()));
    await load.waitForRequests(200, 30_000);
    const report = await load.stop();
    console.log(`[load] ${report.total} requests through 2 routers with ${BAD} rejected records: ${JSON.stringify(report.releases)}, non-2xx ${JSON.stringify(report.non2xx)}, errors ${JSON.stringify(report.errors)}`);
    expect(report.non2xx, report.samples.join('\n')).toEqual({});
    expect(report.errors, report.samples.join('\n')).toEqual({});
    expect(report.releases.v1).toBeGreaterThan(0);
    expect(report.releases.v2).toBeGreaterThan(0);
  });
});
