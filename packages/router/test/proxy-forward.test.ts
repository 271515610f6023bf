/**
 * The traffic listener in-process (no etcd): the lean forwarding path against real node:http
 * instances. Covers what the e2e tests do not: streamed request bodies, large streamed answers,
 * client aborts, upstream timeouts, resets, shutdown, the access log and the metrics.
 */
import { createHash } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RouterMetrics } from '../src/admin/metrics.js';
import { createProxyServer, type ProxyServer } from '../src/listeners/traffic.js';
import type { Backend } from '../src/table/backend.js';
import { RoutingTable } from '../src/table/routing-table.js';
import { waitFor } from '../../../test/harness/wait.js';
import { backendByKey } from './support/table-lookup.js';

/** Each suite runs once per client HTTP/1.1 server (--client-parser). */
const CLIENT_PARSERS = ['native', 'node'] as const;
let clientParser: (typeof CLIENT_PARSERS)[number] = 'native';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

interface Instance {
  server: Server;
  url: string;
  requests: number;
  closedEarly: number;
}

const instances: Instance[] = [];

async function startInstance(handler: Handler): Promise<Instance> {
  const inst: Instance = { server: undefined as unknown as Server, url: '', requests: 0, closedEarly: 0 };
  inst.server = createServer((req, res) => {
    inst.requests++;
    res.on('close', () => {
      if (!res.writableFinished) inst.closedEarly++;
    });
    handler(req, res);
  });
  await new Promise<void>((r) => inst.server.listen(0, '127.0.0.1', r));
  inst.url = `http://127.0.0.1:${(inst.server.address() as AddressInfo).port}`;
  instances.push(inst);
  return inst;
}

/** A port nothing listens on. */
async function deadUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return `http://127.0.0.1:${port}`;
}

const echo: Handler = (req, res) => {
  const hash = createHash('sha256');
  let bytes = 0;
  req.on('data', (c: Buffer) => {
    bytes += c.length;
    hash.update(c);
  });
  req.on('end', () => {
    const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bytes, sha256: hash.digest('hex') });
    res.writeHead(200, { 'content-type': 'application/json', connection: 'keep-alive, x-secret', 'x-secret': 'hop', 'keep-alive': 'timeout=60' });
    res.end(body);
  });
};

interface Logged {
  obj: Record<string, unknown>;
  msg: string;
}

function setup(table: RoutingTable, overrides: Partial<Parameters<typeof createProxyServer>[0]> = {}) {
  const logged: Logged[] = [];
  const drained: Backend[] = [];
  const metrics = new RouterMetrics({ perApp: true });
  const proxy = createProxyServer({
    getTable: () => table,
    metrics,
    log: { info: (obj, msg) => logged.push({ obj: obj as Record<string, unknown>, msg }), warn: (obj, msg) => logged.push({ obj: obj as Record<string, unknown>, msg }) },
    connectTimeoutMs: 1000,
    upstreamTimeoutMs: 5000,
    keepAliveTimeoutMs: 4000,
    clientKeepAliveTimeoutMs: 10_000,
    requestHeaderTimeoutMs: 10_000,
    retryAfterSeconds: 7,
    maxAttempts: 3,
    accessLog: true,
    onDrained: (b) => drained.push(b),
    clientParser,
    ...overrides,
  });
  return { proxy, logged, drained, metrics };
}

async function listen(proxy: ProxyServer): Promise<string> {
  await proxy.server.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(proxy.server.server.address() as AddressInfo).port}`;
}

interface Answer {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

/** A raw node:http client, so hop-by-hop headers and chunked bodies go out as written. */
function send(base: string, opts: { method?: string; path?: string; headers?: Record<string, string>; body?: Buffer[] | string; agent?: false }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${base}${opts.path ?? '/'}`, { method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (Array.isArray(opts.body)) {
      let i = 0;
      const next = () => {
        if (i === opts.body!.length) return req.end();
        req.write(opts.body![i++]);
        setTimeout(next, 5);
      };
      next();
    } else {
      req.end(opts.body);
    }
  });
}

afterAll(async () => {
  for (const i of instances) {
    i.server.closeAllConnections();
    await new Promise((r) => i.server.close(r));
  }
});

for (const parser of CLIENT_PARSERS) {
  describe(`--client-parser ${parser}`, () => {
    beforeAll(() => {
      clientParser = parser;
    });

    describe('lean forwarding path', () => {
      let table: RoutingTable;
      let ctx: ReturnType<typeof setup>;
      let base: string;
      let a: Instance;

      beforeAll(async () => {
        a = await startInstance((req, res) => {
          const url = req.url ?? '/';
          if (url.startsWith('/slow')) {
            const timer = setTimeout(() => res.end('late'), 2000);
            res.on('close', () => clearTimeout(timer));
            return;
          }
          if (url.startsWith('/big')) {
            // 8 MiB in 64 KiB chunks, honouring backpressure, so the router must too.
            const chunk = Buffer.alloc(64 * 1024, 'x');
            let left = 128;
            res.writeHead(200, { 'content-type': 'application/octet-stream' });
            const pump = () => {
              while (left > 0) {
                left--;
                if (!res.write(chunk)) return void res.once('drain', pump);
              }
              res.end();
            };
            pump();
            return;
          }
          if (url.startsWith('/chunked')) {
            // No Content-Length: the instance sends chunks, the router passes a chunked answer on.
            res.writeHead(200, { 'content-type': 'text/plain' });
            res.write('one,');
            setTimeout(() => res.end('two'), 20);
            return;
          }
          if (url.startsWith('/cut')) {
            // The instance dies in the middle of its answer.
            res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000' });
            res.write('partial');
            setTimeout(() => res.socket?.destroy(), 20);
            return;
          }
          if (url.startsWith('/empty')) {
            res.writeHead(204);
            res.end();
            return;
          }
          if (url.startsWith('/stream')) {
            // A chunk, then nothing: the client goes away in the middle.
            res.writeHead(200, { 'content-type': 'text/plain' });
            res.write('first chunk\n');
            return;
          }
          echo(req, res);
        });
        table = new RoutingTable();
        table.setApp('web', { routes: [{ host: 'web.example' }] }, 1n);
        table.setInstance('web', 'a', { url: a.url, state: 'ready' });
        table.setApp('maint', { routes: [{ host: 'maint.example' }] }, 2n);
        table.setOverride('maint.example', { maintenance: { status: 418, message: 'Back at 14:00' } });
        table.setApp('empty', { routes: [{ host: 'empty.example' }] }, 3n);
        ctx = setup(table, { upstreamTimeoutMs: 300 });
        base = await listen(ctx.proxy);
      });
      afterAll(async () => {
        await ctx.proxy.close();
        await ctx.proxy.upstream.close();
      });
      afterEach(() => {
        ctx.logged.length = 0;
      });

      it('answers 404, 503 with Retry-After, and maintenance with the exact bodies', async () => {
        const nf = await send(base, { headers: { host: 'nothing.example' } });
        expect([nf.status, nf.body.toString(), nf.headers['content-type']]).toEqual([404, 'Not Found', 'text/plain; charset=utf-8']);
        const un = await send(base, { headers: { host: 'empty.example' } });
        expect([un.status, un.body.toString(), un.headers['retry-after']]).toEqual([503, 'Service Unavailable', '7']);
        const m = await send(base, { headers: { host: 'maint.example' } });
        expect([m.status, m.body.toString()]).toEqual([418, 'Back at 14:00']);
      });

      it('forwards X-Forwarded-*, a sane X-Request-Id and the client Host, drops hop-by-hop both ways, keeps the query', async () => {
        const res = await send(base, {
          path: '/p?a=1&b=%20x',
          headers: { host: 'Web.Example:8080', 'x-request-id': 'abc-123', 'x-forwarded-for': '10.1.1.1', connection: 'keep-alive, x-private', 'x-private': 'p', te: 'trailers', 'x-kept': 'yes' },
        });
        expect(res.status).toBe(200);
        const seen = JSON.parse(res.body.toString()) as { url: string; headers: Record<string, string> };
        expect(seen.url).toBe('/p?a=1&b=%20x');
        expect(seen.headers.host).toBe('Web.Example:8080');
        expect(seen.headers['x-forwarded-host']).toBe('Web.Example:8080');
        expect(seen.headers['x-forwarded-proto']).toBe('http');
        expect(seen.headers['x-forwarded-for']).toBe('10.1.1.1, 127.0.0.1');
        expect(seen.headers['x-request-id']).toBe('abc-123');
        expect(seen.headers['x-kept']).toBe('yes');
        expect(seen.headers['x-private']).toBeUndefined();
        expect(seen.headers.te).toBeUndefined();
        expect(res.headers['x-request-id']).toBe('abc-123');
        expect(res.headers['x-secret']).toBeUndefined();
        expect(res.headers['keep-alive']).not.toBe('timeout=60');

        const insane = await send(base, { headers: { host: 'web.example', 'x-request-id': 'has space' } });
        const id = (JSON.parse(insane.body.toString()) as { headers: Record<string, string> }).headers['x-request-id'];
        expect(id).toMatch(/^[0-9a-f-]{36}$/);
        expect(insane.headers['x-request-id']).toBe(id);
      });

      it('streams a chunked POST body to the instance intact', async () => {
        const parts = Array.from({ length: 20 }, (_, i) => Buffer.alloc(10_000 + i, String.fromCharCode(97 + i)));
        const whole = Buffer.concat(parts);
        const res = await send(base, { method: 'POST', path: '/upload', headers: { host: 'web.example', 'transfer-encoding': 'chunked' }, body: parts });
        const seen = JSON.parse(res.body.toString()) as { method: string; bytes: number; sha256: string; headers: Record<string, string> };
        expect(seen.method).toBe('POST');
        expect(seen.bytes).toBe(whole.length);
        expect(seen.sha256).toBe(createHash('sha256').update(whole).digest('hex'));
        expect(seen.headers['transfer-encoding']).toBe('chunked');
      });

      it('forwards a POST with Content-Length and a WebDAV method', async () => {
        const res = await send(base, { method: 'PUT', headers: { host: 'web.example', 'content-length': '5' }, body: 'hello' });
        expect((JSON.parse(res.body.toString()) as { bytes: number }).bytes).toBe(5);
        const dav = await send(base, { method: 'PROPFIND', headers: { host: 'web.example' } });
        expect((JSON.parse(dav.body.toString()) as { method: string }).method).toBe('PROPFIND');
      });

      it('passes a chunked answer, a 204 and a HEAD answer through', async () => {
        const chunked = await send(base, { path: '/chunked', headers: { host: 'web.example' } });
        expect([chunked.status, chunked.body.toString(), chunked.headers['transfer-encoding']]).toEqual([200, 'one,two', 'chunked']);
        const empty = await send(base, { path: '/empty', headers: { host: 'web.example' } });
        expect([empty.status, empty.body.length]).toEqual([204, 0]);
        const head = await send(base, { method: 'HEAD', path: '/x', headers: { host: 'web.example' } });
        expect(head.status).toBe(200);
        expect(head.body.length).toBe(0);
        expect(head.headers['content-type']).toBe('application/json');
      });

      it('forwards a POST sent with Expect: 100-continue, and one from a client that closes its connection', async () => {
        const res = await send(base, { method: 'POST', path: '/c', headers: { host: 'web.example', expect: '100-continue', 'content-length': '4' }, body: 'ping' });
        const seen = JSON.parse(res.body.toString()) as { bytes: number; headers: Record<string, string> };
        expect(res.status).toBe(200);
        expect(seen.bytes).toBe(4);
        expect(seen.headers.expect).toBeUndefined();
        const closing = await send(base, { path: '/c', headers: { host: 'web.example', connection: 'close' } });
        expect(closing.status).toBe(200);
        expect(closing.headers.connection).toBe('close');
        expect((JSON.parse(closing.body.toString()) as { headers: Record<string, string> }).headers.connection).not.toBe('close');
      });

      it('cuts the client off when the instance dies mid-answer, and frees the request', async () => {
        const backend = backendByKey(table, 'web/a')!;
        const err = await send(base, { path: '/cut', headers: { host: 'web.example' } }).then(
          () => undefined,
          (e: Error) => e,
        );
        expect(err).toBeInstanceOf(Error);
        await waitFor(() => backend.inflight === 0);
      });

      it('streams a large answer with backpressure', async () => {
        const res = await send(base, { path: '/big', headers: { host: 'web.example' } });
        expect(res.status).toBe(200);
        expect(res.body.length).toBe(8 * 1024 * 1024);
      });

      it('answers 504 when the instance is slower than --upstream-timeout, and frees the request', async () => {
        const res = await send(base, { path: '/slow', headers: { host: 'web.example' } });
        expect([res.status, res.body.toString()]).toEqual([504, 'Gateway Timeout']);
        const backend = backendByKey(table, 'web/a')!;
        await waitFor(() => backend.inflight === 0);
        expect(ctx.logged.some((l) => l.msg === 'upstream failed' && l.obj.reason === 'UND_ERR_HEADERS_TIMEOUT')).toBe(true);
      });

      it('frees the in-flight count and the upstream request when the client goes away mid-answer', async () => {
        const backend = backendByKey(table, 'web/a')!;
        const closedBefore = a.closedEarly;
        await new Promise<void>((resolve, reject) => {
          const req = httpRequest(`${base}/stream`, { headers: { host: 'web.example' }, agent: false }, (res) => {
            res.once('data', () => {
              expect(backend.inflight).toBe(1);
              req.destroy();
              resolve();
            });
          });
          req.on('error', () => undefined);
          req.on('close', () => undefined);
          req.end();
          setTimeout(() => reject(new Error('no first chunk')), 2000);
        });
        await waitFor(() => backend.inflight === 0);
        await waitFor(() => a.closedEarly === closedBefore + 1);
      });

      it('writes one access log line per request with its reqId, and counts requests by app and status', async () => {
        await send(base, { path: '/logged', headers: { host: 'web.example', 'x-request-id': 'log-me-1' } });
        await waitFor(() => ctx.logged.some((l) => l.msg === 'request' && l.obj.reqId === 'log-me-1'));
        const line = ctx.logged.find((l) => l.obj.reqId === 'log-me-1')!;
        expect(line.obj).toMatchObject({ method: 'GET', host: 'web.example', url: '/logged', status: 200, app: 'web', instance: 'a', attempts: 1 });
        const text = await ctx.metrics.registry.metrics();
        expect(text).toMatch(/router_requests_total\{app="web",status="200"\} [1-9]/);
        expect(text).toMatch(/router_requests_total\{app="",status="404"\} [1-9]/);
        expect(text).toMatch(/router_upstream_duration_seconds_count\{app="web"\} [1-9]/);
      });
    });

    describe('failover', () => {
      it('moves a request off a refusing instance, and answers 502 when every instance refuses', async () => {
        const good = await startInstance(echo);
        const table = new RoutingTable();
        table.setApp('web', { routes: [{ host: 'web.example' }] }, 1n);
        table.setInstance('web', 'a-dead', { url: await deadUrl(), state: 'ready' });
        table.setInstance('web', 'b-good', { url: good.url, state: 'ready' });
        const ctx = setup(table);
        const base = await listen(ctx.proxy);
        try {
          for (let i = 0; i < 4; i++) {
            const res = await send(base, { method: 'POST', headers: { host: 'web.example', 'content-length': '2' }, body: 'hi' });
            expect(res.status).toBe(200);
            expect((JSON.parse(res.body.toString()) as { bytes: number }).bytes).toBe(2);
          }
          expect(backendByKey(table, 'web/a-dead')!.ejectedUntil).toBeGreaterThan(Date.now());
          expect(backendByKey(table, 'web/a-dead')!.inflight).toBe(0);
          table.setInstance('web', 'b-good', { url: await deadUrl(), state: 'ready' });
          const res = await send(base, { headers: { host: 'web.example' } });
          expect([res.status, res.body.toString()]).toEqual([502, 'Bad Gateway']);
          expect(await ctx.metrics.registry.metrics()).toMatch(/router_upstream_failures_total\{reason="ECONNREFUSED"\} [1-9]/);
        } finally {
          await ctx.proxy.close();
          await ctx.proxy.upstream.close();
        }
      });

      it('retries an idempotent body-less request on a reset, not a POST with a body', async () => {
        const resetting = await startInstance((req) => req.socket.destroy());
        const good = await startInstance(echo);
        const table = new RoutingTable();
        table.setApp('web', { routes: [{ host: 'web.example' }] }, 1n);
        table.setInstance('web', 'a-reset', { url: resetting.url, state: 'ready' });
        table.setInstance('web', 'b-good', { url: good.url, state: 'ready' });
        const ctx = setup(table, { maxAttempts: 2 });
        const base = await listen(ctx.proxy);
        try {
          // Round-robin starts at a-reset: the GET is retried on b-good.
          const get = await send(base, { headers: { host: 'web.example' } });
          expect(get.status).toBe(200);
          expect(resetting.requests).toBe(1);
          // Once a-reset's ejection ran out, a POST with a body that it resets is answered 502.
          const backend = backendByKey(table, 'web/a-reset')!;
          backend.ejectedUntil = 0;
          table.setInstance('web', 'b-good', { url: good.url, state: 'starting' });
          const post = await send(base, { method: 'POST', headers: { host: 'web.example', 'content-length': '2' }, body: 'hi' });
          expect(post.status).toBe(502);
          await waitFor(() => backend.inflight === 0);
        } finally {
          await ctx.proxy.close();
          await ctx.proxy.upstream.close();
        }
      });
    });

    describe('draining and shutdown', () => {
      it('calls onDrained when the last request to a draining instance ends, and closes connections while shutting down', async () => {
        let release: (() => void) | undefined;
        const slow = await startInstance((req, res) => {
          req.resume();
          release = () => res.end('done');
        });
        const table = new RoutingTable();
        table.setApp('web', { routes: [{ host: 'web.example' }] }, 1n);
        table.setInstance('web', 'a', { url: slow.url, state: 'ready' });
        const ctx = setup(table);
        const base = await listen(ctx.proxy);
        const pending = send(base, { headers: { host: 'web.example' } });
        await waitFor(() => release !== undefined);
        table.setInstance('web', 'a', { url: slow.url, state: 'draining' });
        expect(ctx.drained).toHaveLength(0);
        const closing = ctx.proxy.close();
        release!();
        const res = await pending;
        expect(res.body.toString()).toBe('done');
        expect(res.headers.connection).toBe('close');
        await closing;
        expect(ctx.drained.map((b) => b.key)).toEqual(['web/a']);
        await ctx.proxy.upstream.close();
      });
    });
  });
}
