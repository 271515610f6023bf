/**
 * The router under test, as operators run it (packages/router/bin/paas-router.js, built by
 * `pnpm exec tsc -b`), plus readers for its admin port: /readyz, /status, /metrics.
 */
import { fileURLToPath } from 'node:url';
import { start, run } from './procs.mjs';
import { freePorts, waitFor } from './net.mjs';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const ROUTER_BIN = `${REPO_ROOT}packages/router/bin/paas-router.js`;

let helpText;
/** The router's --help, read once: new flags (e.g. --workers) appear while others work on it. */
export async function routerHelp() {
  if (helpText === undefined) {
    const res = await run(process.execPath, [ROUTER_BIN, '--help'], { timeoutMs: 20_000 });
    helpText = res.stdout + res.stderr;
  }
  return helpText;
}

export async function routerSupportsWorkers() {
  return /--workers\b/.test(await routerHelp());
}

export async function routerSupportsUpstreamClient() {
  return /--upstream-client\b/.test(await routerHelp());
}

/**
 * Spawns a router on free ports. Resolves once spawned (not ready): { proc, url, admin, spawnedAt }.
 * `spawnedAt` is performance.now() just before spawn, for cold-start timing.
 */
export async function spawnRouter({ etcd, prefix, id, cpus, workers, extraArgs = [], env, bin = ROUTER_BIN, node = process.execPath }) {
  const [listen, admin] = await freePorts(2);
  const args = [
    bin,
    '--etcd', etcd,
    '--prefix', prefix,
    '--listen', `127.0.0.1:${listen}`,
    '--admin', `127.0.0.1:${admin}`,
    '--id', id,
    '--log-level', 'warn',
    '--start-timeout', '120s',
    ...(workers ? ['--workers', String(workers)] : []),
    ...extraArgs,
  ];
  const spawnedAt = performance.now();
  const proc = start(`router ${id}`, node, args, { cpus, env });
  return { proc, url: `http://127.0.0.1:${listen}`, listenPort: listen, admin: `http://127.0.0.1:${admin}`, spawnedAt };
}

/** Polls /readyz every `intervalMs` until 200; resolves ms since spawn. */
export async function waitReady(router, { timeoutMs = 120_000, intervalMs = 10 } = {}) {
  await waitFor(
    async () => (await fetch(`${router.admin}/readyz`, { signal: AbortSignal.timeout(2000) })).status === 200,
    { timeoutMs, intervalMs, message: `${router.proc.name} /readyz`, proc: router.proc },
  );
  return performance.now() - router.spawnedAt;
}

/**
 * Resolves ms since spawn when the router logs `router ready` (spawn it with `--log-level info`):
 * the moment /readyz turns 200, seen without asking. Polling /readyz every 10 ms during a cold
 * start costs the starting router's one thread a fastify request each time (80-90 ms of a 100k-app
 * start); checks /readyz once afterwards, so a line without readiness fails the bench.
 */
export async function readyLineMs(router, { timeoutMs = 120_000 } = {}) {
  const stdout = router.proc.child.stdout;
  const seenAt = await new Promise((resolve, reject) => {
    let tail = '';
    const timer = setTimeout(() => finish(new Error(`${router.proc.name}: no "router ready" line in ${timeoutMs} ms`)), timeoutMs);
    const onData = (chunk) => {
      const at = performance.now();
      const text = tail + chunk.toString();
      if (text.includes('"msg":"router ready"')) finish(undefined, at);
      else tail = text.slice(-64);
    };
    const onExit = () => finish(new Error(`${router.proc.name} exited before it was ready: ${router.proc.lines.slice(-5).join(' | ')}`));
    function finish(err, at) {
      clearTimeout(timer);
      stdout.off('data', onData);
      router.proc.child.off('exit', onExit);
      if (err) reject(err);
      else resolve(at);
    }
    stdout.on('data', onData);
    router.proc.child.once('exit', onExit);
  });
  const res = await fetch(`${router.admin}/readyz`, { signal: AbortSignal.timeout(5000) });
  if (res.status !== 200) throw new Error(`${router.proc.name} logged "router ready" but /readyz answered ${res.status}`);
  return seenAt - router.spawnedAt;
}

export async function startRouter(opts) {
  const router = await spawnRouter(opts);
  router.readyMs = await waitReady(router);
  return router;
}

export async function metricsText(router) {
  const res = await fetch(`${router.admin}/metrics`, { signal: AbortSignal.timeout(5000) });
  return res.text();
}

/** One counter/gauge value (no labels) from Prometheus text. */
export function metricValue(text, name) {
  const m = new RegExp(`^${name}(?:\\{\\})? ([0-9.eE+-]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

/** A histogram's cumulative buckets, sum and count: { buckets: [[le, count]...], sum, count }. */
export function histogram(text, name) {
  const buckets = [];
  const re = new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} ([0-9.eE+-]+)$`, 'gm');
  for (let m = re.exec(text); m; m = re.exec(text)) buckets.push([m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2])]);
  return { buckets, sum: metricValue(text, `${name}_sum`) ?? 0, count: metricValue(text, `${name}_count`) ?? 0 };
}

/** after - before, bucket by bucket (the observations made in between). */
export function histogramDiff(after, before) {
  return {
    buckets: after.buckets.map(([le, c], i) => [le, c - (before.buckets[i]?.[1] ?? 0)]),
    sum: after.sum - before.sum,
    count: after.count - before.count,
  };
}

/**
 * A quantile from cumulative buckets, interpolated linearly inside the bucket (what Prometheus'
 * histogram_quantile does); the answer is only as fine as the bucket bounds.
 */
export function histogramQuantile(h, q) {
  if (h.count <= 0) return undefined;
  const rank = q * h.count;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, c] of h.buckets) {
    if (c >= rank) {
      if (le === Infinity) return prevLe;
      return prevLe + ((le - prevLe) * (rank - prevCount)) / Math.max(1, c - prevCount);
    }
    prevLe = le;
    prevCount = c;
  }
  return prevLe;
}
