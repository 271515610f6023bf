/**
 * TLS termination (issue #9): the router's --listen-tls against HAProxy serving the same ECDSA
 * P-256 certificate over TLS 1.3 (HTTP/2 and HTTP/1.1 by ALPN), and a bare Node
 * `http2.createSecureServer` answering by itself (Node's floor), each on the proxy core with the
 * same clients on the other:
 *
 * - keep-alive HTTPS: wrk, 50 connections (handshakes amortised); and the same in plain HTTP on
 *   the same process (a second listener), so what TLS adds per request is known for each;
 * - full handshakes: batches of 100 new h2load clients, each one TLS 1.3 connection and one
 *   HTTP/1.1 request, no session to resume (the router's resumed-handshake counter proves it);
 * - HTTP/2: h2load, 5 connections x 10 streams;
 * - 10k certificates: a second router holding 10 000 `certs/` records; the time from connect to
 *   the end of the handshake for hosts never handshaken before (the context made on the way),
 *   one at a time, each paired with a handshake for a host already cached, measured the same way
 *   (lib/handshake-latency.mjs, its own process on the client core); measured again on fresh hosts
 *   while other processes disturbed it, the calmest attempt kept. Then the same client and method
 *   against servers with no router, each with one ECDSA P-256 certificate made in the run, on the
 *   proxy core at the same nice: `openssl s_server` and a bare Node `tls.createServer`
 *   (lib/node-tls-bare.mjs): this machine's handshake floor, for reading the router's figure.
 *
 * Figures per load: requests/s and requests per proxy CPU-second (/proc utime+stime of the
 * proxy process over the measured window), ratios against HAProxy. Each load is measured in
 * turns (--rounds rounds, each target once per round) and a cell is its median round.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuMeter, foreignCpuMeter } from '../lib/cpu.mjs';
import { appOps } from '../lib/etcd-load.mjs';
import { h2Streams, handshakeLoop } from '../lib/h2load.mjs';
import { startHaproxy } from '../lib/haproxy.mjs';
import { freePorts, waitFor, waitForPort } from '../lib/net.mjs';
import { run, start } from '../lib/procs.mjs';
import { metricsText, metricValue, spawnRouter, waitReady } from '../lib/router.mjs';
import { summarize } from '../lib/stats.mjs';
import { ecdsaCertificate } from '../lib/tls-certs.mjs';
import { handshakeMs } from '../lib/tls-handshake.mjs';
import { which } from '../lib/install.mjs';
import { wrk } from '../lib/wrk.mjs';

const NODE_SERVER = fileURLToPath(new URL('../lib/node-tls-server.mjs', import.meta.url));
const LATENCY = fileURLToPath(new URL('../lib/handshake-latency.mjs', import.meta.url));
const NODE_BARE = fileURLToPath(new URL('../lib/node-tls-bare.mjs', import.meta.url));
const HOST = 'tls.bench.local';
const PREFIX = '/bench-tls';
const CERTS_PREFIX = '/bench-tls-certs';
export const TLS_TARGETS = ['haproxy', 'router', 'node-floor'];
export const TLS_LOADS = ['keepalive', 'plain', 'handshakes', 'h2'];
/**
 * What --tls-parts chooses from: targets, loads, and the 10k-certificate first handshakes. Loads
 * without targets run on every target, targets without loads get every load; first-handshake
 * alone runs no target.
 */
export const TLS_PARTS = [...TLS_TARGETS, ...TLS_LOADS, 'first-handshake'];

/** The ops that put `certs/<name>` ({ cert, key }, docs/CONTRACT.md) under `prefix`. */
function certOp(prefix, name, { cert, key }) {
  return { put: `${prefix}/certs/${name}`, value: JSON.stringify({ cert, key }) };
}


async function startTlsTarget(ctx, name, { dir, files }) {
  const backend = await ctx.backend();
  const [port, plainPort] = await freePorts(2);
  switch (name) {
    case 'haproxy': {
      const proc = await startHaproxy(ctx.tools.haproxy, { dir: await mkdtemp(path.join(dir, 'haproxy-')), port, backendPort: backend.port, cpus: ctx.cpus.proxy, tls: { pem: files.pem, plainPort } });
      return { name, port, plainUrl: `http://127.0.0.1:${plainPort}`, pids: [proc.pid], cpus: proc.pinned ?? 'unpinned', note: 'nbthread 1, ssl-min-ver TLSv1.3, alpn h2,http/1.1', stop: () => proc.stop() };
    }
    case 'router': {
      const etcd = await ctx.etcd();
      const router = await spawnRouter({ etcd: etcd.endpoint, prefix: PREFIX, id: 'bench-tls', cpus: ctx.cpus.proxy, extraArgs: ['--listen-tls', `127.0.0.1:${port}`] });
      await waitReady(router);
      await waitFor(() => handshakeMs(port, HOST).then(() => true), { timeoutMs: 30_000, message: 'the router to serve the certificate', proc: router.proc });
      return { name, port, plainUrl: router.url, router, pids: [router.proc.pid], cpus: router.proc.pinned ?? 'unpinned', note: '--listen-tls, certificate from certs/ (SNI)', stop: () => router.proc.stop() };
    }
    case 'node-floor': {
      const proc = start('node-tls-server', process.execPath, [NODE_SERVER, String(port), String(plainPort), files.cert, files.key], { cpus: ctx.cpus.proxy });
      await waitForPort(port, { proc });
      return { name, port, plainUrl: `http://127.0.0.1:${plainPort}`, pids: [proc.pid], cpus: proc.pinned ?? 'unpinned', note: 'bare http2.createSecureServer answering itself (no proxying): Node\'s floor', stop: () => proc.stop() };
    }
    default:
      throw new Error(`unknown TLS target ${name}`);
  }
}

/** One load against a started target: warm-up, then the measured window. */
async function runLoad(ctx, load, target, seconds) {
  const common = { host: HOST, port: target.port, cpus: ctx.cpus.client };
  switch (load) {
    case 'keepalive': {
      // wrk takes SNI from the URL: `localhost` (a name the certificate also covers); Host says the app.
      const r = await wrk(ctx.tools.wrk, `https://localhost:${target.port}/`, { seconds, connections: ctx.connections, host: HOST, cpus: ctx.cpus.client });
      return { rps: r.rps, requests: r.requests, errors: r.non2xx + r.socketErrors, p50Ms: r.p50Ms, p99Ms: r.p99Ms };
    }
    case 'plain': {
      const r = await wrk(ctx.tools.wrk, `${target.plainUrl}/`, { seconds, connections: ctx.connections, host: HOST, cpus: ctx.cpus.client });
      return { rps: r.rps, requests: r.requests, errors: r.non2xx + r.socketErrors, p50Ms: r.p50Ms, p99Ms: r.p99Ms };
    }
    case 'handshakes': {
      const r = await handshakeLoop(ctx.tools.h2load, { ...common, seconds, batch: 100 });
      return { rps: r.handshakes / r.seconds, requests: r.handshakes, errors: r.errors, batches: r.batches };
    }
    case 'h2': {
      const r = await h2Streams(ctx.tools.h2load, { ...common, connections: 5, streams: 10, seconds });
      return { rps: r.rps, requests: r.requests, errors: r.errors };
    }
    default:
      throw new Error(`unknown load ${load}`);
  }
}

async function measureOnce(ctx, load, target) {
  const backend = await ctx.backend();
  await runLoad(ctx, load, target, ctx.warmSeconds);
  const before = target.router ? await metricsText(target.router) : undefined;
  const meter = cpuMeter(target.pids);
  const foreign = foreignCpuMeter([...target.pids, backend.proc.pid]);
  const r = await runLoad(ctx, load, target, ctx.measureSeconds);
  const cpu = meter.stop();
  const otherCores = foreign.stop();
  const row = { ...r, proxyCpuSeconds: cpu.cpuSeconds, reqPerProxyCpuS: cpu.cpuSeconds > 0 ? r.requests / cpu.cpuSeconds : undefined, proxyCpuUtil: cpu.cpuSeconds / cpu.wallSeconds, otherCpuCores: otherCores };
  if (before !== undefined) {
    const after = await metricsText(target.router);
    const diff = (name) => (metricValue(after, name) ?? 0) - (metricValue(before, name) ?? 0);
    row.resumedHandshakes = diff('router_tls_resumed_handshakes_total');
    const ok = /^router_tls_handshakes_total\{result="ok"\} ([0-9.eE+-]+)$/m;
    row.fullHandshakes = Number(ok.exec(after)?.[1] ?? 0) - Number(ok.exec(before)?.[1] ?? 0);
  }
  return row;
}

/**
 * Every target's cell of one load, measured in turns: round r measures each target once, for
 * ctx.rounds rounds, so a slower or busier stretch of the machine falls on every target
 * alike instead of on whichever was measured then; a cell is its median round (by requests per
 * proxy CPU-second), every round kept in `allRounds`.
 */
async function measureInTurns(ctx, load, targets) {
  const rounds = new Map(targets.map((t) => [t.name, []]));
  for (let round = 1; round <= ctx.rounds; round++) {
    for (const target of targets) {
      const r = await measureOnce(ctx, load, target);
      rounds.get(target.name).push(r);
      ctx.log(
        `  ${target.name} ${load}, round ${round}/${ctx.rounds}: ${Math.round(r.rps)}/s, ${Math.round(r.reqPerProxyCpuS ?? 0)} per proxy CPU-s (${Math.round(r.proxyCpuUtil * 100)}% of a core)` +
          (r.errors ? `, ${r.errors} errors` : '') +
          (r.resumedHandshakes !== undefined && load === 'handshakes' ? `, router: ${r.fullHandshakes} full / ${r.resumedHandshakes} resumed handshakes` : '') +
          (r.otherCpuCores > 0.1 ? ` — other processes used ${r.otherCpuCores.toFixed(2)} cores meanwhile` : ''),
      );
    }
  }
  const cells = new Map();
  for (const [name, all] of rounds) {
    const sorted = [...all].sort((a, b) => (a.reqPerProxyCpuS ?? 0) - (b.reqPerProxyCpuS ?? 0));
    const median = sorted[Math.floor((sorted.length - 1) / 2)];
    cells.set(name, { ...median, rounds: all.length, medianRound: all.indexOf(median) + 1, allRounds: all.length > 1 ? all : undefined });
  }
  return cells;
}

/**
 * lib/handshake-latency.mjs against `port` (pairs of hosts from `pattern`, see there), its own
 * process on the client core; measured again while other processes than `pids` disturbed it
 * (attempt a starts at host a, so a router sees hosts not yet handshaken), the calmest kept.
 * `name` says what is measured in the log, `line(attempt)` what an attempt measured.
 */
async function latencyAttempts(ctx, { name, port, pattern, step, samples, pids }, line) {
  const maxAttempts = ctx.noiseRetries + 1;
  const attempts = [];
  for (let a = 0; a < maxAttempts; a++) {
    const foreign = foreignCpuMeter(pids);
    const res = await run(process.execPath, ['--expose-gc', LATENCY, String(port), pattern, String(a), String(step), String(samples)], { cpus: ctx.cpus.client, timeoutMs: 300_000 });
    const otherCpuCores = foreign.stop();
    if (res.code !== 0) throw new Error(`handshake-latency failed (${res.code}): ${res.stderr.slice(-500)}`);
    const { first, cached, clientGcInSpans } = JSON.parse(res.stdout.trim().split('\n').pop());
    // What an uncached host adds, pair by pair: both handshakes of a pair saw nearly the same machine.
    const added = summarize(first.map((ms, k) => ms - cached[k]));
    const attempt = { first: summarize(first), cached: summarize(cached), all: summarize([...first, ...cached]), addedP50: added.p50, clientGcInSpans, otherCpuCores };
    attempts.push(attempt);
    ctx.log(
      line(attempt) +
        (clientGcInSpans ? `; ${clientGcInSpans} handshakes overlapped a client GC` : '') +
        (otherCpuCores > 0.1 ? ` — other processes used ${otherCpuCores.toFixed(2)} cores meanwhile` : ''),
    );
    if (otherCpuCores <= ctx.noiseCores || a + 1 === maxAttempts) break;
    await ctx.calmDown(`${name} handshakes`, a + 1);
  }
  const kept = attempts.reduce((x, y) => (y.otherCpuCores < x.otherCpuCores ? y : x));
  return { ...kept, attempts: attempts.length, kept: attempts.indexOf(kept) + 1, allAttempts: attempts.length > 1 ? attempts : undefined };
}

/**
 * The first-handshake figure's floor: the same client and method against a server with no
 * router and one certificate, on the proxy core (nice as the router): `openssl s_server` and a
 * bare Node `tls.createServer`. Their server work is the same for any name, yet handshakes naming
 * a host not named before have a longer tail than those repeating one name (README, TLS), so the
 * halves are kept apart: `first` is the like-for-like floor of the router's uncached row,
 * `cached` of its cached row.
 */
async function handshakeFloors(ctx, dir) {
  const etcd = await ctx.etcd();
  const cert = ecdsaCertificate(['ref.bench.local']);
  const files = { cert: path.join(dir, 'floor-cert.pem'), key: path.join(dir, 'floor-key.pem') };
  await writeFile(files.cert, cert.cert);
  await writeFile(files.key, cert.key);
  const openssl = which('openssl');
  const servers = [
    {
      name: 'openssl s_server',
      note: 'OpenSSL\'s own server (`-www`), one connection at a time',
      argv: openssl && ((port) => [openssl, ['s_server', '-accept', `127.0.0.1:${port}`, '-cert', files.cert, '-key', files.key, '-alpn', 'h2,http/1.1', '-www', '-quiet']]),
    },
    { name: 'node tls.createServer', note: 'bare Node TLS server (lib/node-tls-bare.mjs)', argv: (port) => [process.execPath, [NODE_BARE, String(port), files.cert, files.key]] },
  ];
  const samples = ctx.quick ? 100 : 1000;
  const floors = [];
  for (const server of servers) {
    if (!server.argv) {
      floors.push({ name: server.name, skipped: 'openssl not installed' });
      continue;
    }
    const [port] = await freePorts(1);
    const [cmd, args] = server.argv(port);
    const proc = start(server.name, cmd, args, { cpus: ctx.cpus.proxy });
    try {
      await waitFor(() => handshakeMs(port, 'ref.bench.local').then(() => true), { timeoutMs: 30_000, message: `${server.name} to serve`, proc });
      const measured = await latencyAttempts(ctx, { name: `floor, ${server.name}`, port, pattern: 'r{}.ref.bench.local', step: 1, samples, pids: [proc.pid, etcd.pid] }, (attempt) =>
        `  floor, ${server.name} (no router): names not named before p50 ${attempt.first.p50.toFixed(2)} ms, p99 ${attempt.first.p99.toFixed(2)} ms; the same name p50 ${attempt.cached.p50.toFixed(2)} ms, p99 ${attempt.cached.p99.toFixed(2)} ms`,
      );
      floors.push({ name: server.name, note: server.note, cpus: proc.pinned ?? 'unpinned', ...measured });
    } catch (err) {
      ctx.log(`  floor ${server.name} failed: ${err.message}`);
      floors.push({ name: server.name, skipped: `failed: ${err.message.split('\n')[0]}` });
    } finally {
      await proc.stop();
    }
  }
  return floors;
}

/** The 10k-certificate router: first handshakes for uncached hosts, and a cached one for scale. */
async function manyCerts(ctx, count) {
  const etcd = await ctx.etcd();
  const c = await ctx.etcdClient();
  const t0 = performance.now();
  const hosts = [];
  for (let lo = 0; lo < count; lo += 1000) {
    const ops = [];
    for (let i = lo; i < Math.min(count, lo + 1000); i++) {
      const host = `h${i}.certs.bench.local`;
      hosts.push(host);
      ops.push(certOp(CERTS_PREFIX, `c${i}`, ecdsaCertificate([host])));
    }
    await c.txn([], ops);
  }
  ctx.log(`  ${count} certificates made and put under ${CERTS_PREFIX}/certs/ in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const [port] = await freePorts(1);
  const router = await spawnRouter({ etcd: etcd.endpoint, prefix: CERTS_PREFIX, id: 'bench-tls-certs', cpus: ctx.cpus.proxy, extraArgs: ['--listen-tls', `127.0.0.1:${port}`] });
  try {
    const readyMs = await waitReady(router, { timeoutMs: ctx.readyTimeoutMs });
    await waitFor(() => handshakeMs(port, hosts[count - 1]).then(() => true), { timeoutMs: 60_000, message: 'the last certificate served', proc: router.proc });
    // Hosts never handshaken, spread over the whole set, one at a time, paired with a cached host
    // (lib/handshake-latency.mjs: the method). The client on the client core, as the other TLS
    // clients. A run that other processes disturbed is measured again on hosts not yet
    // handshaken (attempt a: the cached host h<a>, uncached h<a + k * step>); the calmest is kept.
    const samples = ctx.quick ? 100 : 1000;
    const step = Math.floor((count - 1 - (ctx.noiseRetries + 1)) / samples);
    const measured = await latencyAttempts(ctx, { name: `${count} certificates`, port, pattern: 'h{}.certs.bench.local', step, samples, pids: [router.proc.pid, etcd.pid] }, (attempt) =>
      `  ${count} certs: first handshake p50 ${attempt.first.p50.toFixed(2)} ms, p99 ${attempt.first.p99.toFixed(2)} ms; cached host p50 ${attempt.cached.p50.toFixed(2)} ms, p99 ${attempt.cached.p99.toFixed(2)} ms; uncached minus cached, median of pairs ${attempt.addedP50.toFixed(2)} ms`,
    );
    const built = metricValue(await metricsText(router), 'router_tls_contexts');
    return { certs: count, readyMs, samples, ...measured, contextsCached: built };
  } finally {
    await router.proc.stop();
  }
}

export async function tlsSuite(ctx) {
  const dir = await mkdtemp(path.join(ctx.tmpDir, 'tls-'));
  const backend = await ctx.backend();
  // SANs: the app's host (SNI of h2load, Host of every request) and localhost (wrk's SNI: wrk takes it from the URL).
  const cert = ecdsaCertificate([HOST, 'localhost']);
  const files = { cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem'), pem: path.join(dir, 'haproxy.pem') };
  await writeFile(files.cert, cert.cert);
  await writeFile(files.key, cert.key);
  await writeFile(files.pem, cert.cert + cert.key);
  const c = await ctx.etcdClient();
  await c.txn([], [...appOps(PREFIX, 'bench', HOST, backend.url, 1), certOp(PREFIX, 'bench', cert)]);

  const rows = [];
  const chosenTargets = TLS_TARGETS.filter((t) => ctx.tlsParts.includes(t));
  const chosenLoads = TLS_LOADS.filter((l) => ctx.tlsParts.includes(l));
  const targets = chosenTargets.length > 0 ? chosenTargets : chosenLoads.length > 0 ? TLS_TARGETS : [];
  const loads = chosenLoads.length > 0 ? chosenLoads : TLS_LOADS;
  // Every target runs through the whole suite (idle ones cost nothing on the proxy core), so
  // each load can be measured in turns across them.
  const started = [];
  try {
    for (const name of targets) {
      if (name === 'haproxy' && !ctx.tools.haproxy) {
        rows.push({ name, skipped: 'haproxy not installed' });
        continue;
      }
      try {
        const target = await startTlsTarget(ctx, name, { dir, files });
        started.push(target);
        rows.push({ name, cpus: target.cpus, note: target.note });
      } catch (err) {
        ctx.log(`  ${name} failed: ${err.message}`);
        rows.push({ name, skipped: `failed: ${err.message.split('\n')[0]}` });
      }
    }
    for (const load of loads) {
      const tool = load === 'keepalive' || load === 'plain' ? 'wrk' : 'h2load';
      if (!ctx.tools[tool]) {
        for (const row of rows) if (!row.skipped) row[load] = { skipped: `${tool} not installed` };
        continue;
      }
      const cells = await measureInTurns(ctx, load, started);
      for (const row of rows) if (cells.has(row.name)) row[load] = cells.get(row.name);
    }
  } finally {
    for (const target of started) await target.stop();
  }
  let certs;
  try {
    if (ctx.tlsParts.includes('first-handshake')) {
      certs = await manyCerts(ctx, ctx.quick ? 1000 : 10_000);
      certs.floors = await handshakeFloors(ctx, dir);
    }
  } catch (err) {
    ctx.log(`  10k certificates failed: ${err.message}`);
    certs = { error: err.message.split('\n')[0] };
  }
  return { connections: ctx.connections, warmSeconds: ctx.warmSeconds, measureSeconds: ctx.measureSeconds, rounds: ctx.rounds, rows, certs };
}
