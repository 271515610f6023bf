/**
 * Interleaved A/B of client HTTP/1.1 servers: routers started side by side on the proxy core
 * (this build with --client-parser native, this build with node, and optionally another
 * build: AB_BASELINE=<checkout>; HAProxy with AB_HAPROXY=1), measured in turn, ROUNDS times, keep-alive HTTPS and plain
 * (wrk, 50 connections); the median requests per router CPU-second of each. Alternating short
 * windows keeps a shared machine's drift out of the comparison.
 * Usage: node test/bench/ab-client-parser.mjs [ROUNDS] [SECONDS]
 */
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import { AB_HOST, startAbTls } from './lib/ab-tls-setup.mjs';
import { startHaproxy } from './lib/haproxy.mjs';
import { cpuMeter } from './lib/cpu.mjs';
import { freePorts, waitFor } from './lib/net.mjs';
import { canPin, installSignalHandlers, start, stopAll } from './lib/procs.mjs';
import { spawnRouter, waitReady } from './lib/router.mjs';
import { handshakeMs } from './lib/tls-handshake.mjs';
import { wrk } from './lib/wrk.mjs';

const ROUNDS = Number(process.argv[2] ?? 6);
const SECONDS = Number(process.argv[3] ?? 5);
const HOST = AB_HOST;
const PREFIX = '/bench-ab';
const pin = canPin();
const cpus = { proxy: pin ? '0' : undefined, client: pin ? '1' : undefined };
installSignalHandlers();
try {
  const { dir, etcd, backendPort, files } = await startAbTls({ prefix: PREFIX, cpus });
  const targets = [
    { name: 'native', args: ['--client-parser', 'native'] },
    { name: 'node', args: ['--client-parser', 'node'] },
  ];
  if (process.env.AB_HAPROXY) {
    const [port, plainPort] = await freePorts(2);
    const proc = await startHaproxy('haproxy', { dir, port, backendPort, cpus: cpus.proxy, tls: { pem: files.pem, plainPort } });
    targets.push({ name: 'haproxy', tlsPort: port, router: { proc, url: `http://127.0.0.1:${plainPort}` } });
  }
  if (process.env.AB_BASELINE) targets.push({ name: 'baseline', args: [], bin: path.join(process.env.AB_BASELINE, 'packages/router/bin/paas-router.js') });
  for (const t of targets) {
    t.results = { tls: [], plain: [] };
    if (t.name === 'haproxy') continue;
    const [tlsPort] = await freePorts(1);
    t.tlsPort = tlsPort;
    t.router = await spawnRouter({ etcd: etcd.endpoint, prefix: PREFIX, id: `ab-${t.name}`, cpus: cpus.proxy, extraArgs: ['--listen-tls', `127.0.0.1:${tlsPort}`, ...t.args], ...(t.bin && { bin: t.bin }) });
    await waitReady(t.router);
    await waitFor(() => handshakeMs(tlsPort, HOST).then(() => true), { timeoutMs: 30_000, message: 'cert served' });
  }
  const url = (t, load) => (load === 'tls' ? `https://localhost:${t.tlsPort}/` : `${t.router.url}/`);
  for (const t of targets) for (const load of ['tls', 'plain']) await wrk('wrk', url(t, load), { seconds: 2, host: HOST, cpus: cpus.client });
  if (process.env.AB_PERF) {
    // perf record of the native router under keep-alive TLS load instead of the A/B.
    const t = targets[0];
    const perf = start('perf', 'perf', ['record', '-F', '499', '-g', '-p', String(t.router.proc.pid), '-o', process.env.AB_PERF, '--', 'sleep', String(SECONDS)]);
    await wrk('wrk', url(t, process.env.AB_LOAD ?? 'tls'), { seconds: SECONDS, host: HOST, cpus: cpus.client });
    await perf.exited;
    targets.length = 0;
  }
  for (let round = 0; round < ROUNDS && targets.length > 0; round++) {
    const order = round % 2 === 0 ? targets : [...targets].reverse();
    for (const load of ['tls', 'plain']) {
      for (const t of order) {
        const meter = cpuMeter([t.router.proc.pid]);
        const r = await wrk('wrk', url(t, load), { seconds: SECONDS, host: HOST, cpus: cpus.client });
        const cpu = meter.stop();
        t.results[load].push(r.requests / cpu.cpuSeconds);
        console.log(`round ${round} ${load} ${t.name}: ${Math.round(r.rps)}/s, ${Math.round(r.requests / cpu.cpuSeconds)} per CPU-s (${Math.round((cpu.cpuSeconds / cpu.wallSeconds) * 100)}% core), errors ${r.non2xx + r.socketErrors}`);
      }
    }
  }
  if (targets.length > 0) await report(targets, dir);
} finally {
  await stopAll();
}

async function report(targets, dir) {
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const summary = {};
  for (const load of ['tls', 'plain']) {
    summary[load] = Object.fromEntries(targets.map((t) => [t.name, Math.round(median(t.results[load]))]));
    summary[load]['native/node'] = +(summary[load].native / summary[load].node).toFixed(3);
    if (summary[load].haproxy) for (const n of ['native', 'node', 'baseline']) if (summary[load][n]) summary[load][`${n}/haproxy`] = +(summary[load][n] / summary[load].haproxy).toFixed(3);
    if (summary[load].baseline) summary[load]['native/baseline'] = +(summary[load].native / summary[load].baseline).toFixed(3);
  }
  console.log(JSON.stringify(summary));
  await writeFile(path.join(dir, 'summary.json'), JSON.stringify({ summary, targets: targets.map((t) => ({ name: t.name, results: t.results })) }, null, 1));
}
