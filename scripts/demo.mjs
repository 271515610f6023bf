#!/usr/bin/env node
// `make demo`: a local etcd (data under .data/), two router replicas, the mango and apple sample
// apps (two instances each), records written with etcdctl as an operator would, requests through
// both routers showing which instance answered; then everything it started is stopped.
import { spawn, execFile } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
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

function start(name, cmd, args) {
  const proc = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
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
  const [port, admin] = [await freePort(), await freePort()];
  const child = start(id, 'node', ['packages/router/bin/paas-router.js', '--etcd', endpoint, '--prefix', '/paas', '--listen', `127.0.0.1:${port}`, '--admin', `127.0.0.1:${admin}`, '--id', id]);
  await until(`${id} ready`, async () => (await request(`http://127.0.0.1:${admin}/readyz`)).statusCode === 200);
  return { ...child, url: `http://127.0.0.1:${port}`, adminUrl: `http://127.0.0.1:${admin}` };
}

const etcdctl = (endpoint, ...args) => run('etcdctl', [`--endpoints=${endpoint}`, ...args], { env: { ...process.env, ETCDCTL_API: '3' } });

async function main() {
  console.log('== starting etcd');
  const endpoint = await startEtcd();
  console.log(`   etcd at ${endpoint}`);

  console.log('== starting sample apps: mango and apple, two instances each');
  const apps = [];
  for (const [app, name] of [['mango', 'mango-1'], ['mango', 'mango-2'], ['apple', 'apple-1'], ['apple', 'apple-2']]) {
    apps.push({ app, name, ...(await startApp(app, name, 'v1')) });
  }

  console.log('== writing records with etcdctl, as an operator would');
  const puts = [
    ['/paas/apps/mango', { routes: [{ host: 'www.mango.com' }, { path: '/mango' }] }],
    ['/paas/apps/apple', { routes: [{ host: 'www.apple.com' }, { path: '/apple' }] }],
    ...apps.map((a) => [`/paas/instances/${a.app}/${a.name}`, { url: a.url, state: 'ready', release: 'v1' }]),
  ];
  for (const [key, value] of puts) {
    console.log(`   etcdctl put ${key} '${JSON.stringify(value)}'`);
    await etcdctl(endpoint, 'put', key, JSON.stringify(value));
  }

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

  console.log('== routers report what they applied');
  for (const r of routers) {
    const s = await (await request(`${r.adminUrl}/status`)).body.json();
    console.log(`   ${r.name}: revision ${s.revision}, digest ${s.digest}, ${s.routes} routes, ${s.rejected.length} rejected`);
  }
  console.log(failures === 0 ? '== summary: every answer as expected' : `== summary: ${failures} unexpected answers`);
  return failures === 0 ? 0 : 1;
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
