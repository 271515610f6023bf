/**
 * The router process over its life: WebSockets, draining, failing instances, bad flags and a
 * graceful SIGTERM. Real etcd, real router and sample-app processes, real clients.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { request } from 'undici';
import WebSocket from 'ws';
import { processes, startRouter, startSampleApp, type RouterProcess, type SampleApp } from '../harness/processes.js';
import { runEtcdctl as etcdctl, uniquePrefix } from '../harness/etcd.js';
import { waitFor } from '../harness/wait.js';

const endpoints = inject('etcdEndpoints');
const ROUTER_BIN = new URL('../../packages/router/bin/paas-router.js', import.meta.url).pathname;
const run = promisify(execFile);

async function putJson(key: string, value: unknown): Promise<void> {
  await etcdctl(endpoints, ['put', key, JSON.stringify(value)]);
}

async function status(router: RouterProcess): Promise<{ revision: string; inflight: Record<string, number> }> {
  return (await (await request(`${router.adminUrl}/status`)).body.json()) as { revision: string; inflight: Record<string, number> };
}

describe('a router with two instances of one app', () => {
  const prefix = uniquePrefix('life');
    let router: RouterProcess;
  let a: SampleApp;
  let b: SampleApp;
  const host = 'life.example.com';

  beforeAll(async () => {
    a = await startSampleApp({ app: 'life', name: 'a', release: 'v1' });
    b = await startSampleApp({ app: 'life', name: 'b', release: 'v1' });
    await putJson(`${prefix}/apps/life`, { routes: [{ host }] });
    await putJson(`${prefix}/instances/life/a`, { url: a.url, state: 'ready' });
    await putJson(`${prefix}/instances/life/b`, { url: b.url, state: 'ready' });
    router = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'life-1' });
  });
  afterAll(() => processes.stopAll());

  it('proxies a WebSocket echo to an instance and counts it in flight while open', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${router.port}/socket`, { headers: { host, cookie: 'session=42' } });
    const hello = await new Promise<{ hello: string; headers: Record<string, string> }>((resolve, reject) => {
      ws.once('message', (data) => resolve(JSON.parse(String(data))));
      ws.once('error', reject);
    });
    expect(['a', 'b']).toContain(hello.hello);
    expect(hello.headers['x-forwarded-host']).toBe(host);
    expect(hello.headers.cookie).toBe('session=42');
    const echoed = await new Promise<string>((resolve) => {
      ws.once('message', (data) => resolve(String(data)));
      ws.send('ping-through-router');
    });
    expect(echoed).toBe('ping-through-router');
    await waitFor(async () => (await status(router)).inflight[`life/${hello.hello}`] === 1, { timeoutMs: 5000, message: 'WebSocket counted in flight' });
    ws.close();
    await waitFor(async () => (await status(router)).inflight[`life/${hello.hello}`] === undefined, { timeoutMs: 5000, message: 'WebSocket released' });
  });

  it('lets a request in flight on a draining instance finish, and sends new ones elsewhere', async () => {
    // Pin the slow request to a by making b starting first.
    await putJson(`${prefix}/instances/life/b`, { url: b.url, state: 'starting' });
    await waitFor(async () => {
      const res = await request(`${router.url}/`, { headers: { host } });
      return ((await res.body.json()) as { instance: string }).instance === 'a';
    }, { timeoutMs: 5000, message: 'only a serving' });
    const slow = request(`${router.url}/slow?ms=1500`, { headers: { host } });
    await waitFor(async () => (await status(router)).inflight['life/a'] === 1, { timeoutMs: 5000, message: 'slow request in flight on a' });
    await putJson(`${prefix}/instances/life/b`, { url: b.url, state: 'ready' });
    await putJson(`${prefix}/instances/life/a`, { url: a.url, state: 'draining' });
    await waitFor(async () => (await status(router)).inflight['life/a'] === 1 && (await status(router)).inflight['life/b'] === undefined, { timeoutMs: 5000, message: 'a draining with one request' });
    for (let i = 0; i < 4; i++) {
      const res = await request(`${router.url}/`, { headers: { host } });
      expect(((await res.body.json()) as { instance: string }).instance).toBe('b');
    }
    const done = await slow;
    expect(done.statusCode).toBe(200);
    expect(((await done.body.json()) as { instance: string }).instance).toBe('a');
    const record = async () => JSON.parse(await etcdctl(endpoints, ['get', `${prefix}/routers/life-1`, '--print-value-only'])) as { inflight: Record<string, number> };
    await waitFor(async () => (await record()).inflight['life/a'] === 0, { timeoutMs: 5000, message: 'status record shows a drained' });
    await putJson(`${prefix}/instances/life/a`, { url: a.url, state: 'ready' });
  });

  it('moves requests off an instance that refuses connections, then answers 502 when all do', async () => {
    const dead = await startSampleApp({ app: 'life', name: 'dead', release: 'v1' });
    await putJson(`${prefix}/instances/life/dead`, { url: dead.url, state: 'ready' });
    const rev = BigInt(JSON.parse(await etcdctl(endpoints, ['get', `${prefix}/instances/life/dead`, '-w', 'json'])).kvs[0].mod_revision);
    await waitFor(async () => BigInt((await status(router)).revision) >= rev, { timeoutMs: 5000, message: 'dead instance applied' });
    await dead.proc.stop();
    for (let i = 0; i < 9; i++) {
      const res = await request(`${router.url}/`, { headers: { host } });
      expect(res.statusCode).toBe(200);
      await res.body.dump();
    }
    const metrics = await (await request(`${router.adminUrl}/metrics`)).body.text();
    expect(metrics).toMatch(/router_upstream_failures_total\{reason="ECONNREFUSED"\} [1-9]/);

    await a.proc.stop();
    await b.proc.stop();
    const res = await request(`${router.url}/`, { headers: { host } });
    expect(res.statusCode).toBe(502);
    expect(await res.body.text()).toBe('Bad Gateway');
  });
});

describe('active health checks', () => {
  it('stops sending requests to an instance that fails its health check', async () => {
    const prefix = uniquePrefix('health');
    const good = await startSampleApp({ app: 'hc', name: 'good', release: 'v1' });
    const sick = await startSampleApp({ app: 'hc', name: 'sick', release: 'v1' });
    await putJson(`${prefix}/apps/hc`, { routes: [{ host: 'hc.example.com' }], healthCheck: { path: '/healthz', intervalMs: 200, timeoutMs: 500 } });
    await putJson(`${prefix}/instances/hc/good`, { url: good.url, state: 'ready' });
    await putJson(`${prefix}/instances/hc/sick`, { url: sick.url, state: 'ready' });
    const router = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'hc-1' });
    const answeredBy = async () => {
      const res = await request(`${router.url}/`, { headers: { host: 'hc.example.com' } });
      return ((await res.body.json()) as { instance: string }).instance;
    };
    const before = new Set<string>();
    for (let i = 0; i < 4; i++) before.add(await answeredBy());
    expect(before).toEqual(new Set(['good', 'sick']));

    await (await request(`${sick.url}/admin/unhealthy`, { method: 'POST' })).body.dump();
    // Two failed checks in a row take it out; then every request goes to the healthy one.
    await waitFor(async () => {
      for (let i = 0; i < 6; i++) if ((await answeredBy()) !== 'good') return false;
      return true;
    }, { timeoutMs: 5000, message: 'requests to avoid the instance failing its health check' });
    await router.proc.stop();
  });
});

describe('start-up and shutdown', () => {
  it("runs with Node 20's young-generation limit and a 64 MB old-generation floor unless the operator chose them", async () => {
    const cmdline = (pid: number | undefined) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const prefix = uniquePrefix('semi');
    const plain = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'semi-1' });
    const chosen = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'semi-2', env: { NODE_OPTIONS: '--max-semi-space-size=4' } });
    try {
      // The same process, started again by itself with the limit (process.execve keeps the pid).
      expect(cmdline(plain.proc.pid)).toContain('--max-semi-space-size=16');
      expect(cmdline(plain.proc.pid)).toContain('--initial-old-space-size=64');
      expect(cmdline(chosen.proc.pid).some((a) => a.startsWith('--max-semi-space-size'))).toBe(false);
      // The other one is still added.
      expect(cmdline(chosen.proc.pid)).toContain('--initial-old-space-size=64');
    } finally {
      await Promise.all([plain.proc.stop(), chosen.proc.stop()]);
    }
  });

  it('stops at once with one clear line on a bad flag or environment value', async () => {
    const bad = await run('node', [ROUTER_BIN, '--listen', 'nope']).catch((e: { code: number; stderr: string }) => e);
    expect((bad as { code: number }).code).toBe(2);
    expect((bad as { stderr: string }).stderr.trim()).toBe('paas-router: --listen: "nope" is not host:port');
    const badEnv = await run('node', [ROUTER_BIN], { env: { ...process.env, ROUTER_MAX_ATTEMPTS: 'many' } }).catch((e: { code: number; stderr: string }) => e);
    expect((badEnv as { code: number }).code).toBe(2);
    expect((badEnv as { stderr: string }).stderr).toMatch(/ROUTER_MAX_ATTEMPTS: "many" must be an integer/);
  });

  it('gives up with a clear message when etcd cannot be reached within the start timeout', async () => {
    const res = await run('node', [ROUTER_BIN, '--etcd', 'http://127.0.0.1:1', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--start-timeout', '1500ms', '--log-level', 'silent']).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect((res as { code: number }).code).toBe(1);
    expect((res as { stderr: string }).stderr).toMatch(/127\.0\.0\.1:1/);
  });

  it('on SIGTERM turns /readyz 503, finishes the request in flight, revokes its lease and exits 0', async () => {
    const prefix = uniquePrefix('term');
        try {
      const app = await startSampleApp({ app: 'term', name: 't1', release: 'v1' });
      await putJson(`${prefix}/apps/term`, { routes: [{ host: 'term.example.com' }] });
      await putJson(`${prefix}/instances/term/t1`, { url: app.url, state: 'ready' });
      const router = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'term-1', extraArgs: ['--drain-wait', '300ms'] });
      await waitFor(async () => (await etcdctl(endpoints, ['get', `${prefix}/routers/term-1`, '--print-value-only'])) !== '', { timeoutMs: 5000, message: 'status record written' });
      const slow = request(`${router.url}/slow?ms=1200`, { headers: { host: 'term.example.com' } });
      await waitFor(async () => (await status(router)).inflight['term/t1'] === 1, { timeoutMs: 5000, message: 'request in flight' });
      router.proc.kill('SIGTERM');
      await waitFor(async () => (await request(`${router.adminUrl}/readyz`)).statusCode === 503, { timeoutMs: 2000, message: 'readyz 503' });
      const res = await slow;
      expect(res.statusCode).toBe(200);
      await res.body.dump();
      expect((await router.proc.exited).code).toBe(0);
      expect(await etcdctl(endpoints, ['get', `${prefix}/routers/term-1`, '--print-value-only'])).toBe('');
    } finally {
        }
  });
});
