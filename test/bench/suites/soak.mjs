/**
 * Soak: a steady open-loop load (500 req/s by default) through two routers for 30 minutes (by
 * default) while the system around them changes as it does in production:
 *
 *   every --redeploy-every (30 s)        the app is redeployed (paas-deploy redeploy: two new
 *                                        backend processes, zero-downtime switch, old ones stopped)
 *   every --etcd-restart-every (5 m)     one member of the 3-member etcd cluster is restarted
 *   every --router-restart-every (10 m)  one router is stopped with SIGTERM (--drain-wait) and
 *                                        started again on the same ports, alternating
 *
 * The load generator reaches the routers as clients reach them through DNS with health checks
 * (or an L4 balancer): each new connection goes to the next router in rotation (round-robin),
 * to the other one when that connection attempt fails; a router whose /readyz says 503 leaves
 * the rotation within a poll. So a restart that loses a request written to a router shows up.
 *
 * Reported: requests and failed requests (target 0, by reason), the load generator's latency
 * (its own view: on a shared machine its scheduling is in it) with the slowest seconds, each
 * router's RSS after a warm-up and at the end of each life (growth target <= 10 %), the routers' event-loop delay
 * p99 per 10 s scrape window (prom-client's nodejs_eventloop_lag_p99_seconds, reset at each
 * scrape; its samples include the 10 ms sampling interval, so an idle loop reads ~10 ms), and
 * the redeploy, etcd and router-restart events with their durations.
 */
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool, request } from 'undici';
import { startEtcdCluster } from '../lib/etcd-cluster.mjs';
import { run, start, onCleanup, sleep } from '../lib/procs.mjs';
import { freePorts, waitFor } from '../lib/net.mjs';
import { ROUTER_BIN, metricValue } from '../lib/router.mjs';
import { summarize } from '../lib/stats.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DEPLOY_BIN = path.join(HERE, '../../../packages/deployer/bin/paas-deploy.js');
const BACKEND = path.join(HERE, '../lib/backend-server.mjs');
const PREFIX = '/soak';
const APP = 'soak';
const HOST = 'soak.bench.local';
const DRAIN_WAIT = '1s';
const HEALTH_POLL_MS = 100;
const SCRAPE_MS = 10_000;
/** RSS "at start" is taken this long after a router is ready (heaps and JIT settle first). */
const RSS_WARMUP_MS = 30_000;
/**
 * RSS at start and at end are each the median of this many scrapes: one sample moves by 20-30 %
 * with when V8 last collected.
 */
const RSS_SAMPLES = 3;
const RSS_AT = (samples) => (samples.length ? summarize(samples).p50 : undefined);

/** One router slot: fixed ports across restarts (a DNS name's address does not change). */
async function routerSlot(k, endpoints) {
  const [listen, admin] = await freePorts(2);
  const slot = {
    id: `soak-r${k}`,
    listen,
    admin,
    adminUrl: `http://127.0.0.1:${admin}`,
    proc: undefined,
    readyAt: 0,
    lives: [],
    async start() {
      this.proc = start(`router ${this.id}`, process.execPath, [
        ROUTER_BIN,
        '--etcd', endpoints.join(','),
        '--prefix', PREFIX,
        '--listen', `127.0.0.1:${listen}`,
        '--admin', `127.0.0.1:${admin}`,
        '--id', this.id,
        '--log-level', 'warn',
        '--drain-wait', DRAIN_WAIT,
      ]);
      await waitFor(async () => (await fetch(`${this.adminUrl}/readyz`, { signal: AbortSignal.timeout(2000) })).status === 200, {
        timeoutMs: 60_000,
        message: `${this.id} ready`,
        proc: this.proc,
      });
      this.readyAt = performance.now();
      this.lives.push({ pid: this.proc.pid, rssMb: [], lagP99Ms: [] });
    },
    life() {
      return this.lives[this.lives.length - 1];
    },
  };
  return slot;
}

/** Which routers take new connections (what a health-checking DNS or balancer would hand out). */
function rotation(slots) {
  const out = new Set();
  let next = 0;
  const timer = setInterval(async () => {
    for (const s of slots) {
      const ok = await request(`${s.adminUrl}/readyz`, { headersTimeout: 1000, bodyTimeout: 1000 }).then(
        async (res) => (await res.body.dump(), res.statusCode === 200),
        () => false,
      );
      if (ok) out.delete(s);
      else out.add(s);
    }
  }, HEALTH_POLL_MS);
  return {
    /** Ports for one new connection: round-robin over those in rotation, then the others. */
    order() {
      const inRotation = slots.filter((s) => !out.has(s));
      const first = inRotation.length > 0 ? inRotation[next++ % inRotation.length] : slots[next++ % slots.length];
      return [first, ...slots.filter((s) => s !== first)].map((s) => s.listen);
    },
    stop: () => clearInterval(timer),
  };
}

/** undici's connect hook: the first address that takes the connection (a failed attempt has sent nothing). */
function connector(rot) {
  return (_opts, callback) => {
    const ports = rot.order();
    const attempt = (i) => {
      const socket = net.connect({ host: '127.0.0.1', port: ports[i] });
      const onError = (err) => {
        socket.destroy();
        if (i + 1 < ports.length) attempt(i + 1);
        else callback(err, null);
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        callback(null, socket);
      });
    };
    attempt(0);
  };
}

/** Open-loop load at `rate` req/s until stop(); every error or non-2xx answer is a failure. */
function startLoad(pool, rate) {
  const failures = new Map();
  const latMs = [];
  /** The slowest answer per second of the run: when the tail happened (next to the events). */
  const worstPerSecond = new Map();
  let sent = 0;
  let ok = 0;
  let stopped = false;
  const t0 = performance.now();
  const fail = (reason) => failures.set(reason, (failures.get(reason) ?? 0) + 1);
  const one = async () => {
    const start = performance.now();
    try {
      const res = await pool.request({ path: '/', method: 'GET', headers: { host: HOST } });
      await res.body.dump();
      if (res.statusCode >= 200 && res.statusCode < 300) ok++;
      else fail(`HTTP ${res.statusCode}`);
      const ms = performance.now() - start;
      if (latMs.length < 2_000_000) latMs.push(ms);
      const second = Math.floor((start - t0) / 1000);
      if (ms > (worstPerSecond.get(second) ?? 0)) worstPerSecond.set(second, ms);
    } catch (err) {
      fail(err.code ?? err.message);
    }
  };
  const inFlight = new Set();
  const tick = () => {
    if (stopped) return;
    const due = Math.floor(((performance.now() - t0) / 1000) * rate);
    while (sent < due) {
      sent++;
      const p = one();
      inFlight.add(p);
      p.finally(() => inFlight.delete(p));
    }
    setTimeout(tick, 1);
  };
  tick();
  return {
    async stop() {
      stopped = true;
      await Promise.all(inFlight);
      const worstSeconds = [...worstPerSecond].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([atS, maxMs]) => ({ atS, maxMs: Math.round(maxMs) }));
      return { sent, ok, failed: sent - ok, failures: Object.fromEntries(failures), seconds: (performance.now() - t0) / 1000, latency: summarize(latMs), worstSeconds };
    },
  };
}

async function startBackend(name) {
  const [port] = await freePorts(1);
  const proc = start(name, process.execPath, [BACKEND, String(port)]);
  await waitFor(() => proc.lines.some((l) => l.startsWith('listening')), { message: `${name} to listen`, proc });
  return { proc, url: `http://127.0.0.1:${port}` };
}

async function deploy(endpoints, args) {
  const res = await run(process.execPath, [DEPLOY_BIN, '--etcd', endpoints.join(','), '--prefix', PREFIX, ...args], { timeoutMs: 120_000 });
  if (res.code !== 0) throw new Error(`paas-deploy ${args.slice(0, 2).join(' ')} exited ${res.code}: ${(res.stderr || res.stdout).trim().split('\n').slice(-3).join(' | ')}`);
}

/** RSS and event-loop delay p99 of each running router, every SCRAPE_MS. */
function scraper(slots) {
  const timer = setInterval(async () => {
    for (const s of slots) {
      if (!s.proc?.running || s.lives.length === 0) continue;
      const text = await fetch(`${s.adminUrl}/metrics`, { signal: AbortSignal.timeout(5000) }).then((r) => r.text(), () => undefined);
      if (text === undefined) continue;
      const life = s.life();
      const rssMb = (metricValue(text, 'process_resident_memory_bytes') ?? NaN) / 2 ** 20;
      const lag = metricValue(text, 'nodejs_eventloop_lag_p99_seconds');
      if (lag !== undefined) life.lagP99Ms.push(lag * 1000);
      if (performance.now() - s.readyAt >= RSS_WARMUP_MS) life.rssMb.push(rssMb);
    }
  }, SCRAPE_MS);
  return { stop: () => clearInterval(timer) };
}

/** Runs `fn` every `everyMs` from the start (never two at once) until `endAt`; records each event. */
async function every(everyMs, endAt, events, kind, fn) {
  for (let k = 1; ; k++) {
    const at = k * everyMs;
    if (at >= endAt.ms) return;
    const wait = endAt.t0 + at - performance.now();
    if (wait > 0) await sleep(wait);
    if (performance.now() - endAt.t0 >= endAt.ms) return;
    const t = performance.now();
    try {
      const detail = await fn(k);
      events.push({ kind, atS: Math.round((t - endAt.t0) / 1000), ms: Math.round(performance.now() - t), ...detail });
    } catch (err) {
      events.push({ kind, atS: Math.round((t - endAt.t0) / 1000), ms: Math.round(performance.now() - t), error: String(err.message ?? err).slice(0, 300) });
    }
  }
}

export async function soakSuite(ctx) {
  const { log } = ctx;
  const cluster = await startEtcdCluster();
  onCleanup(() => cluster.cleanup());
  log(`  etcd cluster of ${cluster.endpoints.length} members: ${cluster.endpoints.join(', ')}`);
  const slots = [await routerSlot(0, cluster.endpoints), await routerSlot(1, cluster.endpoints)];
  await Promise.all(slots.map((s) => s.start()));

  let backends = [await startBackend('backend r0-0'), await startBackend('backend r0-1')];
  await deploy(cluster.endpoints, ['app', 'set', APP, '--host', HOST]);
  await deploy(cluster.endpoints, ['redeploy', APP, ...backends.flatMap((b) => ['--url', b.url]), '--release', 'r0']);
  log(`  two routers ready, app ${APP} deployed; ${ctx.soakRate} req/s for ${ctx.soakSeconds} s`);

  const rot = rotation(slots);
  const pool = new Pool(`http://${HOST}`, { connections: 64, pipelining: 1, connect: connector(rot) });
  const scrape = scraper(slots);
  const events = [];
  const endAt = { t0: performance.now(), ms: ctx.soakSeconds * 1000 };
  const load = startLoad(pool, ctx.soakRate);

  await Promise.all([
    every(ctx.soakRedeployMs, endAt, events, 'redeploy', async (k) => {
      const next = [await startBackend(`backend r${k}-0`), await startBackend(`backend r${k}-1`)];
      try {
        await deploy(cluster.endpoints, ['redeploy', APP, ...next.flatMap((b) => ['--url', b.url]), '--release', `r${k}`]);
      } catch (err) {
        await Promise.all(next.map((b) => b.proc.stop()));
        throw err;
      }
      const old = backends;
      backends = next;
      await Promise.all(old.map((b) => b.proc.stop()));
      return { release: `r${k}` };
    }),
    every(ctx.soakEtcdRestartMs, endAt, events, 'etcd-restart', async (k) => {
      const member = (k - 1) % cluster.members.length;
      const { downMs } = await cluster.restartMember(member);
      log(`  etcd ${cluster.members[member].name} restarted (${(downMs / 1000).toFixed(1)} s down)`);
      return { member: cluster.members[member].name, downMs: Math.round(downMs) };
    }),
    every(ctx.soakRouterRestartMs, endAt, events, 'router-restart', async (k) => {
      const slot = slots[(k - 1) % slots.length];
      const t = performance.now();
      // The graceful stop: /readyz 503, drain wait, Connection: close, listener closed, exit.
      await slot.proc.stop({ timeoutMs: 60_000 });
      const exit = await slot.proc.exited;
      const stopMs = performance.now() - t;
      await slot.start();
      log(`  ${slot.id} restarted: exit ${exit.code} after ${(stopMs / 1000).toFixed(1)} s, ready again after ${((performance.now() - t) / 1000).toFixed(1)} s`);
      return { router: slot.id, exitCode: exit.code, stopMs: Math.round(stopMs) };
    }),
    (async () => {
      // Progress every minute: a 30-minute run should not look hung.
      for (let minute = 1; minute * 60_000 < endAt.ms; minute++) {
        await sleep(endAt.t0 + minute * 60_000 - performance.now());
        log(`  soak ${minute} min: ${events.length} events so far`);
      }
    })(),
  ]);

  const totals = await load.stop();
  scrape.stop();
  rot.stop();
  await pool.close();
  const routers = slots.flatMap((s) =>
    s.lives.map((l) => ({
      router: s.id,
      pid: l.pid,
      rssSamples: l.rssMb.length,
      rssStartMb: round1(RSS_AT(l.rssMb.slice(0, RSS_SAMPLES))),
      rssEndMb: round1(RSS_AT(l.rssMb.slice(-RSS_SAMPLES))),
      rssGrowthPct: l.rssMb.length >= 2 * RSS_SAMPLES ? round1(((RSS_AT(l.rssMb.slice(-RSS_SAMPLES)) - RSS_AT(l.rssMb.slice(0, RSS_SAMPLES))) / RSS_AT(l.rssMb.slice(0, RSS_SAMPLES))) * 100) : undefined,
      eventLoopP99Ms: l.lagP99Ms.length ? { windows: l.lagP99Ms.length, median: round1(summarize(l.lagP99Ms).p50), max: round1(Math.max(...l.lagP99Ms)) } : undefined,
    })),
  );
  const failedEvents = events.filter((e) => e.error !== undefined);
  log(`  requests ${totals.sent}, failed ${totals.failed}${totals.failed ? ` (${JSON.stringify(totals.failures)})` : ''}; ${(totals.sent / totals.seconds).toFixed(0)} req/s; latency p50 ${totals.latency.p50?.toFixed(2)} ms, p99 ${totals.latency.p99?.toFixed(2)} ms, max ${totals.latency.max?.toFixed(1)} ms (slowest seconds: ${totals.worstSeconds.map((w) => `${w.atS} s ${w.maxMs} ms`).join(', ')})`);
  for (const r of routers) {
    log(`  ${r.router} (pid ${r.pid}): RSS ${r.rssStartMb} -> ${r.rssEndMb} MiB (${r.rssGrowthPct ?? '?'} %), event-loop delay p99 median ${r.eventLoopP99Ms?.median} ms, worst window ${r.eventLoopP99Ms?.max} ms`);
  }
  log(`  events: ${events.filter((e) => e.kind === 'redeploy').length} redeploys, ${events.filter((e) => e.kind === 'etcd-restart').length} etcd member restarts, ${events.filter((e) => e.kind === 'router-restart').length} router restarts; ${failedEvents.length} failed${failedEvents.length ? `: ${failedEvents.map((e) => `${e.kind}@${e.atS}s ${e.error}`).join('; ')}` : ''}`);
  return {
    seconds: ctx.soakSeconds,
    rate: ctx.soakRate,
    intervals: { redeployS: ctx.soakRedeployMs / 1000, etcdRestartS: ctx.soakEtcdRestartMs / 1000, routerRestartS: ctx.soakRouterRestartMs / 1000 },
    requests: totals.sent,
    failed: totals.failed,
    failures: totals.failures,
    achievedRps: totals.sent / totals.seconds,
    latencyMs: totals.latency,
    slowestSeconds: totals.worstSeconds,
    routers,
    events,
  };
}

function round1(v) {
  return v === undefined || Number.isNaN(v) ? undefined : Math.round(v * 10) / 10;
}
