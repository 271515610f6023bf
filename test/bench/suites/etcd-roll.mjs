/**
 * A rolling restart of a 3-member etcd cluster holding 100k apps (300k keys), with two routers
 * watching it: each member in turn stopped (SIGTERM), started again and waited for (healthy), then
 * one app written and waited for in both routers. Reports re-lists per router
 * (router_resyncs_total, summed over its --workers) and etcd CPU seconds per member over the roll;
 * for scale, the same members' CPU while the two routers listed everything at their cold start
 * (one full list per worker).
 */
import { connectEtcd } from '@paas/registry';
import { startEtcdCluster } from '../lib/etcd-cluster.mjs';
import { appOps, loadApps } from '../lib/etcd-load.mjs';
import { onCleanup } from '../lib/procs.mjs';
import { waitFor } from '../lib/net.mjs';
import { metricsText, metricValue, routerSupportsWorkers, spawnRouter, waitReady } from '../lib/router.mjs';

const PREFIX = '/roll';

export async function etcdRollSuite(ctx) {
  const apps = ctx.scaleApps;
  const backend = await ctx.backend();
  const cluster = await startEtcdCluster();
  onCleanup(() => cluster.cleanup());
  const etcd = connectEtcd({ endpoints: cluster.endpoints, callTimeoutMs: 60_000 });
  onCleanup(() => etcd.close());
  const loaded = await loadApps(etcd, { prefix: PREFIX, to: apps, backendUrl: backend.url });
  ctx.log(`  3-member cluster: loaded ${apps} apps (${loaded.keys} keys) in ${loaded.seconds.toFixed(1)} s`);

  const workers = (await routerSupportsWorkers()) ? 2 : undefined;
  const cpu = () => cluster.members.map((m) => m.cpuSeconds());
  const diff = (after, before) => after.map((a, i) => a - before[i]);

  const cpuBeforeStart = cpu();
  const routers = await Promise.all(
    ['roll-a', 'roll-b'].map((id) => spawnRouter({ etcd: cluster.endpoints.join(','), prefix: PREFIX, id, workers })),
  );
  for (const r of routers) onCleanup(() => r.proc.stop());
  await Promise.all(routers.map((r) => waitReady(r, { timeoutMs: ctx.readyTimeoutMs })));
  const coldStartCpu = diff(cpu(), cpuBeforeStart);
  ctx.log(`  two routers${workers ? ` (--workers ${workers})` : ''} listed everything: etcd CPU ${coldStartCpu.map((c) => c.toFixed(2)).join(' / ')} s per member`);

  const counter = async (r, name) => metricValue(await metricsText(r), name) ?? 0;
  const resyncs0 = await Promise.all(routers.map((r) => counter(r, 'router_resyncs_total')));
  const swaps0 = await Promise.all(routers.map((r) => counter(r, 'router_table_swaps_total')));
  const cpu0 = cpu();
  const t0 = performance.now();
  const steps = [];
  for (const member of cluster.members) {
    // Router watch streams on this member: the ones its restart breaks.
    const gauge = await (await fetch(`${member.clientUrl}/metrics`)).text();
    const watchStreams = Number(/^etcd_debugging_mvcc_watch_stream_total (\d+)/m.exec(gauge)?.[1] ?? 0);
    const stepStart = performance.now();
    await member.stop();
    await member.start();
    const restartMs = performance.now() - stepStart;
    const name = `roll-${member.name}`;
    const res = await etcd.txn([], appOps(PREFIX, name, `${name}.bench.local`, backend.url, 1));
    const written = performance.now();
    for (const r of routers) {
      await waitFor(async () => (await counter(r, 'router_applied_revision')) >= Number(res.revision), {
        timeoutMs: 60_000,
        intervalMs: 5,
        message: `${r.proc.name} to apply revision ${res.revision}`,
        proc: r.proc,
      });
    }
    steps.push({ member: member.name, watchStreams, restartMs, changeAppliedMs: performance.now() - written });
    ctx.log(`  ${member.name} (${watchStreams} watch streams) restarted in ${(restartMs / 1000).toFixed(1)} s; a change then reached both routers in ${(performance.now() - written).toFixed(0)} ms`);
  }
  const rollSeconds = (performance.now() - t0) / 1000;
  const rollCpu = diff(cpu(), cpu0);
  const relists = diff(await Promise.all(routers.map((r) => counter(r, 'router_resyncs_total'))), resyncs0);
  const swaps = diff(await Promise.all(routers.map((r) => counter(r, 'router_table_swaps_total'))), swaps0);
  ctx.log(`  roll: ${rollSeconds.toFixed(1)} s; re-lists per router ${relists.join(', ')} (table swaps ${swaps.join(', ')}); etcd CPU ${rollCpu.map((c) => c.toFixed(2)).join(' / ')} s per member`);
  await Promise.all(routers.map((r) => r.proc.stop()));
  return {
    apps,
    keys: loaded.keys,
    workers: workers ?? 1,
    routers: routers.length,
    relistsPerRouter: relists,
    tableSwapsPerRouter: swaps,
    rollSeconds,
    rollEtcdCpuSeconds: rollCpu,
    coldStartEtcdCpuSeconds: coldStartCpu,
    steps,
  };
}
