/**
 * Propagation: two router replicas watching the same etcd, with 0, 10k and 100k apps loaded. Each
 * iteration writes a new app and its instance in one transaction, then polls both replicas as
 * fast as loopback allows (one undici keep-alive connection each, back to back) until each
 * answers 200 for the new host: the time from the transaction's acknowledgement to that first
 * 200, per replica, and for both (the slower of the two).
 *
 * Replicas are restarted at each level (after the apps are loaded) rather than fed 100k apps
 * through their watch; their cold start is recorded too. The first puts after the start are a
 * warm-up and not measured: the replicas' heaps are still settling after the load (V8 finishes
 * the collections the load started), as in every other configuration's warm-up. They are not pinned: two replicas and
 * the poller share the machine's two cores, as replicas on one host would.
 */
import { Pool } from 'undici';
import { appOps, loadApps } from '../lib/etcd-load.mjs';
import { startRouter, metricsText, histogram, histogramDiff, histogramQuantile } from '../lib/router.mjs';
import { summarize } from '../lib/stats.mjs';
import { foreignCpuMeter } from '../lib/cpu.mjs';

export const PREFIX = '/paas';

/** Polls `pool` with Host `host` until 200; resolves ms since `t0` (Infinity after timeoutMs). */
async function firstOk(pool, host, t0, timeoutMs) {
  for (;;) {
    const now = performance.now();
    if (now - t0 > timeoutMs) return Infinity;
    try {
      const res = await pool.request({ path: '/', method: 'GET', headers: { host } });
      await res.body.dump();
      if (res.statusCode === 200) return performance.now() - t0;
    } catch {
      // a reset connection: poll again
    }
  }
}

export async function propagationSuite(ctx) {
  const etcdClient = await ctx.etcdClient();
  const backend = await ctx.backend();
  const levels = [];
  for (const apps of ctx.propagationLevels) {
    await ctx.ensureApps(apps);
    ctx.log(`  ${apps} apps loaded; starting two replicas`);
    const etcd = await ctx.etcd();
    const replicas = await Promise.all(
      ['r1', 'r2'].map((id) => startRouter({ etcd: etcd.endpoint, prefix: PREFIX, id: `prop-${id}` })),
    );
    const pools = replicas.map((r) => new Pool(r.url, { connections: 1, pipelining: 1 }));
    try {
      for (let w = 0; w < ctx.propagationWarmup; w++) {
        const host = `prop-${apps}-warmup-${w}.bench.local`;
        await etcdClient.txn([], appOps(PREFIX, `prop-${apps}-warmup-${w}`, host, backend.url, 1));
        await Promise.all(pools.map((p) => firstOk(p, host, performance.now(), 10_000)));
      }
      const before = await Promise.all(replicas.map(async (r) => histogram(await metricsText(r), 'router_table_change_duration_seconds')));
      // Not retried (a level costs minutes at 100k apps), but how disturbed it was is reported.
      const foreign = foreignCpuMeter([...replicas.map((r) => r.proc.pid), etcd.pid, backend.proc.pid]);
      const per = [[], []];
      const both = [];
      const deadline = Date.now() + ctx.propagationBudgetMs;
      let i = 0;
      for (; i < ctx.propagationIterations && Date.now() < deadline; i++) {
        const name = `prop-${apps}-${i}`;
        const host = `${name}.bench.local`;
        await etcdClient.txn([], appOps(PREFIX, name, host, backend.url, 1));
        const t0 = performance.now();
        const ms = await Promise.all(pools.map((p) => firstOk(p, host, t0, 10_000)));
        ms.forEach((v, k) => per[k].push(v));
        both.push(Math.max(...ms));
      }
      const after = await Promise.all(replicas.map(async (r) => histogram(await metricsText(r), 'router_table_change_duration_seconds')));
      const change = histogramDiff(after[0], before[0]);
      const level = {
        apps,
        iterations: i,
        coldStartMs: replicas.map((r) => r.readyMs),
        otherCpuCores: foreign.stop(),
        r1: summarize(per[0]),
        r2: summarize(per[1]),
        both: summarize(both),
        changeR1: {
          count: change.count,
          meanMs: change.count ? (change.sum / change.count) * 1000 : undefined,
          p50Ms: (histogramQuantile(change, 0.5) ?? NaN) * 1000,
          p99Ms: (histogramQuantile(change, 0.99) ?? NaN) * 1000,
        },
      };
      levels.push(level);
      ctx.log(
        `  ${apps} apps: put→200 on both replicas p50 ${level.both.p50.toFixed(2)} ms, p99 ${level.both.p99.toFixed(2)} ms, max ${level.both.max.toFixed(2)} ms (${i} puts)` +
          (level.otherCpuCores > 0.1 ? ` — other processes used ${level.otherCpuCores.toFixed(2)} cores meanwhile` : ''),
      );
    } finally {
      await Promise.all(pools.map((p) => p.close().catch(() => {})));
      await Promise.all(replicas.map((r) => r.proc.stop()));
    }
  }
  return { iterations: ctx.propagationIterations, warmup: ctx.propagationWarmup, levels };
}
