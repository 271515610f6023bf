/**
 * Interleaved A/B of agent-tunnel builds: for each build (this checkout, and AB_BASELINE=<a built
 * copy of another checkout>) a router on the proxy core and that build's agent beside one shared
 * sample app on the other core, as the tunnel suite places them, each on its own etcd prefix.
 * Each round runs, per build in alternating order, a 1 GiB download and upload direct and through
 * the tunnel, and records MB/s and CPU-seconds per GiB of the router and the agent. Medians at the
 * end. CPU per GiB is the steadier figure on a shared machine; the MB/s ratio is per round.
 * Usage: node test/bench/ab-tunnel.mjs [ROUNDS] [download,upload]   (AB_NICE=-10 as root;
 * AB_AGENT_FLAGS: node flags for the agents, e.g. --trace-gc; AB_ROUTER_NODE: the node the routers run
 * with, e.g. a script running node --trace-gc: the routers' mark-compacts are then counted)
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Agent as UndiciAgent, request } from 'undici';
import { cpuMeter } from './lib/cpu.mjs';
import { startEtcd } from './lib/etcd.mjs';
import { client } from './lib/etcd-load.mjs';
import { freePorts, waitFor } from './lib/net.mjs';
import { canPin, installSignalHandlers, setNiceness, start, stopAll } from './lib/procs.mjs';
import { REPO_ROOT, spawnRouter, waitReady } from './lib/router.mjs';

const ROUNDS = Number(process.argv[2] ?? 4);
const DIRECTIONS = (process.argv[3] ?? 'download,upload').split(',');
const GiB = 1024 * 1024 * 1024;
const pin = canPin();
const cpus = { proxy: pin ? '0' : undefined, client: pin ? '1' : undefined };
if (process.env.AB_NICE) setNiceness(Number(process.env.AB_NICE));
installSignalHandlers();
process.on('uncaughtException', (err) => {
  console.error('uncaught', err);
  process.exitCode = 1;
});

/** AB_PERF=<dir>: `perf record -g` (or with AB_STRACE=1 `strace -c`) of the router and the agent during each tunnel transfer of round 0. */
async function perfStart(t, host, direction, round) {
  if (!process.env.AB_PERF || round !== 0 || host !== 'tunnel.bench') return [];
  const procs = [['router', t.router.proc.pid], ['agent', t.agent.pid]].map(([who, pid]) =>
    process.env.AB_STRACE
      ? spawn('strace', ['-c', '-f', '-S', 'calls', '-p', String(pid), '-o', path.join(process.env.AB_PERF, `${t.name}-${direction}-${who}.strace`)], { stdio: 'ignore' })
      : spawn('perf', ['record', '-F', process.env.AB_PERF_HZ ?? '999', '-g', '-p', String(pid), '-o', path.join(process.env.AB_PERF, `${t.name}-${direction}-${who}.data`)], { stdio: 'ignore' }));
  await new Promise((r) => setTimeout(r, 500));
  return procs;
}

async function perfStop(procs) {
  await Promise.all(procs.map((p) => new Promise((r) => {
    p.once('exit', r);
    p.kill('SIGINT');
  })));
}

async function transfer(t, host, direction, round = -1) {
  // A connection per transfer: one left idle while the other build ran was reset under it.
  const dispatcher = new UndiciAgent({ connections: 1 });
  const perf = await perfStart(t, host, direction, round);
  const routerCpu = cpuMeter([t.router.proc.pid]);
  const agentCpu = cpuMeter([t.agent.pid]);
  const appCpu = cpuMeter([appPid]);
  const clientCpu = process.cpuUsage();
  const switches = ctxSwitches(t.agent.pid);
  const gc0 = { ...t.gc, router: t.routerMarkCompacts };
  const t0 = performance.now();
  let bytes = 0;
  if (direction === 'download') {
    const res = await request(`${t.router.url}/bytes?n=${GiB}`, { headers: { host }, dispatcher });
    for await (const chunk of res.body) bytes += chunk.length;
  } else {
    const chunk = Buffer.alloc(1024 * 1024, 1);
    async function* body() {
      for (let i = 0; i < 1024; i++) yield chunk;
    }
    const res = await request(`${t.router.url}/count`, { method: 'POST', headers: { host, 'content-length': String(GiB) }, body: body(), dispatcher });
    bytes = JSON.parse(await res.body.text()).bytes;
  }
  const seconds = (performance.now() - t0) / 1000;
  if (bytes !== GiB) throw new Error(`${direction} ${host}: ${bytes} bytes`);
  const c1 = process.cpuUsage(clientCpu);
  const cpu = { router: routerCpu.stop().cpuSeconds, agent: agentCpu.stop().cpuSeconds, app: appCpu.stop().cpuSeconds, client: (c1.user + c1.system) / 1e6, agentSwitches: ctxSwitches(t.agent.pid) - switches, agentMarkCompacts: t.gc.markCompact - gc0.markCompact, agentScavenges: t.gc.scavenge - gc0.scavenge, routerMarkCompacts: t.routerMarkCompacts - gc0.router };
  await perfStop(perf);
  await dispatcher.close();
  return { mbPerS: 1024 / seconds, ...cpu };
}

let appPid;
/** Peak RSS of a process so far (VmHWM), MB. */
function peakRss(pid) {
  return Number(/^VmHWM:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
}

function ctxSwitches(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(s)[1]) + Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(s)[1]);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const dir = await mkdtemp(path.join(os.tmpdir(), 'ab-tunnel-'));
try {
  const key = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', certFile, '-days', '2',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  const cert = { cert: await readFile(certFile, 'utf8'), key: await readFile(key, 'utf8') };
  const etcd = await startEtcd();
  const c = client(etcd.endpoint);
  const app = start('sample-app', process.execPath, [`${REPO_ROOT}test/apps/sample-app.mjs`, '--port', '0', '--name', 'bench'], { cpus: cpus.client });
  await waitFor(() => app.lines.some((l) => l.includes('"listening"')), { message: 'sample app', proc: app });
  appPid = app.pid;
  const appUrl = `http://127.0.0.1:${JSON.parse(app.lines.find((l) => l.includes('"listening"'))).port}`;
  const { newTunnelToken } = await import(`${REPO_ROOT}packages/registry/dist/index.js`);
  const targets = [{ name: 'this', root: REPO_ROOT }];
  if (process.env.AB_BASELINE) targets.unshift({ name: 'base', root: path.resolve(process.env.AB_BASELINE) + '/' });
  for (const t of targets) {
    const prefix = `/ab-tunnel-${t.name}`;
    const token = newTunnelToken();
    const put = (k, v) => c.put(`${prefix}/${k}`, JSON.stringify(v));
    await put('certs/tunnel', cert);
    await put('apps/direct', { routes: [{ host: 'direct.bench' }] });
    await put('apps/tunneled', { routes: [{ host: 'tunnel.bench' }] });
    await put('instances/direct/d1', { url: appUrl, state: 'ready' });
    await put('instances/tunneled/t1', { url: 'tunnel://t1', state: 'ready' });
    await put(`tunnel-tokens/tunneled/${token.tokenId}`, { sha256: token.sha256 });
    const [tunnelPort] = await freePorts(1);
    t.router = await spawnRouter({ etcd: etcd.endpoint, prefix, id: `ab-${t.name}`, cpus: cpus.proxy, bin: `${t.root}packages/router/bin/paas-router.js`, node: process.env.AB_ROUTER_NODE ?? process.execPath,
      extraArgs: ['--listen-tunnel', `127.0.0.1:${tunnelPort}`, '--tunnel-cert', 'tunnel'] });
    await waitReady(t.router);
    t.agent = start(`agent ${t.name}`, process.execPath, [...(process.env.AB_AGENT_FLAGS ?? '').split(' ').filter(Boolean), `${t.root}packages/agent/bin/paas-agent.js`, '--routers', `https://127.0.0.1:${tunnelPort}`, '--app', 'tunneled', '--id', 't1', '--to', appUrl, '--ca', certFile, '--log-level', 'warn'], {
      cpus: cpus.client, env: { PAAS_AGENT_TOKEN: token.secret },
    });
    t.gc = { markCompact: 0, scavenge: 0 };
    t.routerMarkCompacts = 0;
    t.router.proc.child.stdout.on('data', (chunk) => (t.routerMarkCompacts += chunk.toString().split('Mark-Compact').length - 1));
    t.agent.child.stdout.on('data', (chunk) => {
      const text = chunk.toString();
      t.gc.markCompact += text.split('Mark-Compact').length - 1;
      t.gc.scavenge += text.split('Scavenge').length - 1;
    });
    await waitFor(async () => (await c.get(`${prefix}/tunnels/tunneled/t1/ab-${t.name}`)) !== undefined, { timeoutMs: 20_000, message: 'agent session', proc: t.agent });
    t.rows = [];
  }
  await c.close();
  // Warm-up: one transfer each way per build and path.
  for (const t of targets) for (const d of DIRECTIONS) for (const host of ['direct.bench', 'tunnel.bench']) await transfer(t, host, d);
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? targets : [...targets].reverse();
    for (const t of order) {
      for (const d of DIRECTIONS) {
        const direct = await transfer(t, 'direct.bench', d, round);
        const tunnel = await transfer(t, 'tunnel.bench', d, round);
        const row = { round, direction: d, directMBs: direct.mbPerS, directRouter: direct.router, tunnelMBs: tunnel.mbPerS, tunnelRouter: tunnel.router, agent: tunnel.agent, ratio: tunnel.mbPerS / direct.mbPerS,
          directCore1: direct.app + direct.client, tunnelCore1: tunnel.app + tunnel.client + tunnel.agent, switches: tunnel.agentSwitches };
        t.rows.push(row);
        console.log(`round ${round} ${t.name} ${d}: direct ${direct.mbPerS.toFixed(0)} MB/s router ${direct.router.toFixed(2)}; tunnel ${tunnel.mbPerS.toFixed(0)} MB/s router ${tunnel.router.toFixed(2)}${process.env.AB_ROUTER_NODE ? ` (${direct.routerMarkCompacts} / ${tunnel.routerMarkCompacts} mark-compacts)` : ''} agent ${tunnel.agent.toFixed(2)} (${tunnel.agentSwitches} switches${process.env.AB_AGENT_FLAGS ? `, ${tunnel.agentMarkCompacts} mark-compacts, ${tunnel.agentScavenges} scavenges` : ''}); app+client direct ${row.directCore1.toFixed(2)} tunnel ${(tunnel.app + tunnel.client).toFixed(2)}; ratio ${row.ratio.toFixed(2)}; load ${os.loadavg()[0].toFixed(1)}`);
      }
    }
  }
  if (process.env.AB_ROUTER_NODE) for (const t of targets) console.log(`${t.name} router, last mark-compacts:\n${t.router.proc.lines.filter((l) => l.includes('Mark-Compact')).slice(-6).join('\n')}`);
  if (process.env.AB_AGENT_FLAGS) for (const t of targets) console.log(`${t.name} agent, last lines:\n${t.agent.tail(8)}`);
  for (const t of targets) console.log(`${t.name} peak RSS: router ${peakRss(t.router.proc.pid).toFixed(0)} MB, agent ${peakRss(t.agent.pid).toFixed(0)} MB`);
  console.log('\nmedians (CPU-s per GiB):');
  for (const d of DIRECTIONS) {
    for (const t of targets) {
      const rows = t.rows.filter((r) => r.direction === d);
      console.log(`${d} ${t.name}: router direct ${median(rows.map((r) => r.directRouter)).toFixed(2)}, router tunnel ${median(rows.map((r) => r.tunnelRouter)).toFixed(2)}, agent ${median(rows.map((r) => r.agent)).toFixed(2)}, core 1 direct ${median(rows.map((r) => r.directCore1)).toFixed(2)} tunnel ${median(rows.map((r) => r.tunnelCore1)).toFixed(2)}, agent switches ${median(rows.map((r) => r.switches))}, tunnel MB/s ${median(rows.map((r) => r.tunnelMBs)).toFixed(0)}, ratio ${median(rows.map((r) => r.ratio)).toFixed(2)} (${rows.map((r) => r.ratio.toFixed(2)).join(', ')})`);
    }
  }
} finally {
  await stopAll();
  await rm(dir, { recursive: true, force: true });
}
