/**
 * Client HTTP/1.1 connections on raw sockets, against a real router process run once with each
 * --client-parser (the native server and Node's): pipelined requests answered in order, request
 * bodies chunked and with Expect: 100-continue, a head split over many writes, heads refused as
 * too large (431) and too slow (408), keep-alive and its idle end, reading on after a body that
 * filled the router's buffer, HTTP/1.0, a client that leaves freeing the request at the
 * instance, new connections served cleanly after clients that left mid-request, random
 * conversations (fast-check, fixed seed) mixing all of that with instances slow to read or
 * closing their connections, and random clients (and WebSockets) leaving at any point with
 * nothing left behind. Both parsers must answer alike.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import { request } from 'undici';
import WebSocket from 'ws';
import { CLIENT_PARSERS, startRouter, startSampleApp, type RouterProcess, type SampleApp } from '../harness/processes.js';
import { runEtcdctl as etcdctl, uniquePrefix } from '../harness/etcd.js';
import { heldAt, metricValue } from '../harness/probes.js';
import { bodySize } from '../harness/random-requests.js';
import { waitFor } from '../harness/wait.js';

const endpoints = inject('etcdEndpoints');
const prefix = uniquePrefix('client-conns');
const HOST = 'conns.example.com';
const HEADER_TIMEOUT_MS = 1000;
const KEEPALIVE_MS = 2000;
let app: SampleApp;
/** An instance per --client-parser that only the body test asks, so its first request opens the router's connection to it. */
const bodyApps: SampleApp[] = [];
const bodyHost = (parser: string) => `body-${parser}.example.com`;

interface Answer {
  status: number;
  head: string;
  headers: Record<string, string>;
  body: string;
}

/** One complete answer at the start of `data` (content-length, chunked, or none for 1xx/close-delimited at end), and the rest. */
function takeAnswer(data: string, closed: boolean): { answer: Answer; rest: string } | undefined {
  const headEnd = data.indexOf('\r\n\r\n');
  if (headEnd < 0) return undefined;
  const head = data.slice(0, headEnd);
  const [statusLine, ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
  const status = Number(statusLine!.split(' ')[1]);
  let at = headEnd + 4;
  if (status < 200) return { answer: { status, head, headers, body: '' }, rest: data.slice(at) };
  if (headers['content-length'] !== undefined) {
    const end = at + Number(headers['content-length']);
    if (data.length < end) return undefined;
    return { answer: { status, head, headers, body: data.slice(at, end) }, rest: data.slice(end) };
  }
  if (headers['transfer-encoding'] === 'chunked') {
    let body = '';
    for (;;) {
      const lineEnd = data.indexOf('\r\n', at);
      if (lineEnd < 0) return undefined;
      const size = parseInt(data.slice(at, lineEnd), 16);
      if (data.length < lineEnd + 2 + size + 2) return undefined;
      body += data.slice(lineEnd + 2, lineEnd + 2 + size);
      at = lineEnd + 2 + size + 2;
      if (size === 0) return { answer: { status, head, headers, body }, rest: data.slice(at) };
    }
  }
  if (!closed) return undefined;
  return { answer: { status, head, headers, body: data.slice(at) }, rest: '' };
}

/** A client connection on a raw socket: writes bytes, reads answers as they complete. */
class RawClient {
  readonly socket: Socket;
  private data = '';
  closed = false;
  readonly connected: Promise<void>;

  constructor(port: number) {
    this.socket = connect(port, '127.0.0.1');
    this.socket.setNoDelay(true);
    this.socket.setEncoding('latin1');
    this.socket.on('data', (c: string) => (this.data += c));
    this.socket.on('close', () => (this.closed = true));
    this.socket.on('error', () => {});
    this.connected = new Promise((resolve) => this.socket.once('connect', resolve));
  }

  write(bytes: string): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(bytes, 'latin1', (err) => (err ? reject(err) : resolve())));
  }

  /** The next `n` answers (interim ones included), waiting up to `timeoutMs`. */
  async answers(n: number, timeoutMs = 15_000): Promise<Answer[]> {
    const out: Answer[] = [];
    await waitFor(
      () => {
        for (let got = takeAnswer(this.data, this.closed); got !== undefined && out.length < n; got = takeAnswer(this.data, this.closed)) {
          out.push(got.answer);
          this.data = got.rest;
        }
        return out.length >= n;
      },
      { timeoutMs, intervalMs: 5, message: `${n} answers; got ${out.length}, pending ${JSON.stringify(this.data.slice(0, 200))}` },
    );
    return out;
  }

  /** Bytes received and not yet taken as answers. */
  get pending(): string {
    return this.data;
  }

  /** Resolves once the router closed the connection; the bytes left unread. */
  async end(timeoutMs = 15_000): Promise<string> {
    await waitFor(() => this.closed, { timeoutMs, intervalMs: 5, message: 'the router to close the connection' });
    return this.data;
  }
}

async function putJson(key: string, value: unknown): Promise<void> {
  await etcdctl(endpoints, ['put', key, JSON.stringify(value)]);
}

beforeAll(async () => {
  app = await startSampleApp({ app: 'conns', name: 'conns-1' });
  await putJson(`${prefix}/apps/conns`, { routes: [{ host: HOST }] });
  await putJson(`${prefix}/instances/conns/conns-1`, { url: app.url, state: 'ready' });
  for (const parser of CLIENT_PARSERS) {
    const bodyApp = await startSampleApp({ app: `body-${parser}`, name: `body-${parser}-1` });
    bodyApps.push(bodyApp);
    await putJson(`${prefix}/apps/body-${parser}`, { routes: [{ host: bodyHost(parser) }] });
    await putJson(`${prefix}/instances/body-${parser}/body-${parser}-1`, { url: bodyApp.url, state: 'ready' });
  }
});

afterAll(async () => {
  await app?.proc.stop();
  for (const bodyApp of bodyApps) await bodyApp.proc.stop();
});

for (const parser of CLIENT_PARSERS) {
  describe(`--client-parser ${parser}`, () => {
    let router: RouterProcess;

    beforeAll(async () => {
      router = await startRouter({
        etcdEndpoints: endpoints,
        prefix,
        id: `conns-${parser}`,
        extraArgs: ['--client-parser', parser, '--request-header-timeout', `${HEADER_TIMEOUT_MS}ms`, '--client-keepalive-timeout', `${KEEPALIVE_MS}ms`, '--shutdown-timeout', '5s'],
      });
      const status = (await (await request(`${router.adminUrl}/status`)).body.json()) as { clientParser: string };
      expect(status.clientParser).toBe(parser);
      await waitFor(async () => (await request(`${router.url}/`, { headers: { host: HOST } })).statusCode === 200, { timeoutMs: 10_000, message: 'the app routed' });
    });

    afterAll(async () => {
      await router?.proc.stop();
    });

    it('answers pipelined requests in order, the first one slowest, on one keep-alive connection', async () => {
      const c = new RawClient(router.port);
      await c.write(
        `GET /slow?ms=300 HTTP/1.1\r\nHost: ${HOST}\r\n\r\n` +
          `POST /count HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 5\r\n\r\nhello` +
          `GET /third HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`,
      );
      const [a, b, third] = await c.answers(3);
      expect(JSON.parse(a!.body)).toMatchObject({ path: '/slow', sleptMs: 300 });
      expect(JSON.parse(b!.body)).toMatchObject({ bytes: 5 });
      expect(JSON.parse(third!.body)).toMatchObject({ path: '/third' });
      for (const x of [a, b, third]) {
        expect(x!.status).toBe(200);
        expect(x!.headers.connection).toBe('keep-alive');
        expect(x!.headers['keep-alive']).toBe(`timeout=${KEEPALIVE_MS / 1000}`);
        expect(x!.headers.date).toMatch(/GMT$/);
      }
      expect(c.closed).toBe(false);
      c.socket.destroy();
    });

    it('forwards a chunked request body sent in pieces, whole', async () => {
      const c = new RawClient(router.port);
      await c.write(`POST /count HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\n\r\n`);
      const piece = 'x'.repeat(1000);
      for (let i = 0; i < 50; i++) await c.write(`${piece.length.toString(16)}\r\n${piece}\r\n`);
      await c.write('0\r\n\r\n');
      const [a] = await c.answers(1);
      expect(a!.status).toBe(200);
      expect(JSON.parse(a!.body)).toMatchObject({ bytes: 50_000 });
      c.socket.destroy();
    });

    it('answers Expect: 100-continue with 100 before the body is sent, then forwards the body', async () => {
      const c = new RawClient(router.port);
      await c.write(`POST /count HTTP/1.1\r\nHost: ${HOST}\r\nExpect: 100-continue\r\nContent-Length: 7\r\n\r\n`);
      const [interim] = await c.answers(1);
      expect(interim!.status).toBe(100);
      await c.write('goodbye');
      const [a] = await c.answers(1);
      expect(a!.status).toBe(200);
      expect(JSON.parse(a!.body)).toMatchObject({ bytes: 7 });
      // Any other expectation: 417, as Node's server answers it.
      await c.write(`GET / HTTP/1.1\r\nHost: ${HOST}\r\nExpect: something-else\r\n\r\n`);
      const [refused] = await c.answers(1);
      expect(refused!.status).toBe(417);
      c.socket.destroy();
    });

    it('reads a head split over many writes, one byte each', async () => {
      const c = new RawClient(router.port);
      await c.connected;
      const head = `GET /echo?split=1 HTTP/1.1\r\nHost: ${HOST}\r\nX-Split: ${'s'.repeat(40)}\r\n\r\n`;
      for (const ch of head) await c.write(ch);
      const [a] = await c.answers(1);
      expect(a!.status).toBe(200);
      const echo = JSON.parse(a!.body) as { url: string; headers: Record<string, string> };
      expect(echo.url).toBe('/echo?split=1');
      expect(echo.headers['x-split']).toBe('s'.repeat(40));
      c.socket.destroy();
    });

    it('reads the next request on a keep-alive connection after a body that filled its buffer', async () => {
      // The first request to an instance: the router opens a connection to it meanwhile, so a
      // body sent with its head fills the router's buffer for it (more than its 64 KiB) before
      // anything takes it, and the router stops reading the client; it must read on once the
      // answer is out.
      const c = new RawClient(router.port);
      const size = 100_000;
      await c.write(`POST /count HTTP/1.1\r\nHost: ${bodyHost(parser)}\r\nContent-Length: ${size}\r\n\r\n${'x'.repeat(size)}`);
      const [a] = await c.answers(1);
      expect(a!.status).toBe(200);
      expect(JSON.parse(a!.body)).toMatchObject({ bytes: size });
      await c.write(`GET /after-body HTTP/1.1\r\nHost: ${bodyHost(parser)}\r\n\r\n`);
      // Within half the keep-alive timeout: a connection that stopped reading never answers, and is closed at that timeout.
      const [b] = await c.answers(1, KEEPALIVE_MS / 2);
      expect(b!.status).toBe(200);
      expect(JSON.parse(b!.body)).toMatchObject({ path: '/after-body' });
      c.socket.destroy();
    });

    it('answers 431 and closes on a head larger than Node\'s limit', async () => {
      const c = new RawClient(router.port);
      await c.write(`GET / HTTP/1.1\r\nHost: ${HOST}\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`);
      const [a] = await c.answers(1);
      expect(a!.status).toBe(431);
      expect(a!.headers.connection).toBe('close');
      expect(a!.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
      await c.end();
    });

    it('answers 400 and closes on a head it cannot parse', async () => {
      const c = new RawClient(router.port);
      await c.write(`GET / HTTP/1.1\r\nHost: ${HOST}\r\nBad Header\r\n\r\n`);
      const [a] = await c.answers(1);
      expect(a!.status).toBe(400);
      expect(a!.headers.connection).toBe('close');
      await c.end();
    });

    it('answers 408 to a slowloris whose head is not complete within --request-header-timeout', async () => {
      const c = new RawClient(router.port);
      const started = performance.now();
      await c.write(`GET / HTTP/1.1\r\nHost: ${HOST}\r\n`);
      // One more header byte every 100 ms: each keeps the connection busy, none completes the head.
      const trickle = setInterval(() => void c.write('X').catch(() => {}), 100);
      try {
        const [a] = await c.answers(1);
        expect(a!.status).toBe(408);
        expect(a!.headers.connection).toBe('close');
        await c.end();
        expect(performance.now() - started).toBeGreaterThanOrEqual(HEADER_TIMEOUT_MS - 50);
      } finally {
        clearInterval(trickle);
      }
    });

    it('keeps an idle connection for the announced keep-alive timeout, then closes it', async () => {
      const c = new RawClient(router.port);
      await c.write(`GET /first HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
      const [a] = await c.answers(1);
      const answeredAt = performance.now();
      expect(a!.headers['keep-alive']).toBe(`timeout=${KEEPALIVE_MS / 1000}`);
      const left = await c.end(KEEPALIVE_MS + 10_000);
      expect(left).toBe('');
      expect(performance.now() - answeredAt).toBeGreaterThanOrEqual(KEEPALIVE_MS - 50);
    });

    it('closes after the answer to HTTP/1.0 and to Connection: close', async () => {
      for (const head of [`GET /old HTTP/1.0\r\nHost: ${HOST}\r\n\r\n`, `GET /bye HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`]) {
        const c = new RawClient(router.port);
        await c.write(head);
        const [a] = await c.answers(1);
        expect(a!.status).toBe(200);
        expect(a!.headers.connection).toBe('close');
        await c.end();
      }
    });

    it('answers a HEAD request without a body and keeps the connection', async () => {
      const c = new RawClient(router.port);
      await c.write(`HEAD /h HTTP/1.1\r\nHost: ${HOST}\r\n\r\nGET /after-head HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
      await waitFor(() => c.pending.includes('after-head'), { timeoutMs: 15_000, intervalMs: 5, message: 'both answers' });
      const first = c.pending;
      const heads = first.split('HTTP/1.1 200');
      expect(heads).toHaveLength(3);
      // The HEAD answer's Content-Length describes the GET's body, and no body follows it.
      expect(heads[1]!.endsWith('\r\n\r\n')).toBe(true);
      c.socket.destroy();
    });

    it('streams a large answer with backpressure, whole', async () => {
      const c = new RawClient(router.port);
      await c.write(`GET /bytes?n=${4 * 1024 * 1024} HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
      const [a] = await c.answers(1, 30_000);
      expect(a!.status).toBe(200);
      expect(a!.body.length).toBe(4 * 1024 * 1024);
      c.socket.destroy();
    });

    it('frees the request at the instance when the client leaves before the answer', async () => {
      const id = `leave-${parser}`;
      const c = new RawClient(router.port);
      await c.write(`GET /hold?id=${id} HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
      await waitFor(async () => (await heldAt(app.url, id)) === 1, { timeoutMs: 10_000, message: 'the request held at the instance' });
      c.socket.destroy();
      await waitFor(async () => (await heldAt(app.url, id)) === 0, { timeoutMs: 10_000, message: 'the instance to see the request go' });
    });

    it('serves new connections cleanly after clients that left mid-request (the native server reuses their parsers)', async () => {
      const open = () => metricValue(router.adminUrl, 'router_client_connections');
      // Earlier tests' connections (undici's idle one included) gone: the next ones take the parsers freed below.
      await waitFor(async () => (await open()) === 0, { timeoutMs: 15_000, message: 'no client connection open' });
      const cut = [
        // Inside a head.
        { bytes: `GET /cut HTTP/1.1\r\nHost: ${HOST}\r\nX-Cut: abc` },
        // Inside a chunked body and inside a length-delimited one, their heads forwarded (held at the instance).
        { bytes: `POST /hold?id=cut-chunked-${parser} HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel`, id: `cut-chunked-${parser}` },
        { bytes: `POST /hold?id=cut-length-${parser} HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 100\r\n\r\nhello`, id: `cut-length-${parser}` },
      ];
      const left = cut.map(() => new RawClient(router.port));
      await Promise.all(left.map((c, i) => c.write(cut[i]!.bytes)));
      for (const { id } of cut) if (id !== undefined) await waitFor(async () => (await heldAt(app.url, id)) === 1, { timeoutMs: 10_000, message: `${id} held at the instance` });
      await waitFor(async () => (await open()) === cut.length, { timeoutMs: 10_000, message: 'the cut connections open' });
      for (const c of left) c.socket.destroy();
      await waitFor(async () => (await open()) === 0, { timeoutMs: 10_000, message: 'the cut connections closed' });
      for (let i = 0; i <= cut.length; i++) {
        const c = new RawClient(router.port);
        await c.write(`GET /clean?i=${i} HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
        const [a] = await c.answers(1);
        expect(a!.status).toBe(200);
        expect(JSON.parse(a!.body)).toMatchObject({ path: '/clean' });
        c.socket.destroy();
        await waitFor(async () => (await open()) === 0, { timeoutMs: 10_000, message: 'the clean connection closed' });
      }
      for (const { id } of cut) if (id !== undefined) await waitFor(async () => (await heldAt(app.url, id)) === 0, { timeoutMs: 10_000, message: `${id} freed at the instance` });
    });

    it('leaves nothing behind after clients that leave at random points: no request in flight, no connection open, none held at the instance', async () => {
      // What a client sends before it leaves: one of a few requests, cut after `cut` of its bytes
      // (all of them: it leaves while the answer comes, after `readBytes` of it).
      const req = fc.oneof(
        fc.record({ path: fc.constantFrom('/bytes?n=3000000', '/slow?ms=200', `/hold?id=left-${parser}`), body: fc.constant(0) }),
        fc.record({ path: fc.constantFrom('/count', '/count?pause=300', '/count?close', '/echo'), body: fc.integer({ min: 0, max: 300_000 }) }),
      );
      // cutAt: the share of the request sent before leaving; 1 (half the cases): all of it.
      const cutAt = fc.oneof(fc.constant(1), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }));
      await fc.assert(
        fc.asyncProperty(fc.array(fc.tuple(req, cutAt, fc.integer({ min: 0, max: 200_000 }), fc.boolean()), { minLength: 1, maxLength: 4 }), async (clients) => {
          await Promise.all(clients.map(async ([r, cutAt, readBytes, chunked]) => {
            const c = new RawClient(router.port);
            await c.connected;
            const body = 'c'.repeat(r.body);
            const bytes = r.body === 0 && !chunked ? `GET ${r.path} HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`
              : chunked ? `POST ${r.path} HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\n\r\n${r.body > 0 ? `${r.body.toString(16)}\r\n${body}\r\n` : ''}0\r\n\r\n`
              : `POST ${r.path} HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: ${r.body}\r\n\r\n${body}`;
            const cut = Math.floor(cutAt * bytes.length);
            await c.write(bytes.slice(0, Math.max(1, cut)));
            // The whole request sent: it leaves once `readBytes` of the answer came, or all of a shorter one.
            if (cut >= bytes.length && !r.path.startsWith('/hold')) {
              await waitFor(() => c.pending.length >= readBytes || c.closed || takeAnswer(c.pending, false) !== undefined, { timeoutMs: 10_000, intervalMs: 5, message: `${readBytes} bytes of the answer` });
            }
            c.socket.destroy();
          }));
          await waitFor(async () => (await metricValue(router.adminUrl, 'router_requests_in_flight')) === 0 && (await metricValue(router.adminUrl, 'router_client_connections')) === 0 && (await heldAt(app.url, `left-${parser}`)) === 0, {
            timeoutMs: 10_000,
            message: 'no request in flight, no client connection, none held at the instance',
          });
        }),
        { numRuns: 40, seed: 20261130, endOnFailure: true },
      );
    }, 120_000);

    it('leaves nothing behind after WebSockets that end at random points: during the upgrade, mid-message, by close or by reset', async () => {
      const socketEnd = fc.record({
        messages: fc.array(fc.integer({ min: 0, max: 300_000 }), { maxLength: 4 }),
        // How it ends: a close handshake, a reset after the echoes, a reset right after the last send, or a reset during the upgrade.
        end: fc.constantFrom('close', 'reset', 'reset-mid', 'reset-upgrade'),
      });
      await fc.assert(
        fc.asyncProperty(fc.array(socketEnd, { minLength: 1, maxLength: 4 }), async (sockets) => {
          await Promise.all(sockets.map(async (x) => {
            const ws = new WebSocket(`ws://127.0.0.1:${router.port}/`, { headers: { host: HOST } });
            ws.on('error', () => undefined);
            if (x.end === 'reset-upgrade') {
              ws.once('upgrade', () => ws.terminate());
              await new Promise((r) => ws.once('close', r));
              return;
            }
            const hello = new Promise((r) => ws.once('message', r));
            await new Promise((resolve, reject) => {
              ws.once('open', resolve);
              ws.once('close', () => reject(new Error('closed before open')));
            });
            await hello;
            let echoed = 0;
            const all = new Promise<void>((resolve) => {
              if (x.messages.length === 0) resolve();
              ws.on('message', () => {
                if (++echoed === x.messages.length) resolve();
              });
            });
            for (const n of x.messages) ws.send(Buffer.alloc(n, 120));
            if (x.end === 'reset-mid') ws.terminate();
            else {
              await all;
              if (x.end === 'close') ws.close(1000);
              else ws.terminate();
            }
            await new Promise((r) => (ws.readyState === WebSocket.CLOSED ? r(undefined) : ws.once('close', r)));
          }));
          await waitFor(async () => (await metricValue(router.adminUrl, 'router_requests_in_flight')) === 0 && (await metricValue(router.adminUrl, 'router_client_connections')) === 0, { timeoutMs: 10_000, message: 'no WebSocket in flight, no client connection' });
        }),
        { numRuns: 30, seed: 20261130, endOnFailure: true },
      );
    }, 120_000);

    it('answers random conversations on keep-alive connections whole and in order: bodies of every size, chunked or not, pipelined or not, instances slow to read', async () => {
      // A request: its bytes, and what its answer must say.
      const size = bodySize(200_000);
      const step = fc.oneof(
        { arbitrary: fc.record({ kind: fc.constant('bytes' as const), n: size }), weight: 1 },
        // close: the instance ends its connection after answering, so the router's next request opens a new one (its body waits meanwhile).
        { arbitrary: fc.record({ kind: fc.constant('count' as const), n: size, chunks: fc.option(fc.integer({ min: 1, max: 70_000 }), { nil: undefined }), pauseMs: fc.constantFrom(0, 0, 20, 150), close: fc.boolean() }), weight: 3 },
        { arbitrary: fc.record({ kind: fc.constant('slow' as const), ms: fc.integer({ min: 0, max: 40 }) }), weight: 1 },
      );
      type Step = typeof step extends fc.Arbitrary<infer T> ? T : never;
      const bytesOf = (x: Step): string => {
        if (x.kind === 'bytes') return `GET /bytes?n=${x.n} HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`;
        if (x.kind === 'slow') return `GET /slow?ms=${x.ms} HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`;
        const path = `/count?pause=${x.pauseMs}${x.close ? '&close' : ''}`;
        const body = 'b'.repeat(x.n);
        if (x.chunks === undefined) return `POST ${path} HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: ${x.n}\r\n\r\n${body}`;
        let out = `POST ${path} HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\n\r\n`;
        for (let at = 0; at < x.n; at += x.chunks) {
          const piece = body.slice(at, at + x.chunks);
          out += `${piece.length.toString(16)}\r\n${piece}\r\n`;
        }
        return `${out}0\r\n\r\n`;
      };
      const check = (x: Step, a: Answer) => {
        expect(a.status).toBe(200);
        if (x.kind === 'bytes') expect(a.body.length).toBe(x.n);
        else if (x.kind === 'count') expect(JSON.parse(a.body)).toMatchObject({ bytes: x.n });
        else expect(JSON.parse(a.body)).toMatchObject({ path: '/slow', sleptMs: x.ms });
      };
      await fc.assert(
        fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 6 }), fc.boolean(), fc.integer({ min: 1, max: 9 }), async (steps, pipelined, writes) => {
          const c = new RawClient(router.port);
          try {
            await c.connected;
            if (pipelined) {
              // All of it at once, cut into `writes` pieces at arbitrary bytes.
              const all = steps.map(bytesOf).join('');
              const cut = Math.ceil(all.length / writes);
              for (let at = 0; at < all.length; at += cut) await c.write(all.slice(at, at + cut));
              const answers = await c.answers(steps.length, 10_000);
              steps.forEach((x, i) => check(x, answers[i]!));
            } else {
              for (const x of steps) {
                await c.write(bytesOf(x));
                const [a] = await c.answers(1, 10_000);
                check(x, a!);
              }
            }
            expect(c.pending).toBe('');
            expect(c.closed).toBe(false);
          } finally {
            c.socket.destroy();
          }
        }),
        { numRuns: 60, seed: 20261130, endOnFailure: true },
      );
    }, 120_000);
  });
}
