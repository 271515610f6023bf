/**
 * The configurations traffic is sent through, started one at a time on the same backend:
 * direct (no proxy), haproxy, nginx, router (one process, default upstream client: native when
 * its start-up check passes), router-portable (one process, --upstream-client portable, when the
 * router's --help offers it), router-workers (--workers 2, when --help offers it). Each start
 * resolves { name, url, host, pids, cpus, note, stop }.
 *
 * Placement on a 2-core machine: the proxy under test on core 0 (`cpus.proxy`), the backend and
 * the client on core 1 (`cpus.client`), so the proxy never competes with them for its core and
 * its CPU-seconds are its own. The multi-worker router gets both cores (that is its point), so it
 * competes with the client and backend; its requests per CPU-second stay comparable.
 */
import { mkdtemp } from 'node:fs/promises';
import path from 'node:path';
import { startHaproxy } from './haproxy.mjs';
import { startNginx } from './nginx.mjs';
import { freePorts } from './net.mjs';
import { startRouter, routerSupportsWorkers, routerSupportsUpstreamClient } from './router.mjs';
import { appOps } from './etcd-load.mjs';

export const BENCH_HOST = 'bench.local';
export const ALL_TARGETS = ['direct', 'haproxy', 'nginx', 'router', 'router-portable', 'router-workers', 'router-baseline'];

/** Why a target cannot run here, or undefined when it can. */
export async function unavailable(ctx, name) {
  if (name === 'haproxy' && !ctx.tools.haproxy) return 'haproxy not installed';
  if (name === 'nginx' && !ctx.tools.nginx) return 'nginx not installed';
  if (name === 'router-baseline' && ctx.baseline === undefined) return 'not asked for (--baseline DIR)';
  if (name === 'router-workers' && !(await routerSupportsWorkers())) return 'not available: the router has no --workers flag (paas-router --help)';
  if (name === 'router-portable' && !(await routerSupportsUpstreamClient())) return 'not available: the router has no --upstream-client flag (paas-router --help)';
  return undefined;
}

export async function startTarget(ctx, name) {
  const backend = await ctx.backend();
  const dir = await mkdtemp(path.join(ctx.tmpDir, `${name}-`));
  const cpus = ctx.cpus;
  switch (name) {
    case 'direct':
      return {
        name,
        url: backend.url,
        host: BENCH_HOST,
        pids: [],
        cpus: 'none (backend on client core)',
        note: 'no proxy; the backend alone, sharing its core with the client',
        stop: async () => {},
      };
    case 'haproxy': {
      const [port] = await freePorts(1);
      const proc = await startHaproxy(ctx.tools.haproxy, { dir, port, backendPort: backend.port, cpus: cpus.proxy });
      return { name, url: `http://127.0.0.1:${port}`, host: BENCH_HOST, pids: [proc.pid], cpus: proc.pinned ?? 'unpinned', note: 'nbthread 1, http-reuse always', stop: () => proc.stop() };
    }
    case 'nginx': {
      const [port] = await freePorts(1);
      const proc = await startNginx(ctx.tools.nginx, { dir, port, backendPort: backend.port, cpus: cpus.proxy });
      return { name, url: `http://127.0.0.1:${port}`, host: BENCH_HOST, pids: [proc.pid], cpus: proc.pinned ?? 'unpinned', note: 'master + 1 worker (both counted), upstream keepalive 128', stop: () => proc.stop() };
    }
    case 'router':
    case 'router-portable':
    case 'router-workers':
    case 'router-baseline': {
      const etcd = await ctx.etcd();
      const prefix = '/bench-proxy';
      if (!ctx.proxyAppWritten) {
        const c = await ctx.etcdClient();
        await c.txn([], appOps(prefix, 'bench', BENCH_HOST, backend.url, 1));
        ctx.proxyAppWritten = true;
      }
      const workers = name === 'router-workers' ? 2 : undefined;
      const routerCpus = workers ? cpus.all : cpus.proxy;
      const extraArgs = name === 'router-portable' ? ['--upstream-client', 'portable'] : [];
      const baseline = name === 'router-baseline' ? ctx.baseline : undefined;
      const router = await startRouter({ etcd: etcd.endpoint, prefix, id: `bench-${name}`, cpus: routerCpus, workers, extraArgs, ...(baseline && { bin: baseline.bin, node: baseline.node }) });
      const client = await upstreamClientOf(router);
      return {
        name,
        url: router.url,
        host: BENCH_HOST,
        pids: [router.proc.pid],
        cpus: router.proc.pinned ?? 'unpinned',
        note: (workers ? '--workers 2 (primary + workers counted), on both cores' : 'one process') + (client ? `, ${client} upstream client` : '') + (baseline ? `, build in ${baseline.dir} on ${baseline.node}` : ''),
        stop: () => router.proc.stop(),
      };
    }
    default:
      throw new Error(`unknown target ${name}`);
  }
}

/** The upstream client a router runs, from /status (a --workers primary lists its workers'). */
async function upstreamClientOf(router) {
  try {
    const status = await (await fetch(`${router.admin}/status`, { signal: AbortSignal.timeout(5000) })).json();
    return status.upstreamClient ?? status.workers?.find((w) => w.upstreamClient)?.upstreamClient;
  } catch {
    return undefined;
  }
}
