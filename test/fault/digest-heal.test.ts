/**
 * A router whose table differs from the majority at the same revision lists etcd again by
 * itself. The divergence here is a real one: router A saw a good value and then a bad one for
 * the same key (so it keeps the last good value), while routers B and C started after the bad
 * value and never had a good one. A is the odd one out and must converge to B and C.
 */
import { afterAll, describe, expect, inject, it } from 'vitest';
import { request } from 'undici';
import { runEtcdctl, uniquePrefix } from '../harness/etcd.js';
import { processes, startRouter, startSampleApp, type RouterProcess } from '../harness/processes.js';
import { waitFor } from '../harness/wait.js';

const endpoints = inject('etcdEndpoints');
const prefix = uniquePrefix('digest');

interface Status { revision: string; digest: string }
const status = async (r: RouterProcess) => (await (await request(`${r.adminUrl}/status`)).body.json()) as Status;

async function put(key: string, value: string): Promise<bigint> {
  const out = JSON.parse(await runEtcdctl(endpoints, ['put', key, value, '-w', 'json'])) as { header: { revision: number } };
  return BigInt(out.header.revision);
}

afterAll(() => processes.stopAll());

describe('digest self-heal', () => {
  it('re-lists the router whose digest differs from the majority, and says why', async () => {
    const app = await startSampleApp({ app: 'kiwi', name: 'k1' });
    const args = ['--digest-check', '200ms'];
    await put(`${prefix}/apps/kiwi`, JSON.stringify({ routes: [{ host: 'kiwi.example.com' }] }));
    await put(`${prefix}/instances/kiwi/k1`, JSON.stringify({ url: app.url, state: 'ready' }));
    const a = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'a', extraArgs: args });
    const bad = await put(`${prefix}/instances/kiwi/k1`, '{"url":"gopher://x","state":"ready"}');
    await waitFor(async () => BigInt((await status(a)).revision) >= bad, { message: 'a applied the bad value' });
    const kept = (await request(`${a.url}/`, { headers: { host: 'kiwi.example.com' } })).statusCode;
    expect(kept).toBe(200);

    const b = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'b', extraArgs: args });
    const c = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'c', extraArgs: args });
    // All three at one revision: one more write that every router applies through its watch.
    const marker = await put(`${prefix}/apps/marker`, JSON.stringify({ routes: [] }));
    for (const r of [a, b, c]) await waitFor(async () => BigInt((await status(r)).revision) >= marker, { message: 'all at the marker' });
    expect((await status(b)).digest).toBe((await status(c)).digest);

    await a.proc.waitForLine((l) => l.includes('table digest differs from the majority'), { timeoutMs: 15_000 });
    await waitFor(async () => (await status(a)).digest === (await status(b)).digest, { timeoutMs: 10_000, message: 'a to converge on the majority digest' });
    // Like b and c, a now has no good value for the instance: the app has no ready instance.
    const res = await request(`${a.url}/`, { headers: { host: 'kiwi.example.com' } });
    await res.body.dump();
    expect(res.statusCode).toBe(503);
  });
});
