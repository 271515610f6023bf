#!/usr/bin/env node
// `make demo`: a local etcd (data under .data/), two router replicas, the mango app (v1, three
// instances) and the apple app (two), records written with etcdctl as an operator would, requests
// through both routers showing which instance answered, over plain HTTP and over HTTPS with HTTP/2
// (a certificate in /paas/certs/, served by each router's TLS listener); then a zero-downtime redeploy of mango to
// v2 with `paas-deploy redeploy` under a steady load through both routers, and a summary. The
// papaya app is served through an agent tunnel: `paas-deploy tunnel-token create`, `paas-agent`
// beside the app dialling the routers' tunnel listeners, `paas-deploy register --url tunnel://`. Stops
// everything it started; exits non-zero if any request of the load failed.
import { spawn, execFile } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import { request } from 'undici';

const root = new URL('..', import.meta.url).pathname;
const children = [];
const run = promisify(execFile);

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function start(name, cmd, args, env = {}) {
  const proc = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const lines = [];
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve(code ?? signal)));
  for (const stream of [proc.stdout, proc.stderr]) {
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    });
  }
  const child = { name, proc, lines, exited };
  children.push(child);
  return child;
}

async function until(what, check, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function startEtcd() {
  const [client, peer] = [await freePort(), await freePort()];
  const dataDir = `${root}.data/etcd-demo`;
  rmSync(dataDir, { recursive: true, force: true });
  mkdirSync(dataDir, { recursive: true });
  const endpoint = `http://127.0.0.1:${client}`;
  start('etcd', 'etcd', [
    '--name', 'demo', '--data-dir', dataDir, '--log-level', 'error', '--logger', 'zap',
    '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `demo=http://127.0.0.1:${peer}`,
  ]);
  await until('etcd', async () => (await request(`${endpoint}/health`)).statusCode === 200);
  return endpoint;
}

async function startApp(app, name, release) {
  const child = start(name, 'node', ['test/apps/sample-app.mjs', '--port', '0', '--app', app, '--name', name, '--release', release]);
  await until(`${name} listening`, () => child.lines.some((l) => l.includes('"listening"')));
  const { port } = JSON.parse(child.lines.find((l) => l.includes('"listening"')));
  return { ...child, url: `http://127.0.0.1:${port}` };
}

async function startRouter(id, endpoint) {
  const [port, admin, tls, tunnel] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const child = start(id, 'node', ['packages/router/bin/paas-router.js', '--etcd', endpoint, '--prefix', '/paas', '--listen', `127.0.0.1:${port}`, '--listen-tls', `127.0.0.1:${tls}`,
    '--listen-tunnel', `127.0.0.1:${tunnel}`, '--tunnel-cert', 'tunnel', '--admin', `127.0.0.1:${admin}`, '--id', id]);
  await until(`${id} ready`, async () => (await request(`http://127.0.0.1:${admin}/readyz`)).statusCode === 200);
  return { ...child, url: `http://127.0.0.1:${port}`, adminUrl: `http://127.0.0.1:${admin}`, tlsPort: tls, tunnelUrl: `https://127.0.0.1:${tunnel}` };
}

/**
 * A self-signed certificate (its own CA for curl --cacert and paas-agent --ca): www.mango.com for
 * the TLS listener; localhost and 127.0.0.1 for the tunnel listener the agent dials.
 */
async function demoCertificate(name = 'www.mango.com', san = 'DNS:www.mango.com') {
  const dir = `${root}.data/demo-tls/${name}`;
  mkdirSync(dir, { recursive: true });
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${dir}/key.pem`, '-out', `${dir}/cert.pem`,
    '-days', '30', '-subj', `/CN=${name}`, '-addext', `subjectAltName=${san}`]);
  return { file: `${dir}/cert.pem`, cert: readFileSync(`${dir}/cert.pem`, 'utf8'), key: readFileSync(`${dir}/key.pem`, 'utf8') };
}

const etcdctl = (endpoint, ...args) => run('etcdctl', [`--endpoints=${endpoint}`, ...args], { env: { ...process.env, ETCDCTL_API: '3' } });

async function main() {
  console.log('== starting etcd');
  const endpoint = await startEtcd();
  console.log(`   etcd at ${endpoint}`);

  console.log('== starting sample apps: mango v1 (three instances) and apple (two)');
  const apps = [];
  for (const [app, name] of [['mango', 'mango-1'], ['mango', 'mango-2'], ['mango', 'mango-3'], ['apple', 'apple-1'], ['apple', 'apple-2']]) {
    apps.push({ app, name, ...(await startApp(app, name, 'v1')) });
  }

  console.log('== writing records with etcdctl, as an operator would');
  const certificate = await demoCertificate();
  const puts = [
    ['/paas/apps/mango', { routes: [{ host: 'www.mango.com' }, { path: '/mango' }] }],
    ['/paas/apps/apple', { routes: [{ host: 'www.apple.com' }, { path: '/apple' }] }],
    ...apps.map((a) => [`/paas/instances/${a.app}/${a.name}`, { url: a.url, state: 'ready', release: 'v1' }]),
  ];
  for (const [key, value] of puts) {
    console.log(`   etcdctl put ${key} '${JSON.stringify(value)}'`);
    await etcdctl(endpoint, 'put', key, JSON.stringify(value));
  }
  console.log(`   etcdctl put /paas/certs/www.mango.com '{"cert":"-----BEGIN CERTIFICATE-----...","key":"-----BEGIN PRIVATE KEY-----..."}'`);
  await etcdctl(endpoint, 'put', '/paas/certs/www.mango.com', JSON.stringify({ cert: certificate.cert, key: certificate.key }));
  const tunnelCertificate = await demoCertificate('localhost', 'DNS:localhost,IP:127.0.0.1');
  console.log(`   etcdctl put /paas/certs/tunnel '{"cert":...,"key":...}'   (the routers' tunnel listener: --listen-tunnel --tunnel-cert tunnel)`);
  await etcdctl(endpoint, 'put', '/paas/certs/tunnel', JSON.stringify({ cert: tunnelCertificate.cert, key: tunnelCertificate.key }));

  console.log('== starting two router replicas');
  const routers = [await startRouter('r1', endpoint), await startRouter('r2', endpoint)];
  for (const r of routers) console.log(`   ${r.name}: traffic ${r.url}, admin ${r.adminUrl}`);

  console.log('== requests through both routers');
  let failures = 0;
  const cases = [
    ['www.mango.com', '/'], ['www.apple.com', '/'], ['www.notmango.com', '/'],
    ['demo.local', '/mango'], ['demo.local', '/apple'], ['demo.local', '/notmango'],
  ];
  for (const r of routers) {
    for (const [host, path] of cases) {
      const answers = [];
      for (let i = 0; i < 2; i++) {
        const res = await request(`${r.url}${path}`, { headers: { host } });
        const text = await res.body.text();
        answers.push(res.statusCode === 200 ? `${JSON.parse(text).instance}` : `${res.statusCode} ${text}`);
        const expected404 = host === 'www.notmango.com' || path === '/notmango';
        if ((res.statusCode === 404) !== expected404 || (!expected404 && res.statusCode !== 200)) failures++;
      }
      console.log(`   ${r.name}  ${(host + path).padEnd(24)} → ${answers.join(', ')}`);
    }
  }

  console.log('== HTTPS with HTTP/2 through both routers (curl --http2 --cacert, SNI www.mango.com)');
  for (const r of routers) {
    const { stdout } = await run('curl', ['-sS', '--http2', '--cacert', certificate.file, '--resolve', `www.mango.com:${r.tlsPort}:127.0.0.1`,
      '-o', '/dev/null', '-w', '%{http_version} %{http_code} %{header_json}', `https://www.mango.com:${r.tlsPort}/`]);
    const [version, code] = stdout.split(' ');
    const instance = JSON.parse(stdout.slice(stdout.indexOf('{')))['x-instance']?.[0];
    console.log(`   ${r.name}  https://www.mango.com:${r.tlsPort}/ → HTTP/${version} ${code} from ${instance}`);
    if (version !== '2' || code !== '200') failures++;
  }

  failures += await tunnelApp(endpoint, routers, tunnelCertificate.file);

  console.log('== routers report what they applied');
  for (const r of routers) {
    const s = await (await request(`${r.adminUrl}/status`)).body.json();
    console.log(`   ${r.name}: revision ${s.revision}, digest ${s.digest}, ${s.routes} routes, ${s.rejected.length} rejected`);
  }
  if (failures > 0) {
    console.log(`== ${failures} routing answers were not as expected`);
    return 1;
  }
  return redeployUnderLoad(endpoint, routers, apps);
}

const deployCli = (endpoint, ...args) => run('node', ['packages/deployer/bin/paas-deploy.js', '--etcd', endpoint, '--prefix', '/paas', ...args], { cwd: root });

/**
 * papaya behind NAT: no router opens a connection to it. Its agent dials one router's tunnel
 * listener, learns the other from it, and holds two sessions to each; requests come back over
 * them. Returns the number of answers that were not as expected.
 */
async function tunnelApp(endpoint, routers, caFile) {
  console.log('== an app behind NAT: papaya, served through an agent tunnel');
  await etcdctl(endpoint, 'put', '/paas/apps/papaya', JSON.stringify({ routes: [{ host: 'www.papaya.com' }] }));
  console.log(`   etcdctl put /paas/apps/papaya '{"routes":[{"host":"www.papaya.com"}]}'`);
  const papaya = await startApp('papaya', 'papaya-1', 'v1');
  console.log('   $ paas-deploy tunnel-token create papaya');
  const created = await deployCli(endpoint, 'tunnel-token', 'create', 'papaya');
  const secret = created.stdout.trim().split('\n').at(-1);
  for (const line of created.stdout.trim().split('\n').slice(0, -1)) console.log(`   | ${line}`);
  console.log(`   | ${secret.slice(0, secret.indexOf('.') + 1)}… (the secret, shown once)`);
  console.log(`   $ PAAS_AGENT_TOKEN=… paas-agent --routers ${routers[0].tunnelUrl} --app papaya --id papaya-1 --to ${papaya.url} --ca ${caFile.slice(root.length)}`);
  start('paas-agent', 'node', ['packages/agent/bin/paas-agent.js', '--routers', routers[0].tunnelUrl, '--app', 'papaya', '--id', 'papaya-1', '--to', papaya.url, '--ca', caFile], { PAAS_AGENT_TOKEN: secret });
  // register waits, in place of a health check it cannot make, until every router holds a session.
  console.log('   $ paas-deploy register papaya --url tunnel://papaya-1');
  const registered = await deployCli(endpoint, 'register', 'papaya', '--url', 'tunnel://papaya-1');
  for (const line of registered.stdout.trim().split('\n')) console.log(`   | ${line}`);
  const status = await deployCli(endpoint, 'status', 'papaya');
  for (const line of status.stdout.trim().split('\n').filter((l) => l.includes('tunnel://'))) console.log(`   | ${line.trim()}`);
  let failures = 0;
  for (const r of routers) {
    const res = await request(`${r.url}/`, { headers: { host: 'www.papaya.com' } });
    const text = await res.body.text();
    console.log(`   ${r.name}  www.papaya.com/ → ${res.statusCode === 200 ? `${JSON.parse(text).instance} (through the tunnel)` : `${res.statusCode} ${text}`}`);
    if (res.statusCode !== 200) failures++;
  }
  return failures;
}

const LOAD_MS = 9000;
const REDEPLOY_AT_MS = 2500;
const WORKERS_PER_ROUTER = 8;
const BUCKET_MS = 500;

/** Steady load through both routers while `paas-deploy redeploy` replaces mango v1 with v2. */
async function redeployUnderLoad(endpoint, routers, apps) {
  console.log('== starting mango v2 (three new instances)');
  const v2 = [];
  for (const name of ['mango-v2-1', 'mango-v2-2', 'mango-v2-3']) v2.push(await startApp('mango', name, 'v2'));

  console.log(`== steady load for ${LOAD_MS / 1000} s through both routers (${WORKERS_PER_ROUTER} clients each; every 10th request takes 400 ms); redeploy at ${REDEPLOY_AT_MS / 1000} s`);
  const t0 = Date.now();
  const stats = { sent: 0, byStatus: new Map(), errors: new Map(), buckets: [] };
  const count = (map, key) => map.set(key, (map.get(key) ?? 0) + 1);
  async function worker(router, n) {
    for (let i = 0; Date.now() - t0 < LOAD_MS; i++) {
      const path = (i + n) % 10 === 0 ? '/slow?ms=400' : '/';
      stats.sent++;
      try {
        const res = await request(`${router.url}${path}`, { headers: { host: 'www.mango.com' } });
        const text = await res.body.text();
        count(stats.byStatus, res.statusCode);
        const bucket = Math.floor((Date.now() - t0) / BUCKET_MS);
        stats.buckets[bucket] ??= new Map();
        count(stats.buckets[bucket], res.statusCode === 200 ? JSON.parse(text).release : String(res.statusCode));
      } catch (err) {
        count(stats.errors, err.code ?? err.message);
      }
    }
  }
  const load = Promise.all(routers.flatMap((r) => Array.from({ length: WORKERS_PER_ROUTER }, (_, n) => worker(r, n))));

  await new Promise((r) => setTimeout(r, REDEPLOY_AT_MS));
  const args = ['packages/deployer/bin/paas-deploy.js', '--etcd', endpoint, '--prefix', '/paas', 'redeploy', 'mango', ...v2.flatMap((a) => ['--url', a.url]), '--release', 'v2'];
  console.log(`   $ paas-deploy redeploy mango ${v2.map((a) => `--url ${a.url}`).join(' ')} --release v2`);
  const startedAt = Date.now();
  const deploy = start('paas-deploy', 'node', args);
  const deployCode = await deploy.exited;
  const deployMs = Date.now() - startedAt;
  for (const line of deploy.lines) console.log(`   | ${line}`);
  await load;

  console.log('== answers by release over time (each row: 0.5 s; v1 = old, v2 = new)');
  for (let b = 0; b < stats.buckets.length; b++) {
    const row = stats.buckets[b] ?? new Map();
    const cells = [...row.entries()].sort().map(([k, v]) => `${k}:${v}`).join('  ');
    const mark = b === Math.floor(REDEPLOY_AT_MS / BUCKET_MS) ? '  <- redeploy starts' : '';
    console.log(`   ${(b * BUCKET_MS / 1000).toFixed(1).padStart(4)} s  ${cells}${mark}`);
  }

  const failed = stats.sent - (stats.byStatus.get(200) ?? 0);
  const left = JSON.parse((await etcdctl(endpoint, 'get', '/paas/instances/mango/', '--prefix', '-w', 'json')).stdout).kvs ?? [];
  const releasesLeft = left.map((kv) => JSON.parse(Buffer.from(kv.value, 'base64').toString()).release);
  console.log('== summary');
  console.log(`   requests sent:        ${stats.sent}`);
  console.log(`   answers by status:    ${[...stats.byStatus.entries()].map(([k, v]) => `${k}: ${v}`).join(', ')}`);
  console.log(`   connection errors:    ${[...stats.errors.values()].reduce((a, b) => a + b, 0)}${stats.errors.size ? ` (${[...stats.errors.entries()].map(([k, v]) => `${k}: ${v}`).join(', ')})` : ''}`);
  console.log(`   failed requests:      ${failed}`);
  console.log(`   redeploy:             exit ${deployCode}, ${deployMs} ms from start to old instances deleted`);
  console.log(`   mango instances now:  ${releasesLeft.join(', ')}`);
  for (const a of apps.filter((x) => x.app === 'mango')) a.proc.kill('SIGTERM');
  const ok = failed === 0 && deployCode === 0 && releasesLeft.length === 3 && releasesLeft.every((r) => r === 'v2');
  console.log(ok ? '== zero-downtime redeploy: no request failed' : '== FAILED: see above');
  return ok ? 0 : 1;
}

async function stopAll() {
  for (const c of children.reverse()) {
    if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGTERM');
    await Promise.race([c.exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
  }
}

let code = 1;
try {
  code = await main();
} catch (err) {
  console.error(`demo failed: ${err.message}`);
  for (const c of children) if (c.lines.length) console.error(`--- ${c.name}:\n${c.lines.slice(-10).join('\n')}`);
} finally {
  console.log('== stopping everything the demo started');
  await stopAll();
}
process.exit(code);
