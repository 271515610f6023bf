/**
 * A router whose table digest differs from the majority of routers at the same revision lists
 * etcd again from scratch, without trusting what it concluded before. Routers of one version
 * build the same table from the same etcd state (a rejected key's last good value is read from
 * etcd's history), so the majority here is routers "of another version": status records at the
 * routers' revision with a digest these routers do not compute, as during a rolling upgrade.
 * Both real routers re-list, say why, and rebuild the same table: the kept value of a rejected
 * instance comes back from etcd's history instead of being dropped.
 */
import { afterAll, describe, expect, inject, it } from 'vitest';
import { request } from 'undici';
import { runEtcdctl, uniquePrefix } from '../harness/etcd.js';
import { processes, startRouter, startSampleApp, type RouterProcess } from '../harness/processes.js';
import { waitFor } from '../harness/wait.js';

const endpoints = inject('etcdEndpoints');
const prefix = uniquePrefix('digest');

interface Status { revision: string; digest: string; rejected: Array<{ key: string; kept?: string | null }> }
const status = async (r: RouterProcess) => (await (await request(`${r.adminUrl}/status`)).body.json()) as Status;

async function put(key: string, value: string): Promise<bigint> {
  const out = JSON.parse(await runEtcdctl(endpoints, ['put', key, value, '-w', 'json'])) as { header: { revision: number } };
  return BigInt(out.header.revision);
}

const metricsText = async (r: RouterProcess) => (await request(`${r.adminUrl}/metrics`)).body.text();

async function kiwi(r: RouterProcess): Promise<number> {
  const res = await request(`${r.url}/`, { headers: { host: 'kiwi.example.com' } });
  await res.body.dump();
  return res.statusCode;
}

afterAll(() => processes.stopAll());

describe('digest self-heal', () => {
  it('re-lists the routers whose digest differs from the majority, says why, and rebuilds the same table from etcd', async () => {
    const app = await startSampleApp({ app: 'kiwi', name: 'k1' });
    const args = ['--digest-check', '200ms'];
    await put(`${prefix}/apps/kiwi`, JSON.stringify({ routes: [{ host: 'kiwi.example.com' }] }));
    await put(`${prefix}/instances/kiwi/k1`, JSON.stringify({ url: app.url, state: 'ready' }));
    const a = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'a', extraArgs: args });
    const bad = await put(`${prefix}/instances/kiwi/k1`, '{"url":"gopher://x","state":"ready"}');
    await waitFor(async () => BigInt((await status(a)).revision) >= bad, { message: 'a applied the bad value' });
    // b starts after the bad value and reads the last good one from etcd's history.
    const b = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'b', extraArgs: args });
    const marker = await put(`${prefix}/apps/marker`, JSON.stringify({ routes: [] }));
    for (const r of [a, b]) await waitFor(async () => BigInt((await status(r)).revision) >= marker, { message: 'both at the marker' });
    const [sa, sb] = [await status(a), await status(b)];
    expect(sb.digest).toBe(sa.digest);
    expect(sb.rejected).toEqual(sa.rejected);
    expect(sa.rejected).toEqual([expect.objectContaining({ key: `${prefix}/instances/kiwi/k1`, kept: String(bad - 1n) })]);
    for (const r of [a, b]) expect(await kiwi(r)).toBe(200);

    // Three routers of another version at the same revision, agreeing on another digest.
    for (const id of ['v2-1', 'v2-2', 'v2-3']) {
      await put(`${prefix}/routers/${id}`, JSON.stringify({ revision: String(marker), digest: 'ffffffffffffffff', routes: 1, rejected: [], inflight: {} }));
    }
    for (const r of [a, b]) {
      const said = await r.proc.waitForLine((l) => l.includes('table digest differs from the majority'), { timeoutMs: 15_000 });
      // The other real router counts when its own record already says the marker revision.
      const verdict = JSON.parse(said) as { routersAtRevision: number };
      expect(verdict).toMatchObject({ ours: sa.digest, majority: 'ffffffffffffffff', agreeing: 3 });
      expect(verdict.routersAtRevision).toBeGreaterThanOrEqual(4);
      const from = r.proc.stdout.indexOf(said);
      const loaded = await waitFor(() => r.proc.stdout.slice(from).find((l) => l.includes('routing table loaded')), { timeoutMs: 15_000, message: 're-list done' });
      // The rejected instance was judged again from etcd's history, not carried over.
      expect(JSON.parse(loaded)).toMatchObject({ rejected: 1, recovered: 1, changed: 0, deleted: 0 });
      expect(await status(r)).toMatchObject({ digest: sa.digest, rejected: sa.rejected });
      expect(await kiwi(r)).toBe(200);
    }

    // Each check that found the disagreement is counted on /metrics (the digest alert reads it).
    for (const r of [a, b]) {
      const m = await metricsText(r);
      expect(Number(/^router_digest_mismatches_total (\d+)$/m.exec(m)?.[1])).toBeGreaterThanOrEqual(1);
    }
  });
});
