/**
 * Agent tunnel vs direct: the same sample app reached through one router, once as a direct
 * instance and once as a `tunnel://` instance behind a paas-agent. Small requests (closed loop,
 * the proxy suite's client): req/s, p50/p99 and requests per router CPU-second, with the agent's
 * CPU beside it. Then a 1 GiB download and a 1 GiB upload each way, in turns (--rounds rounds;
 * a cell is its median round): seconds, MB/s, CPU and peak RSS. Then the HTTP/2 flow-control
 * windows on their own: one 256 MiB stream over TLS on loopback with HTTP/2's default 64 KiB
 * windows and with the tunnel's.
 *
 * The transfers have a reference measured in the same rounds: the cheapest encrypted hop to the
 * app, HAProxy beside it terminating TLS and passing bytes on (tcp mode, no multiplexing, no
 * dial-out), reached by the router as an `https://` instance (`tls relay`), and by HAProxy as the
 * front proxy instead of the router (`haproxy direct` against `haproxy tls relay`). Whatever
 * share of direct throughput an encrypted hop costs on this machine, the tunnel pays it too.
 *
 * Placement: the router (and the front HAProxy) on the proxy core; the app, the agent (and the
 * TLS relay) and the client on the other (the agent's work lands beside the app, as it would on
 * the app's host).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { connect as h2connect, createSecureServer } from 'node:http2';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent as UndiciAgent, request } from 'undici';
import { cpuMeter, rssSampler } from '../lib/cpu.mjs';
import { haproxyTlsRelayConfig, runHaproxy, startHaproxy } from '../lib/haproxy.mjs';
import { freePorts, waitFor } from '../lib/net.mjs';
import { start } from '../lib/procs.mjs';
import { REPO_ROOT, startRouter } from '../lib/router.mjs';
import { wrk } from '../lib/wrk.mjs';

const PREFIX = '/tunnel-bench';
const AGENT_BIN = `${REPO_ROOT}packages/agent/bin/paas-agent.js`;
const SAMPLE_APP = `${REPO_ROOT}test/apps/sample-app.mjs`;
const LOADGEN = fileURLToPath(new URL('../lib/loadgen.mjs', import.meta.url));
const GiB = 1024 * 1024 * 1024;
/** The tunnel's windows (packages/router/src/tunnel/listener.ts, packages/agent/src/link.ts). */
const TUNNEL_STREAM_WINDOW = 4 * 1024 * 1024;
const TUNNEL_SESSION_WINDOW = 32 * 1024 * 1024;

function selfSignedCert(dir) {
  const key = path.join(dir, 'tunnel-key.pem');
  const cert = path.join(dir, 'tunnel-cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  return { certFile: cert, certPem: readFileSync(cert, 'utf8'), keyPem: readFileSync(key, 'utf8') };
}

async function closedLoop(ctx, url, host) {
  if (ctx.client === 'wrk') {
    const opts = { connections: ctx.connections, host, cpus: ctx.cpus.client };
    await wrk(ctx.tools.wrk, url, { ...opts, seconds: ctx.warmSeconds });
    return { run: () => wrk(ctx.tools.wrk, url, { ...opts, seconds: ctx.measureSeconds }) };
  }
  return {
    run: async () => {
      const proc = start('autocannon', process.execPath, [LOADGEN, 'closed', url, host, String(ctx.measureSeconds), String(ctx.connections), '0'], { cpus: ctx.cpus.client });
      let stdout = '';
      proc.child.stdout.on('data', (c) => (stdout += c));
      const { code } = await proc.exited;
      if (code !== 0) throw new Error(`loadgen failed: ${proc.tail()}`);
      return JSON.parse(stdout.trim().split('\n').pop());
    },
  };
}

/**
 * One 1 GiB transfer through a proxy (the router, or the front HAProxy): seconds, MB/s, the
 * proxy's and the relay's (agent's, TLS relay's) CPU-s and peak RSS.
 */
async function transfer(via, direction, dispatcher) {
  const { url, host, proxyPid, relayPid } = via;
  const rss = rssSampler(proxyPid, 50);
  const relayRss = relayPid ? rssSampler(relayPid, 50) : undefined;
  const proxyCpu = cpuMeter([proxyPid]);
  const relayCpu = relayPid ? cpuMeter([relayPid]) : undefined;
  const t0 = performance.now();
  let bytes = 0;
  if (direction === 'download') {
    const res = await request(`${url}/bytes?n=${GiB}`, { headers: { host }, dispatcher });
    for await (const chunk of res.body) bytes += chunk.length;
  } else {
    const chunk = Buffer.alloc(1024 * 1024, 1);
    async function* body() {
      for (let i = 0; i < 1024; i++) yield chunk;
    }
    const res = await request(`${url}/count`, { method: 'POST', headers: { host, 'content-length': String(GiB) }, body: body(), dispatcher });
    bytes = JSON.parse(await res.body.text()).bytes;
  }
  const seconds = (performance.now() - t0) / 1000;
  if (bytes !== GiB) throw new Error(`${direction} through ${via.name}: ${bytes} bytes, not ${GiB}`);
  return {
    seconds,
    mbPerS: GiB / 1024 / 1024 / seconds,
    proxyPeakRssMB: rss.stop().peakMB,
    relayPeakRssMB: relayRss?.stop().peakMB,
    proxyCpuS: proxyCpu.stop().cpuSeconds,
    relayCpuS: relayCpu?.stop().cpuSeconds,
  };
}

/** One 256 MiB HTTP/2 stream over TLS on loopback with the given windows (undefined: HTTP/2's defaults). */
async function h2Stream(cert, windows) {
  const size = 256 * 1024 * 1024;
  const chunk = Buffer.alloc(256 * 1024);
  const server = createSecureServer({ cert: cert.certPem, key: cert.keyPem });
  server.on('stream', (stream) => {
    stream.respond({ ':status': 200 });
    let left = size;
    const write = () => {
      while (left > 0) {
        left -= chunk.length;
        if (!stream.write(chunk)) return void stream.once('drain', write);
      }
      stream.end();
    };
    write();
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const client = h2connect(`https://127.0.0.1:${server.address().port}`, { ca: cert.certPem, ...(windows ? { settings: { initialWindowSize: windows.stream } } : {}) });
  if (windows) client.once('connect', () => client.setLocalWindowSize(windows.session));
  const t0 = performance.now();
  let bytes = 0;
  await new Promise((resolve, reject) => {
    const req = client.request({ ':path': '/' });
    req.on('data', (c) => (bytes += c.length));
    req.on('end', resolve);
    req.on('error', reject);
    req.end();
  });
  const seconds = (performance.now() - t0) / 1000;
  client.close();
  server.close();
  return { bytes, seconds, mbPerS: bytes / 1024 / 1024 / seconds };
}

/**
 * The reference's two HAProxies: the TLS relay beside the app (client core) and the front proxy
 * in the router's place (proxy core), whose Host `relay.bench` goes through the relay.
 */
async function startReference(ctx, cert, appPort, relayPort, frontPort) {
  const pem = path.join(ctx.tmpDir, 'tunnel-relay.pem');
  writeFileSync(pem, cert.certPem + cert.keyPem);
  const relay = await runHaproxy(ctx.tools.haproxy, {
    dir: await mkdtemp(path.join(ctx.tmpDir, 'relay-')),
    port: relayPort,
    cpus: ctx.cpus.client,
    config: (pidFile) => haproxyTlsRelayConfig({ port: relayPort, backendPort: appPort, pidFile, pem }),
  });
  const front = await startHaproxy(ctx.tools.haproxy, { dir: await mkdtemp(path.join(ctx.tmpDir, 'front-')), port: frontPort, backendPort: appPort, cpus: ctx.cpus.proxy, relay: { port: relayPort, caFile: cert.certFile } });
  return { relay, front };
}

export async function tunnelSuite(ctx) {
  const etcd = await ctx.etcd();
  const etcdc = await ctx.etcdClient();
  const { newTunnelToken } = await import(`${REPO_ROOT}packages/registry/dist/index.js`);
  const cert = selfSignedCert(ctx.tmpDir);
  const [tunnelPort] = await freePorts(1);
  const token = newTunnelToken();
  const app = start('sample-app', process.execPath, [SAMPLE_APP, '--port', '0', '--name', 'bench'], { cpus: ctx.cpus.client });
  await waitFor(() => app.lines.some((l) => l.includes('"listening"')), { message: 'sample app', proc: app });
  const appPort = JSON.parse(app.lines.find((l) => l.includes('"listening"'))).port;
  const appUrl = `http://127.0.0.1:${appPort}`;
  await etcdc.put(`${PREFIX}/certs/tunnel`, JSON.stringify({ cert: cert.certPem, key: cert.keyPem }));
  await etcdc.put(`${PREFIX}/apps/direct`, JSON.stringify({ routes: [{ host: 'direct.bench' }] }));
  await etcdc.put(`${PREFIX}/apps/tunneled`, JSON.stringify({ routes: [{ host: 'tunnel.bench' }] }));
  await etcdc.put(`${PREFIX}/instances/direct/d1`, JSON.stringify({ url: appUrl, state: 'ready' }));
  await etcdc.put(`${PREFIX}/instances/tunneled/t1`, JSON.stringify({ url: 'tunnel://t1', state: 'ready' }));
  await etcdc.put(`${PREFIX}/tunnel-tokens/tunneled/${token.tokenId}`, JSON.stringify({ sha256: token.sha256 }));
  const [relayPort, frontPort] = await freePorts(2);
  // The reference needs HAProxy (the bench installs it unless --no-install); without it the transfers run alone.
  const reference = ctx.tools.haproxy ? await startReference(ctx, cert, appPort, relayPort, frontPort) : undefined;
  if (reference === undefined) ctx.log('  no haproxy: the transfers run without the encrypted-hop reference');
  else {
    await etcdc.put(`${PREFIX}/apps/relayed`, JSON.stringify({ routes: [{ host: 'relay.bench' }] }));
    await etcdc.put(`${PREFIX}/instances/relayed/r1`, JSON.stringify({ url: `https://127.0.0.1:${relayPort}`, state: 'ready' }));
  }
  // The relay's certificate is the tunnel's self-signed one: the router verifies it against that.
  const router = await startRouter({ etcd: etcd.endpoint, prefix: PREFIX, id: 'tunnel-bench', cpus: ctx.cpus.proxy, env: { NODE_EXTRA_CA_CERTS: cert.certFile }, extraArgs: ['--listen-tunnel', `127.0.0.1:${tunnelPort}`, '--tunnel-cert', 'tunnel'] });
  const agent = start('paas-agent', process.execPath, [AGENT_BIN, '--routers', `https://127.0.0.1:${tunnelPort}`, '--app', 'tunneled', '--id', 't1', '--to', appUrl, '--ca', cert.certFile, '--log-level', 'warn'], {
    cpus: ctx.cpus.client,
    env: { PAAS_AGENT_TOKEN: token.secret },
  });
  await waitFor(async () => (await etcdc.get(`${PREFIX}/tunnels/tunneled/t1/tunnel-bench`)) !== undefined, { timeoutMs: 20_000, message: 'agent sessions', proc: agent });
  const dispatcher = new UndiciAgent({ connections: 1 });
  try {
    const small = [];
    for (const [name, host] of [['direct', 'direct.bench'], ['tunnel', 'tunnel.bench']]) {
      const loop = await closedLoop(ctx, `${router.url}/`, host);
      const routerCpu = cpuMeter([router.proc.pid]);
      const agentCpu = cpuMeter([agent.pid]);
      const r = await loop.run();
      const rc = routerCpu.stop();
      const ac = agentCpu.stop();
      const row = { name, rps: r.rps, requests: r.requests, p50Ms: r.p50Ms, p99Ms: r.p99Ms, errors: (r.non2xx ?? 0) + (r.socketErrors ?? 0), reqPerRouterCpuS: r.requests / rc.cpuSeconds, agentCpuS: name === 'tunnel' ? ac.cpuSeconds : undefined };
      ctx.log(`  ${name}: ${Math.round(row.rps)} req/s, p50 ${row.p50Ms?.toFixed(2)} ms, p99 ${row.p99Ms?.toFixed(2)} ms, ${Math.round(row.reqPerRouterCpuS)} req per router CPU-s${row.agentCpuS !== undefined ? `, agent ${row.agentCpuS.toFixed(2)} CPU-s` : ''}`);
      small.push(row);
    }
    const paths = [
      { name: 'direct', url: router.url, host: 'direct.bench', proxyPid: router.proc.pid },
      { name: 'tunnel', url: router.url, host: 'tunnel.bench', proxyPid: router.proc.pid, relayPid: agent.pid },
    ];
    if (reference !== undefined) {
      const { relay, front } = reference;
      const frontUrl = `http://127.0.0.1:${frontPort}`;
      paths.push(
        { name: 'tls relay', url: router.url, host: 'relay.bench', proxyPid: router.proc.pid, relayPid: relay.pid },
        { name: 'haproxy direct', url: frontUrl, host: 'direct.bench', proxyPid: front.pid },
        { name: 'haproxy tls relay', url: frontUrl, host: 'relay.bench', proxyPid: front.pid, relayPid: relay.pid },
      );
    }
    // In turns (--rounds): each round moves 1 GiB each way along every path, one after the
    // other, so a slower stretch of the machine falls on all of them; a cell is its median round
    // by MB/s.
    const rounds = [];
    for (let round = 1; round <= ctx.rounds; round++) {
      for (const direction of ['download', 'upload']) {
        for (const p of paths) {
          const r = await transfer(p, direction, dispatcher).catch((err) => {
            // The processes' last lines say more than a client-side ECONNRESET.
            ctx.log(`  1 GiB ${direction} ${p.name}, round ${round}: failed (${err.message}); router's last lines:\n${router.proc.tail(20)}\nagent's:\n${agent.tail(10)}`);
            throw err;
          });
          ctx.log(`  1 GiB ${direction} ${p.name}, round ${round}/${ctx.rounds}: ${r.seconds.toFixed(2)} s, ${Math.round(r.mbPerS)} MB/s, proxy ${r.proxyCpuS.toFixed(2)} CPU-s${r.relayCpuS !== undefined ? `, relay ${r.relayCpuS.toFixed(2)} CPU-s` : ''}, proxy peak RSS ${Math.round(r.proxyPeakRssMB)} MB${r.relayPeakRssMB !== undefined ? `, relay ${Math.round(r.relayPeakRssMB)} MB` : ''}`);
          rounds.push({ direction, name: p.name, round, ...r });
        }
      }
    }
    const bulk = [];
    for (const direction of ['download', 'upload']) {
      for (const { name } of paths) {
        const all = rounds.filter((r) => r.direction === direction && r.name === name).sort((a, b) => a.mbPerS - b.mbPerS);
        bulk.push({ ...all[Math.floor((all.length - 1) / 2)], rounds: all.length });
      }
    }
    const windows = [];
    for (const [name, w] of [
      ['HTTP/2 defaults (64 KiB)', undefined],
      ['the tunnel\'s (4 MiB stream / 32 MiB session)', { stream: TUNNEL_STREAM_WINDOW, session: TUNNEL_SESSION_WINDOW }],
    ]) {
      const r = await h2Stream(cert, w);
      ctx.log(`  one 256 MiB HTTP/2 stream, windows ${name}: ${Math.round(r.mbPerS)} MB/s`);
      windows.push({ name, ...r });
    }
    return { small, bulk, bulkRounds: rounds, windows, connections: ctx.connections, client: ctx.client, measureSeconds: ctx.measureSeconds, rounds: ctx.rounds };
  } finally {
    // destroy, not close: after a failed transfer close() may wait on it.
    await dispatcher.destroy();
  }
}
