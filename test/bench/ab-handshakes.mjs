/**
 * Interleaved A/B of full TLS handshakes: routers started side by side on the proxy core (this
 * build, and another build: AB_BASELINE=<checkout>), a bare Node server (lib/node-tls-server.mjs)
 * with AB_FLOOR=1, HAProxy with AB_HAPROXY=1, measured in turn, ROUNDS times: batches of 100 new
 * h2load clients (one TLS 1.3 connection and one HTTP/1.1 request each, as the TLS suite's
 * `handshakes` load), the median full handshakes per proxy CPU-second of each. Alternating short
 * windows keeps a shared machine's drift out of the comparison.
 * AB_PERF=<file>: `perf record -g` of this build's router (or AB_PERF_TARGET's) under the same load instead of the A/B.
 * Usage: node test/bench/ab-handshakes.mjs [ROUNDS] [SECONDS]
 */
import path from 'node:path';
import { AB_HOST, startAbTls } from './lib/ab-tls-setup.mjs';
import { startHaproxy } from './lib/haproxy.mjs';
import { cpuMeter } from './lib/cpu.mjs';
import { handshakeLoop } from './lib/h2load.mjs';
import { freePorts, waitFor, waitForPort } from './lib/net.mjs';
import { canPin, installSignalHandlers, run, setNiceness, start, stopAll } from './lib/procs.mjs';
import { spawnRouter, waitReady } from './lib/router.mjs';
import { handshakeMs } from './lib/tls-handshake.mjs';
import { parseWrk } from './lib/wrk.mjs';

const ROUNDS = Number(process.argv[2] ?? 6);
const SECONDS = Number(process.argv[3] ?? 5);
const HOST = AB_HOST;
const PREFIX = '/bench-ab-hs';
const pin = canPin();
const cpus = { proxy: pin ? '0' : undefined, client: pin ? '1' : undefined };
installSignalHandlers();
if (process.env.AB_NICE) setNiceness(Number(process.env.AB_NICE));
try {
  const { dir, etcd, backendPort, files } = await startAbTls({ prefix: PREFIX, cpus });
  const targets = [{ name: 'this', args: [] }];
  if (process.env.AB_BASELINE) targets.push({ name: 'baseline', args: [], bin: path.join(process.env.AB_BASELINE, 'packages/router/bin/paas-router.js') });
  // AB_SERVERS=name=script,...: more bare servers taking node-tls-server.mjs's arguments.
  const servers = [...(process.env.AB_FLOOR ? [['floor', new URL('./lib/node-tls-server.mjs', import.meta.url).pathname]] : []), ...(process.env.AB_SERVERS ?? '').split(',').filter(Boolean).map((x) => x.split('='))];
  for (const [name, script] of servers) {
    const [port, plainPort] = await freePorts(2);
    const proc = start(name, process.execPath, [script, String(port), String(plainPort), files.cert, files.key], { cpus: cpus.proxy });
    await waitForPort(port, { proc });
    targets.push({ name, port, pid: proc.pid, plainUrl: `http://127.0.0.1:${plainPort}/` });
  }
  if (process.env.AB_HAPROXY) {
    const [port, plainPort] = await freePorts(2);
    const proc = await startHaproxy('haproxy', { dir, port, backendPort, cpus: cpus.proxy, tls: { pem: files.pem, plainPort } });
    targets.push({ name: 'haproxy', port, pid: proc.pid, plainUrl: `http://127.0.0.1:${plainPort}/` });
  }
  for (const t of targets) {
    t.results = [];
    if (t.pid !== undefined) continue;
    const [port] = await freePorts(1);
    t.port = port;
    const router = await spawnRouter({ etcd: etcd.endpoint, prefix: PREFIX, id: `ab-hs-${t.name}`, cpus: cpus.proxy, extraArgs: ['--listen-tls', `127.0.0.1:${port}`, ...t.args], ...(t.bin && { bin: t.bin }) });
    await waitReady(router);
    await waitFor(() => handshakeMs(port, HOST).then(() => true), { timeoutMs: 30_000, message: 'cert served' });
    t.pid = router.proc.pid;
    t.plainUrl = `${router.url}/`;
  }
  // AB_LOAD=close: plain HTTP/1.1, a new connection per request (wrk, Connection: close), instead of TLS handshakes.
  const load = process.env.AB_LOAD === 'close' ? closeLoad : (t, seconds) => handshakeLoop('h2load', { host: HOST, port: t.port, seconds, batch: 100, cpus: cpus.client });
  async function closeLoad(t, seconds) {
    const res = await run('wrk', ['-t1', '-c50', `-d${seconds}s`, '-H', `Host: ${HOST}`, '-H', 'Connection: close', t.plainUrl], { cpus: cpus.client, timeoutMs: (seconds + 30) * 1000 });
    const r = parseWrk(res.stdout);
    return { handshakes: r.requests, seconds, errors: r.non2xx + r.socketErrors };
  }
  for (const t of targets) await load(t, 2);
  if (process.env.AB_PERF) {
    const t = targets.find((x) => x.name === (process.env.AB_PERF_TARGET ?? 'this'));
    const perf = start('perf', 'perf', ['record', '-F', '999', '-g', '-p', String(t.pid), '-o', process.env.AB_PERF, '--', 'sleep', String(SECONDS)]);
    const meter = cpuMeter([t.pid]);
    const r = await load(t, SECONDS);
    const cpu = meter.stop();
    await perf.exited;
    console.log(`perf ${t.name}: ${r.handshakes} handshakes, ${Math.round(r.handshakes / cpu.cpuSeconds)} per CPU-s`);
    targets.length = 0;
  }
  for (let round = 0; round < ROUNDS && targets.length > 0; round++) {
    const order = round % 2 === 0 ? targets : [...targets].reverse();
    for (const t of order) {
      const meter = cpuMeter([t.pid]);
      const r = await load(t, SECONDS);
      const cpu = meter.stop();
      t.results.push(r.handshakes / cpu.cpuSeconds);
      console.log(`round ${round} ${t.name}: ${Math.round(r.handshakes / r.seconds)}/s, ${Math.round(r.handshakes / cpu.cpuSeconds)} per CPU-s (${Math.round((cpu.cpuSeconds / cpu.wallSeconds) * 100)}% core), errors ${r.errors}`);
    }
  }
  if (targets.length > 0) {
    const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const summary = Object.fromEntries(targets.map((t) => [t.name, Math.round(median(t.results))]));
    for (const t of targets.slice(1)) summary[`this/${t.name}`] = +(summary.this / summary[t.name]).toFixed(3);
    if (summary.baseline) {
      // Round by round: both builds saw nearly the same machine in a round.
      summary.perRound = targets[0].results.map((x, i) => +(x / targets[1].results[i]).toFixed(3));
    }
    console.log(JSON.stringify(summary));
  }
} finally {
  await stopAll();
}
