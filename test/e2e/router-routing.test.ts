/**
 * The router as a real child process against a real etcd, with real sample-app processes:
 * the routing cases of the contract, operator edits with etcdctl, and the proxy's headers.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import http from 'node:http';
import { request } from 'undici';
import { connectEtcd, type Etcd } from '@paas/registry';
import { CLIENT_PARSERS, processes, startRouter, startSampleApp, type RouterProcess, type SampleApp } from '../harness/processes.js';
import { runEtcdctl as etcdctl, uniquePrefix } from '../harness/etcd.js';
import { waitFor } from '../harness/wait.js';

const endpoints = inject('etcdEndpoints');
const prefix = uniquePrefix('routing');
let etcd: Etcd;
let router: RouterProcess;
const apps: Record<string, SampleApp> = {};

async function get(path: string, host: string, headers: Record<string, string> = {}) {
  const res = await request(`${router.url}${path}`, { headers: { host, ...headers } });
  const text = await res.body.text();
  return { status: res.statusCode, text, headers: res.headers, json: () => JSON.parse(text) as Record<string, unknown> };
}

let lastWrite = 0n;

/** etcdctl put, as an operator would; remembers the write's revision for settled(). */
async function putJson(key: string, value: unknown): Promise<void> {
  await putRaw(key, JSON.stringify(value));
}

async function putRaw(key: string, value: string): Promise<void> {
  const out = JSON.parse(await etcdctl(endpoints, ['put', key, value, '-w', 'json'])) as { header: { revision: number } };
  lastWrite = BigInt(out.header.revision);
}

async function del(key: string): Promise<void> {
  const out = JSON.parse(await etcdctl(endpoints, ['del', key, '-w', 'json'])) as { header: { revision: number } };
  lastWrite = BigInt(out.header.revision);
}

async function appliedRevision(): Promise<bigint> {
  const res = await request(`${router.adminUrl}/status`);
  const s = (await res.body.json()) as { revision: string };
  return BigInt(s.revision);
}

/**
 * Waits until the router has applied this file's last write. (Not etcd's current revision: the
 * router's own status writes move that, and routers never watch routers/.)
 */
async function settled(): Promise<void> {
  const rev = lastWrite;
  await waitFor(async () => (await appliedRevision()) >= rev, { timeoutMs: 10_000, message: `router to apply revision ${rev}` });
}

beforeAll(async () => {
  etcd = connectEtcd({ endpoints });
  for (const [name, app, release] of [
    ['mango-1', 'mango', 'v1'],
    ['apple-1', 'apple', 'v1'],
    ['files-1', 'files', 'v1'],
    ['api-1', 'api', 'v1'],
    ['api-2', 'api', 'v1'],
  ] as const) {
    apps[name] = await startSampleApp({ app, name, release });
  }
  await putJson(`${prefix}/apps/mango`, { routes: [{ host: 'www.mango.com' }, { path: '/mango' }] });
  await putJson(`${prefix}/apps/apple`, { routes: [{ host: 'www.apple.com' }, { path: '/apple' }] });
  await putJson(`${prefix}/instances/mango/mango-1`, { url: apps['mango-1']!.url, state: 'ready', release: 'v1' });
  await putJson(`${prefix}/instances/apple/apple-1`, { url: apps['apple-1']!.url, state: 'ready', release: 'v1' });
  await putJson(`${prefix}/apps/files`, { routes: [{ host: 'cloud.example.com', path: '/files' }] });
  await putJson(`${prefix}/apps/api`, { routes: [{ host: 'cloud.example.com' }] });
  await putJson(`${prefix}/instances/files/files-1`, { url: apps['files-1']!.url, state: 'ready' });
  await putJson(`${prefix}/instances/api/api-1`, { url: apps['api-1']!.url, state: 'ready' });
  await putJson(`${prefix}/instances/api/api-2`, { url: apps['api-2']!.url, state: 'ready' });
});

afterAll(async () => {
  await etcd?.close();
});

for (const parser of CLIENT_PARSERS) {
  describe(`--client-parser ${parser}`, () => {
    beforeAll(async () => {
      router = await startRouter({ etcdEndpoints: endpoints, prefix, id: `routing-${parser}`, extraArgs: ['--client-parser', parser] });
      const status = (await (await request(`${router.adminUrl}/status`)).body.json()) as { clientParser: string; modules: string };
      expect(status.clientParser).toBe(parser);
      // `make build` bundles the start; a router from a checkout built with `tsc -b` alone runs dist/.
      expect(status.modules, 'the router started from dist/: run `pnpm build` (tsc -b, then the bundle)').toBe('bundle');
    });

    afterAll(async () => {
      await router?.proc.stop();
    });

    describe('routing by host and path (testdriven cases)', () => {
      it.each([
        ['www.mango.com', '/', 200, 'mango'],
        ['www.apple.com', '/', 200, 'apple'],
        ['www.notmango.com', '/', 404, undefined],
        ['anything.example', '/mango', 200, 'mango'],
        ['anything.example', '/apple/x', 200, 'apple'],
        ['anything.example', '/notmango', 404, undefined],
        ['anything.example', '/mangox', 404, undefined],
      ])('%s%s → %i %s', async (host, path, status, app) => {
        const res = await get(path, host);
        expect(res.status).toBe(status);
        if (app) expect(res.json().app).toBe(app);
        else expect(res.text).toBe('Not Found');
      });

      it('sends /files to object storage and everything else round-robin over two api instances', async () => {
        expect((await get('/files/a.txt', 'cloud.example.com')).json().app).toBe('files');
        const seen = new Map<string, number>();
        for (let i = 0; i < 10; i++) {
          const res = await get(`/users/${i}`, 'cloud.example.com');
          expect(res.status).toBe(200);
          const instance = String(res.json().instance);
          seen.set(instance, (seen.get(instance) ?? 0) + 1);
        }
        expect(seen).toEqual(new Map([['api-1', 5], ['api-2', 5]]));
      });

      it('answers 503 with Retry-After when no api instance is ready, and serves again once one is', async () => {
        await putJson(`${prefix}/instances/api/api-1`, { url: apps['api-1']!.url, state: 'starting' });
        await putJson(`${prefix}/instances/api/api-2`, { url: apps['api-2']!.url, state: 'draining' });
        await settled();
        const res = await get('/users/1', 'cloud.example.com');
        expect(res.status).toBe(503);
        expect(res.text).toBe('Service Unavailable');
        expect(res.headers['retry-after']).toBeDefined();
        expect((await get('/files/x', 'cloud.example.com')).status).toBe(200);
        await putJson(`${prefix}/instances/api/api-1`, { url: apps['api-1']!.url, state: 'ready' });
        await putJson(`${prefix}/instances/api/api-2`, { url: apps['api-2']!.url, state: 'ready' });
        await settled();
        expect((await get('/users/1', 'cloud.example.com')).status).toBe(200);
      });
    });

    describe('what the instance sees', () => {
      it('gets X-Forwarded-For/Proto/Host and X-Request-Id, the client Host, and no hop-by-hop headers', async () => {
        // node:http, because undici refuses to send hop-by-hop headers at all.
        const res = await new Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }>((resolve, reject) => {
          const req = http.request(`${router.url}/echo`, {
            headers: { host: 'www.mango.com', 'x-request-id': 'abc-123', connection: 'keep-alive, x-private', 'keep-alive': 'timeout=5', 'x-private': 'secret', te: 'trailers', 'x-forwarded-for': '203.0.113.9' },
          }, (r) => {
            let body = '';
            r.setEncoding('utf8');
            r.on('data', (c: string) => (body += c));
            r.on('end', () => resolve({ status: r.statusCode!, body, headers: r.headers }));
          });
          req.on('error', reject);
          req.end();
        });
        expect(res.status).toBe(200);
        const headers = (JSON.parse(res.body) as { headers: Record<string, string> }).headers;
        expect(headers['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1');
        expect(headers['x-forwarded-proto']).toBe('http');
        expect(headers['x-forwarded-host']).toBe('www.mango.com');
        expect(headers['x-request-id']).toBe('abc-123');
        expect(headers.host).toBe('www.mango.com');
        expect(headers['keep-alive']).toBeUndefined();
        expect(headers['x-private']).toBeUndefined();
        expect(headers.te).toBeUndefined();
        expect(res.headers['x-request-id']).toBe('abc-123');
      });

      it('replaces an insane X-Request-Id with its own', async () => {
        const res = await get('/echo', 'www.mango.com', { 'x-request-id': 'bad id with spaces' });
        const id = (res.json().headers as Record<string, string>)['x-request-id'];
        expect(id).toMatch(/^[0-9a-f-]{36}$/);
      });
    });

    describe('operator edits with etcdctl', () => {
      it('serves a new app after put, and 404 after del', async () => {
        await putJson(`${prefix}/apps/kiwi`, { routes: [{ host: 'kiwi.example.com' }] });
        await putJson(`${prefix}/instances/kiwi/k1`, { url: apps['apple-1']!.url, state: 'ready' });
        await waitFor(async () => (await get('/', 'kiwi.example.com')).status === 200, { timeoutMs: 5000, message: 'kiwi served' });
        await etcdctl(endpoints, ['del', `${prefix}/apps/kiwi`]);
        await waitFor(async () => (await get('/', 'kiwi.example.com')).status === 404, { timeoutMs: 5000, message: 'kiwi gone' });
        await etcdctl(endpoints, ['del', `${prefix}/instances/kiwi/k1`]);
      });

      it('answers a maintenance override with its status and message, and stops when it is deleted', async () => {
        await putJson(`${prefix}/overrides/www.apple.com`, { maintenance: { status: 503, message: 'Back at 14:00' } });
        await waitFor(async () => (await get('/', 'www.apple.com')).text === 'Back at 14:00', { timeoutMs: 5000, message: 'maintenance page' });
        expect((await get('/', 'www.apple.com')).status).toBe(503);
        await etcdctl(endpoints, ['del', `${prefix}/overrides/www.apple.com`]);
        await waitFor(async () => (await get('/', 'www.apple.com')).status === 200, { timeoutMs: 5000, message: 'maintenance over' });
      });

      it('sends a host to another app with an app override', async () => {
        await putJson(`${prefix}/overrides/www.apple.com`, { app: 'mango' });
        await waitFor(async () => (await get('/', 'www.apple.com')).json().app === 'mango', { timeoutMs: 5000, message: 'override to mango' });
        await etcdctl(endpoints, ['del', `${prefix}/overrides/www.apple.com`]);
        await waitFor(async () => (await get('/', 'www.apple.com')).json().app === 'apple', { timeoutMs: 5000, message: 'back to apple' });
      });

      it('rejects a bad value loudly, keeps the last good one, and keeps serving the rest', async () => {
        const key = `${prefix}/instances/mango/mango-1`;
        await putRaw(key, '{"url": "ftp://nope", "state": "ready"}');
        await putRaw(`${prefix}/apps/broken`, 'not json');
        await settled();
        const status = (await (await request(`${router.adminUrl}/status`)).body.json()) as { rejected: Array<{ key: string; error: string }> };
        const keys = status.rejected.map((r) => r.key).sort();
        expect(keys).toEqual([`${prefix}/apps/broken`, key]);
        expect(status.rejected.find((r) => r.key === key)!.error).toMatch(/scheme must be http or https/);
        expect((await get('/', 'www.mango.com')).json().instance).toBe('mango-1');
        expect((await get('/', 'www.apple.com')).status).toBe(200);
        const rev = lastWrite;
        const record = await waitFor(async () => {
          const r = JSON.parse(await etcdctl(endpoints, ['get', `${prefix}/routers/routing-${parser}`, '--print-value-only'])) as { revision: string; rejected: Array<{ key: string }> };
          return BigInt(r.revision) >= rev ? r : undefined;
        }, { timeoutMs: 5000, message: 'status record at the rejected revision' });
        expect(record.rejected.map((r) => r.key).sort()).toEqual(keys);
        await putJson(key, { url: apps['mango-1']!.url, state: 'ready', release: 'v1' });
        await del(`${prefix}/apps/broken`);
        await settled();
        const after = (await (await request(`${router.adminUrl}/status`)).body.json()) as { rejected: unknown[] };
        expect(after.rejected).toEqual([]);
      });
    });

    describe('router status record', () => {
      it('reports the applied revision, digest, routes and in-flight counts in etcd', async () => {
        await putJson(`${prefix}/apps/status-probe`, { routes: [{ host: 'probe.example.com' }] });
        const rev = lastWrite;
        const entry = await waitFor(async () => {
          const e = await etcd.get(`${prefix}/routers/routing-${parser}`);
          return e && BigInt((JSON.parse(e.value.toString()) as { revision: string }).revision) >= rev ? e : undefined;
        }, { timeoutMs: 5000, message: 'status record to catch up' });
        const rec = JSON.parse(entry.value.toString()) as { revision: string; digest: string; routes: number; inflight: object };
        const fromAdmin = (await (await request(`${router.adminUrl}/status`)).body.json()) as { digest: string };
        expect(rec.digest).toBe(fromAdmin.digest);
        expect(rec.digest).toMatch(/^[0-9a-f]{16}$/);
        expect(rec.routes).toBeGreaterThanOrEqual(6);
        expect(entry.lease).not.toBe('0');
      });
    });
  });
}
