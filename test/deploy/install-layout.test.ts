/**
 * The installed layout the image and the systemd unit run, built without Docker: deploy/install.sh
 * (the script deploy/Dockerfile runs) into a temporary directory standing for /opt/paas-routing.
 * From there, as shipped: `paas-router --help` and `paas-deploy --help` through the image's
 * symlinks, the router started by the systemd unit's ExecStart with paas-router.default's
 * settings, apps written by the installed deployer, a request served through the router against
 * the test etcd, the image's HEALTHCHECK script, and the metrics the dashboard and alerts read.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { request } from 'undici';
import { uniquePrefix } from '../harness/etcd.js';
import { freePorts } from '../harness/ports.js';
import { processes, startSampleApp } from '../harness/processes.js';
import { waitForHttp } from '../harness/wait.js';
import { REPO, dashboardExpressions, metricNames, readRepoFile, ruleExpressions, run } from './files.js';

const endpoints = inject('etcdEndpoints');
const prefix = uniquePrefix('install');
let root: string;
let opt: string;
let bin: string;
/** PATH as in the image: its symlinks, then the Node that runs the tests (the image's node). */
let env: NodeJS.ProcessEnv;

function duBytes(path: string): number {
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (!st || st.isSymbolicLink()) return 0;
  if (!st.isDirectory()) return st.size;
  return readdirSync(path).reduce((n, e) => n + duBytes(join(path, e)), 0);
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'paas-install-'));
  opt = join(root, 'opt/paas-routing');
  const installed = await run('bash', [`${REPO}deploy/install.sh`, opt], { timeoutMs: 120_000 });
  expect(installed.code, installed.stderr).toBe(0);
  expect(installed.stdout).toContain(`installed: ${opt}/router/bin/paas-router.js`);
  // What the Dockerfile's last stage adds to the installed programs.
  writeFileSync(join(opt, 'healthcheck.mjs'), readRepoFile('deploy/docker/healthcheck.mjs'));
  bin = join(root, 'usr/local/bin');
  mkdirSync(bin, { recursive: true });
  symlinkSync(join(opt, 'router/bin/paas-router.js'), join(bin, 'paas-router'));
  symlinkSync(join(opt, 'deployer/bin/paas-deploy.js'), join(bin, 'paas-deploy'));
  env = { ...process.env, PATH: `${bin}:${dirname(process.execPath)}:/usr/bin:/bin` };
}, 180_000);

afterAll(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('deploy/install.sh', () => {
  it('installs the two programs with their production dependencies only', () => {
    for (const pkg of ['router', 'deployer']) {
      // No sources, tests or build files: the packages' "files" lists (a README is always packed).
      const built = pkg === 'router' ? ['bin', 'bundle', 'dist'] : ['bin', 'dist'];
      expect(readdirSync(join(opt, pkg)).filter((e) => e !== 'README.md').sort()).toEqual([...built, 'node_modules', 'package.json', 'pnpm-lock.yaml']);
      const deps = readdirSync(join(opt, pkg, 'node_modules/.pnpm'));
      for (const dev of ['typescript@', 'vitest@', 'testcontainers@', 'autocannon@']) expect(deps.filter((d) => d.startsWith(dev))).toEqual([]);
    }
    // The workspace's own package is a copy, so the directory works without the checkout.
    expect(statSync(join(opt, 'router/node_modules/@paas/registry/dist/index.js')).isFile()).toBe(true);
    const mb = duBytes(opt) / 1e6;
    console.log(`[install-layout] /opt/paas-routing: ${mb.toFixed(1)} MB (router and deployer with their dependencies)`);
    // 83 MB when the router's bundled start (5 MB on disk) came in; the deployer carries a copy of
    // the router package (for table-at), bundle included.
    expect(mb).toBeLessThan(90);
  });

  it('runs both commands through the image\'s symlinks', async () => {
    const router = await run('paas-router', ['--help'], { env });
    expect(router.code).toBe(0);
    expect(router.stdout).toMatch(/^Usage: paas-router \[flags\]/);
    const deployer = await run('paas-deploy', ['--help'], { env });
    expect(deployer.code).toBe(0);
    expect(deployer.stdout).toMatch(/^Usage: paas-deploy /);
  });
});

describe('the installed router, started as the systemd unit starts it', () => {
  it('serves apps the installed deployer writes, answers the image\'s HEALTHCHECK, exports what the dashboard and alerts read, and drains on SIGTERM', async () => {
    // The unit's command and settings, with the install under the temporary root and the
    // host-specific settings (etcd, ports) pointed at this test's.
    const unit = readRepoFile('deploy/systemd/paas-router.service');
    const execStart = /^ExecStart=(.+)$/m.exec(unit)![1]!.replaceAll('/opt/paas-routing', opt).split(' ');
    const defaults = Object.fromEntries(
      readRepoFile('deploy/systemd/paas-router.default').split('\n').filter((l) => /^[A-Z_]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    expect(defaults).toMatchObject({ ROUTER_DRAIN_WAIT: '5s', ROUTER_SHUTDOWN_TIMEOUT: '30s' });
    const [port, adminPort] = (await freePorts(2)) as [number, number];
    const routerEnv = {
      ...env,
      ...defaults,
      ETCD_ENDPOINTS: endpoints.join(','),
      PAAS_PREFIX: prefix,
      ROUTER_LISTEN: `127.0.0.1:${port}`,
      ROUTER_ADMIN: `127.0.0.1:${adminPort}`,
      ROUTER_ID: 'installed-1',
      // Long enough to look at a draining router, short enough for the test.
      ROUTER_DRAIN_WAIT: '3s',
      ROUTER_CLIENT_KEEPALIVE_TIMEOUT: '2s',
    };
    const router = processes.spawn(execStart[0]!, execStart.slice(1), { name: 'installed router', env: routerEnv });
    const admin = `http://127.0.0.1:${adminPort}`;
    await waitForHttp(`${admin}/readyz`, (a) => a.status === 200, { timeoutMs: 30_000, message: 'the installed router to be ready' });
    // The install carries the bundled start and no tsbuildinfo: the bundle is what runs.
    expect(((await (await fetch(`${admin}/status`)).json()) as { modules: string }).modules).toBe('bundle');

    const healthcheck = () => run(process.execPath, [join(opt, 'healthcheck.mjs')], { env: { ...env, ROUTER_ADMIN: `0.0.0.0:${adminPort}` } });
    expect((await healthcheck()).code).toBe(0);

    const app = await startSampleApp({ app: 'mango', name: 'mango-1' });
    const deployEnv = { ...env, ETCD_ENDPOINTS: endpoints.join(','), PAAS_PREFIX: prefix };
    const set = await run('paas-deploy', ['app', 'set', 'mango', '--host', 'mango.example.com'], { env: deployEnv });
    expect(set.code, set.stderr).toBe(0);
    const registered = await run('paas-deploy', ['register', 'mango', '--url', app.url, '--id', 'mango-1'], { env: deployEnv });
    expect(registered.code, registered.stderr).toBe(0);
    const res = await request(`http://127.0.0.1:${port}/hello`, { headers: { host: 'mango.example.com' } });
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toMatchObject({ app: 'mango', instance: 'mango-1', path: '/hello' });

    // Every metric the dashboard and the alert rules read is exported (histograms by their series).
    const text = await (await fetch(`${admin}/metrics`)).text();
    const exported = new Set<string>();
    for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      exported.add(name!);
      if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) exported.add(name! + s);
    }
    const used = new Set([...dashboardExpressions(), ...ruleExpressions()].flatMap(metricNames));
    const missing = [...used].filter((n) => !exported.has(n)).sort();
    expect(missing).toEqual([]);
    expect(text).toMatch(/^router_ready 1$/m);

    router.kill('SIGTERM');
    const draining = await waitForHttp(`${admin}/metrics`, (a) => /^router_ready 0$/m.test(a.body), { timeoutMs: 10_000, message: 'router_ready 0 while draining' });
    expect(draining.status).toBe(200);
    expect((await healthcheck()).code).toBe(1);
    expect(await router.exited).toEqual({ code: 0, signal: null });
  });
});

describe('deploy/systemd/paas-router.service', () => {
  it('passes systemd-analyze verify with the install in place', async () => {
    const unitPath = join(root, 'paas-router.service');
    writeFileSync(unitPath, readRepoFile('deploy/systemd/paas-router.service').replaceAll('/opt/paas-routing', opt));
    const verified = await run('systemd-analyze', ['verify', unitPath]);
    expect(verified.stderr).toBe('');
    expect(verified.code).toBe(0);
    // The check fails when the command the unit runs is not installed.
    writeFileSync(unitPath, readRepoFile('deploy/systemd/paas-router.service').replaceAll('/opt/paas-routing', join(root, 'nowhere')));
    const broken = await run('systemd-analyze', ['verify', unitPath]);
    expect(broken.stderr).toContain('is not executable');
  });

  it('is rated 2.5 or lower by systemd-analyze security', async () => {
    const rated = await run('systemd-analyze', ['security', '--offline=yes', `${REPO}deploy/systemd/paas-router.service`]);
    expect(rated.code).toBe(0);
    const level = Number(/Overall exposure level for paas-router\.service: ([\d.]+)/.exec(rated.stdout)?.[1]);
    console.log(`[install-layout] systemd-analyze security: ${level}`);
    expect(level).toBeLessThanOrEqual(2.5);
    // TimeoutStopSec covers the drain the default settings ask for.
    const unit = readRepoFile('deploy/systemd/paas-router.service');
    expect(Number(/^TimeoutStopSec=(\d+)$/m.exec(unit)?.[1])).toBeGreaterThan(5 + 30);
  });
});
