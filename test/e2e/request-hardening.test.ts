/**
 * The request head is validated before anything reaches an instance (RFC 9110/9112, as nginx,
 * HAProxy and Envoy do): raw requests on a plain socket to a real router process, and instances
 * that record every byte they receive, so "the instance received nothing" is checked, not assumed.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { execFile } from 'node:child_process';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { promisify } from 'node:util';
import { CLIENT_PARSERS, startRouter, type RouterProcess } from '../harness/processes.js';
import { runEtcdctl as etcdctl, uniquePrefix } from '../harness/etcd.js';
import { waitFor } from '../harness/wait.js';

const endpoints = inject('etcdEndpoints');
const prefix = uniquePrefix('hardening');
const run = promisify(execFile);
let router: RouterProcess;

/**
 * An instance that records every byte it receives and answers each request `200 ok` with its
 * request line in `x-got`. It reads just enough HTTP/1.1 to find where each request ends.
 */
class RecordingInstance {
  readonly server: Server;
  url = '';
  connections = 0;
  received = '';
  private readonly sockets = new Set<Socket>();

  constructor() {
    this.server = createServer((socket) => {
      this.connections++;
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      let pending = '';
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => {
        this.received += chunk;
        pending += chunk;
        for (let end = requestEnd(pending); end > 0; end = requestEnd(pending)) {
          const line = pending.slice(0, pending.indexOf('\r\n'));
          pending = pending.slice(end);
          socket.write(`HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-got: ${line}\r\n\r\nok`, 'latin1');
        }
      });
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  reset(): void {
    this.connections = 0;
    this.received = '';
    for (const s of this.sockets) s.destroy();
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** Where the first complete request in `data` ends (0: not complete yet). */
function requestEnd(data: string): number {
  const headEnd = data.indexOf('\r\n\r\n');
  if (headEnd < 0) return 0;
  const head = data.slice(0, headEnd).toLowerCase();
  const length = /\r\ncontent-length:\s*(\d+)/.exec(head);
  if (length) {
    const end = headEnd + 4 + Number(length[1]);
    return data.length >= end ? end : 0;
  }
  if (/\r\ntransfer-encoding:\s*chunked/.test(head)) {
    const last = data.indexOf('\r\n0\r\n\r\n', headEnd);
    return last < 0 ? 0 : last + 7;
  }
  return headEnd + 4;
}

const files = new RecordingInstance();
const admin = new RecordingInstance();

/** Writes raw bytes to the router and collects everything until the router closes the connection. */
function raw(bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(router.port, '127.0.0.1', () => socket.write(bytes, 'latin1'));
    let got = '';
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => (got += c));
    socket.on('end', () => resolve(got));
    socket.on('error', reject);
    socket.setTimeout(15_000, () => reject(new Error(`no close from the router; got: ${JSON.stringify(got)}`)));
  });
}

interface Parsed {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The answers in a byte string (content-length framed, as the router's and the recorder's are). */
function parseAnswers(data: string): Parsed[] {
  const out: Parsed[] = [];
  while (data.length > 0) {
    const headEnd = data.indexOf('\r\n\r\n');
    if (headEnd < 0) throw new Error(`not an HTTP answer: ${JSON.stringify(data)}`);
    const [statusLine, ...lines] = data.slice(0, headEnd).split('\r\n');
    const headers: Record<string, string> = {};
    for (const l of lines) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
    const length = Number(headers['content-length'] ?? 0);
    out.push({ status: Number(statusLine!.split(' ')[1]), headers, body: data.slice(headEnd + 4, headEnd + 4 + length) });
    data = data.slice(headEnd + 4 + length);
  }
  return out;
}

async function one(bytes: string): Promise<Parsed> {
  const answers = parseAnswers(await raw(bytes));
  expect(answers).toHaveLength(1);
  return answers[0]!;
}

function ownAnswer(a: Parsed, status: number): void {
  expect(a.status).toBe(status);
  expect(a.headers['x-content-type-options']).toBe('nosniff');
  expect(a.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  expect(a.headers.connection).toBe('close');
}

function expectNothingReceived(): void {
  expect(files.connections).toBe(0);
  expect(files.received).toBe('');
  expect(admin.connections).toBe(0);
  expect(admin.received).toBe('');
}

async function putJson(key: string, value: unknown): Promise<void> {
  await etcdctl(endpoints, ['put', key, JSON.stringify(value)]);
}

beforeAll(async () => {
  await files.start();
  await admin.start();
  await putJson(`${prefix}/apps/files`, { routes: [{ host: 'cloud.example.com', path: '/files' }] });
  await putJson(`${prefix}/instances/files/f1`, { url: files.url, state: 'ready' });
  await putJson(`${prefix}/apps/admin`, { routes: [{ host: 'cloud.example.com', path: '/admin' }] });
  await putJson(`${prefix}/instances/admin/a1`, { url: admin.url, state: 'ready' });
});

afterAll(async () => {
  await files.stop();
  await admin.stop();
});

for (const parser of CLIENT_PARSERS) {
  describe(`--client-parser ${parser}`, () => {
    beforeAll(async () => {
      router = await startRouter({ etcdEndpoints: endpoints, prefix, id: `hardening-${parser}`, extraArgs: ['--client-parser', parser] });
      await waitFor(async () => (await raw('GET /files/x HTTP/1.1\r\nHost: cloud.example.com\r\nConnection: close\r\n\r\n')).startsWith('HTTP/1.1 200'), { timeoutMs: 10_000, message: 'files routed' });
    });

    afterAll(async () => {
      await router?.proc.stop();
    });

    describe('a request head the router refuses reaches no instance', () => {
      it.each([
        ['Transfer-Encoding other than chunked: 501', 'POST /files/x HTTP/1.1\r\nHost: cloud.example.com\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n', 501],
        ['Transfer-Encoding in HTTP/1.0: 400', 'POST /files/x HTTP/1.0\r\nHost: cloud.example.com\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n', 400],
        ['Transfer-Encoding twice: 400', 'POST /files/x HTTP/1.1\r\nHost: cloud.example.com\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n', 400],
        ['Transfer-Encoding with Content-Length: 400', 'POST /files/x HTTP/1.1\r\nHost: cloud.example.com\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n', 400],
        ['Transfer-Encoding gzip alone: 501', 'POST /files/x HTTP/1.1\r\nHost: cloud.example.com\r\nTransfer-Encoding: gzip\r\n\r\nabc', 501],
        ['two Host headers: 400', 'GET /files/x HTTP/1.1\r\nHost: cloud.example.com\r\nHost: other.example.com\r\n\r\n', 400],
        ['no Host in HTTP/1.1: 400', 'GET /files/x HTTP/1.1\r\n\r\n', 400],
        ['an absolute-form target with userinfo: 400', 'GET http://user@cloud.example.com/files/x HTTP/1.1\r\nHost: cloud.example.com\r\n\r\n', 400],
        ['an asterisk-form target: 400', 'OPTIONS * HTTP/1.1\r\nHost: cloud.example.com\r\n\r\n', 400],
        ['a WebSocket upgrade with two Host headers: 400', 'GET /files/ws HTTP/1.1\r\nHost: cloud.example.com\r\nHost: x.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n', 400],
      ])('%s', async (_name, bytes, status) => {
        files.reset();
        admin.reset();
        ownAnswer(await one(bytes), status);
        expectNothingReceived();
      });
    });

    describe('absolute-form targets (RFC 9112 §3.2.2)', () => {
      it('routes by the target authority and sends origin-form with that Host', async () => {
        files.reset();
        const a = await one('GET http://Cloud.Example.com:8080/files/a?q=1 HTTP/1.1\r\nHost: elsewhere.example.com\r\nConnection: close\r\n\r\n');
        expect(a.status).toBe(200);
        expect(a.headers['x-got']).toBe('GET /files/a?q=1 HTTP/1.1');
        expect(files.received).toMatch(/^GET \/files\/a\?q=1 HTTP\/1\.1\r\n/);
        expect(files.received).toMatch(/\r\nhost: Cloud\.Example\.com:8080\r\n/);
        expect(files.received).toMatch(/\r\nx-forwarded-host: Cloud\.Example\.com:8080\r\n/);
        expect(files.received).not.toMatch(/elsewhere/);
      });
    });

    describe('dot-segments are removed before routing (RFC 3986 §5.2.4)', () => {
      it.each([
        ['/files/../admin', 'GET /admin HTTP/1.1'],
        ['/files/%2e%2e/admin', 'GET /admin HTTP/1.1'],
        ['/files/%2E./admin?x=/../y', 'GET /admin?x=/../y HTTP/1.1'],
        ['/files/./../admin/', 'GET /admin/ HTTP/1.1'],
      ])('%s reaches the admin route as a request for it, and never the files instance', async (target, line) => {
        files.reset();
        admin.reset();
        const a = await one(`GET ${target} HTTP/1.1\r\nHost: cloud.example.com\r\nConnection: close\r\n\r\n`);
        expect(a.status).toBe(200);
        expect(a.headers['x-got']).toBe(line);
        expect(admin.received.startsWith(`${line}\r\n`)).toBe(true);
        expect(files.connections).toBe(0);
      });

      it('/files/a/./b/../c reaches the files instance as /files/a/c', async () => {
        files.reset();
        const a = await one('GET /files/a/./b/../c HTTP/1.1\r\nHost: cloud.example.com\r\nConnection: close\r\n\r\n');
        expect(a.headers['x-got']).toBe('GET /files/a/c HTTP/1.1');
      });

      it('/files/../../etc/passwd goes to no route: 404, nothing forwarded', async () => {
        files.reset();
        admin.reset();
        const a = await one('GET /files/../../etc/passwd HTTP/1.1\r\nHost: cloud.example.com\r\nConnection: close\r\n\r\n');
        expect(a.status).toBe(404);
        expect(a.body).toBe('Not Found');
        expect(a.headers['x-content-type-options']).toBe('nosniff');
        expectNothingReceived();
      });
    });

    describe('Upgrade: h2c on the plain listener is ignored (as nginx does)', () => {
      it('answers over HTTP/1.1, keeps the connection, and forwards no Upgrade or HTTP2-Settings', async () => {
        files.reset();
        const answers = parseAnswers(
          await raw(
            'POST /files/one HTTP/1.1\r\nHost: cloud.example.com\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Length: 5\r\n\r\nhello' +
              'GET /files/two HTTP/1.1\r\nHost: cloud.example.com\r\nConnection: close\r\n\r\n',
          ),
        );
        expect(answers.map((a) => [a.status, a.headers['x-got']])).toEqual([
          [200, 'POST /files/one HTTP/1.1'],
          [200, 'GET /files/two HTTP/1.1'],
        ]);
        expect(files.received).toMatch(/\r\n\r\nhello/);
        expect(files.received).not.toMatch(/upgrade|http2-settings/i);
      });

      it('curl --http2 on http:// gets its answer', async () => {
        files.reset();
        const { stdout } = await run('curl', ['-sS', '--http2', '-o', '/dev/null', '-w', '%{http_code} %{http_version}', '-H', 'Host: cloud.example.com', `${router.url}/files/curl`]);
        expect(stdout).toBe('200 1.1');
        expect(files.received).toMatch(/^GET \/files\/curl HTTP\/1\.1\r\n/);
      });
    });

    describe('the router forwards what it accepts as it was framed', () => {
      it('a chunked request body reaches the instance chunked and whole', async () => {
        files.reset();
        const a = await one('POST /files/up HTTP/1.1\r\nHost: cloud.example.com\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n');
        expect(a.status).toBe(200);
        expect(files.received).toMatch(/\r\ntransfer-encoding: chunked\r\n/);
        expect(files.received.endsWith('\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n')).toBe(true);
      });
    });
  });
}
