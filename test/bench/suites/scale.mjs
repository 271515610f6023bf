/**
 * Scale at 100k apps (two instances each):
 * - cold start: spawn → the router's "router ready" log line (the moment /readyz turns 200; asked once
 *   after, not polled: see readyLineMs), RSS sampled every 20 ms meanwhile; --rounds starts one
 *   after the other over the same etcd (a start moves by several tenths of a second from one to
 *   the next on this machine), the median reported with every start's figure;
 * - RSS after load: VmRSS 2 s after ready;
 * - one applied change: N app+instance transactions, the router's own
 *   router_table_change_duration_seconds histogram before/after (p50/p99 interpolated in the
 *   buckets, mean = sum/count);
 * - re-list peak: etcd is restarted (same ports and data), which cuts the router's watch stream
 *   so it lists the whole prefix again and swaps in a new table while the old one is still live;
 *   RSS sampled every 20 ms until router_table_swaps_total goes up.
 * The router is not pinned: its start and re-list use V8's GC helper threads, as in production.
 */
import { appOps } from '../lib/etcd-load.mjs';
import { foreignCpuMeter, rssMB, rssSampler } from '../lib/cpu.mjs';
import { waitFor } from '../lib/net.mjs';
import { run, sleep } from '../lib/procs.mjs';
import { readyLineMs, spawnRouter, metricsText, metricValue, histogram, histogramDiff, histogramQuantile } from '../lib/router.mjs';
import { PREFIX } from './propagation.mjs';

export async function scaleSuite(ctx) {
  const apps = ctx.scaleApps;
  const total = await ctx.ensureApps(apps);
  const etcd = await ctx.etcd();
  const etcdClient = await ctx.etcdClient();
  const backend = await ctx.backend();
  ctx.log(`  ${total} apps in etcd; ${ctx.rounds} cold start(s) of one router, one after the other`);
  const starts = [];
  let router;
  let startRss;
  for (let i = 0; i < ctx.rounds; i++) {
    if (router !== undefined) await router.proc.stop();
    router = await spawnRouter({ etcd: etcd.endpoint, prefix: PREFIX, id: 'scale', extraArgs: ['--log-level', 'info'] });
    startRss = rssSampler(router.proc.pid, 20);
    // How much other work on the machine slowed the cold start (reported, not retried).
    const foreign = foreignCpuMeter([router.proc.pid, etcd.pid, backend.proc.pid]);
    try {
      const ms = await readyLineMs(router, { timeoutMs: ctx.readyTimeoutMs });
      starts.push({ ms, otherCpuCores: foreign.stop(), peakMB: startRss.stop().peakMB });
    } catch (err) {
      startRss.stop();
      await router.proc.stop();
      throw err;
    }
    ctx.log(`  start ${i + 1}: ${starts[i].ms.toFixed(0)} ms${starts[i].otherCpuCores > 0.1 ? ` — other processes used ${starts[i].otherCpuCores.toFixed(2)} cores meanwhile` : ''}`);
  }
  const median = [...starts].sort((a, b) => a.ms - b.ms)[starts.length >> 1];
  try {
    const coldStartMs = median.ms;
    const otherCpuCoresStart = median.otherCpuCores;
    const startPeak = { peakMB: Math.max(...starts.map((x) => x.peakMB)) };
    await sleep(2000);
    const rssAfterLoadMB = rssMB(router.proc.pid);
    // Whether the bundled start or dist/'s modules ran (bin/paas-router.js chooses by build age).
    const startModules = (await (await fetch(`${router.admin}/status`)).json()).modules ?? 'dist';
    ctx.log(`  cold start ${coldStartMs.toFixed(0)} ms (${startModules}; median of ${starts.length}), RSS after load ${rssAfterLoadMB?.toFixed(0)} MB (peak while loading ${startPeak.peakMB.toFixed(0)} MB)`);

    // One applied change: sequential transactions, each waited for (applied revision reached).
    const before = histogram(await metricsText(router), 'router_table_change_duration_seconds');
    for (let i = 0; i < ctx.scaleChanges; i++) {
      const name = `scale-${i}`;
      const res = await etcdClient.txn([], appOps(PREFIX, name, `${name}.bench.local`, backend.url, 1));
      await waitFor(async () => (metricValue(await metricsText(router), 'router_applied_revision') ?? 0) >= Number(res.revision), {
        timeoutMs: 10_000,
        intervalMs: 2,
        message: `router to apply revision ${res.revision}`,
        proc: router.proc,
      });
    }
    const after = histogram(await metricsText(router), 'router_table_change_duration_seconds');
    const d = histogramDiff(after, before);
    const change = {
      count: d.count,
      meanMs: d.count ? (d.sum / d.count) * 1000 : NaN,
      p50Ms: (histogramQuantile(d, 0.5) ?? NaN) * 1000,
      p99Ms: (histogramQuantile(d, 0.99) ?? NaN) * 1000,
    };
    ctx.log(`  one change: mean ${change.meanMs.toFixed(3)} ms, p50 ~${change.p50Ms.toFixed(3)} ms, p99 ~${change.p99Ms.toFixed(3)} ms (${d.count} changes)`);

    // Re-list: a lost watch is resumed, not re-listed, unless a compaction passed the router's
    // revision. So: freeze the router, restart etcd (its watch stream is gone when it wakes), write
    // and compact past its revision, wake it; watch RSS until it swapped in a freshly listed table.
    // The time includes the mirror's re-list jitter (0-2 s).
    const swaps0 = metricValue(await metricsText(router), 'router_table_swaps_total') ?? 0;
    const relistRss = rssSampler(router.proc.pid, 20);
    const t0 = performance.now();
    let relist;
    try {
      router.proc.child.kill('SIGSTOP');
      try {
        await etcd.restart();
        // Two writes: a compaction at the second removes the first, the router's next revision.
        const record = JSON.stringify({ routes: [{ host: 'scale-relist-marker.bench.local' }] });
        await etcdClient.put(`${PREFIX}/apps/scale-relist-marker`, record);
        const marker = await etcdClient.put(`${PREFIX}/apps/scale-relist-marker`, record);
        const compacted = await run('etcdctl', ['--endpoints', etcd.endpoint, 'compact', String(marker)], { env: { ETCDCTL_API: '3' } });
        if (compacted.code !== 0) throw new Error(`etcdctl compact failed: ${compacted.stderr}`);
      } finally {
        router.proc.child.kill('SIGCONT');
      }
      await waitFor(async () => (metricValue(await metricsText(router), 'router_table_swaps_total') ?? 0) > swaps0, {
        timeoutMs: ctx.readyTimeoutMs,
        intervalMs: 20,
        message: 'router to re-list after the compaction',
        proc: router.proc,
      });
      const peak = relistRss.stop();
      relist = { method: 'etcd restart + compaction past the frozen router (watch compacted → full re-list)', peakMB: peak.peakMB, samples: peak.samples, seconds: (performance.now() - t0) / 1000 };
    } catch (err) {
      const peak = relistRss.stop();
      relist = { method: 'etcd restart + compaction', error: err.message.split('\n')[0], peakMB: peak.peakMB, samples: peak.samples };
    }
    ctx.log(`  re-list (${relist.method}): peak RSS ${relist.peakMB.toFixed(0)} MB${relist.seconds ? ` in ${relist.seconds.toFixed(1)} s` : ''}${relist.error ? ` — ${relist.error}` : ''}`);
    return { apps: total, coldStartMs, coldStarts: starts.map((x) => x.ms), startModules, otherCpuCoresStart, startPeakMB: startPeak.peakMB, rssAfterLoadMB, change, relist };
  } finally {
    startRss.stop();
    await router.proc.stop();
  }
}
