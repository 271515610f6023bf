/**
 * The router's upstream clients against real sockets, each suite once per implementation
 * (native: Node's internal llhttp; portable: undici's public Client): scripted raw servers for
 * the framings and connection races node:http would smooth over (1xx, close-delimited answers,
 * stale keep-alive connections, announced keep-alive timeouts), node:http servers for request
 * bodies. The same assertions hold for both, except where an undici difference is named.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex, Readable } from 'node:stream';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../../test/harness/wait.js';
import { Connectors, defaultConnectors, type Connector } from '../src/transport/connector.js';
import { checkNativeParser } from '../src/transport/native-check.js';
import { NativeUpstreamClient } from '../src/transport/native-client.js';
import { PortableUpstreamClient } from '../src/transport/portable-client.js';
import { createUpstreamClient } from '../src/transport/select-client.js';
import type { Upstream, UpstreamClient, UpstreamClientKind, UpstreamExchange } from '../src/transport/upstream.js';

const OPTS = { connectTimeoutMs: 1000, upstreamTimeoutMs: 2000, keepAliveTimeoutMs: 4000, keepAliveMaxTimeoutMs: 60_000 };

function build(kind: UpstreamClientKind, opts: typeof OPTS): UpstreamClient {
  const { connectTimeoutMs, ...rest } = opts;
  const full = { ...rest, connectors: defaultConnectors(connectTimeoutMs) };
  return kind === 'native' ? new NativeUpstreamClient(full) : new PortableUpstreamClient(full);
}

/** A request head as a request line and its header lines in order-free form (undici orders them its own way and adds `connection: keep-alive`). */
function headOf(head: string): { line: string; headers: string[] } {
  const [line, ...rest] = head.split('\r\n');
  return { line: line!, headers: rest.filter((h) => h.toLowerCase() !== 'connection: keep-alive').sort() };
}

interface Result {
  status: number;
  statusText: string;
  headers: string[];
  body: string;
  error: (Error & { code?: string }) | undefined;
}

/** An exchange that collects the answer; `pauseAfter`: asks for a pause once, after that many chunks. */
class Collect implements UpstreamExchange {
  upstream: Upstream | null = null;
  readonly result: Result = { status: 0, statusText: '', headers: [], body: '', error: undefined };
  readonly done: Promise<Result>;
  chunks = 0;
  completed = false;
  private finish!: (r: Result) => void;

  constructor(
    readonly method: string,
    readonly path: string,
    readonly headers: string[] = [],
    readonly body: IncomingMessage | null = null,
    readonly chunked = false,
    readonly hasHost = false,
    readonly pauseAfter = Infinity,
  ) {
    this.done = new Promise((r) => (this.finish = r));
  }

  onHeaders(statusCode: number, statusText: string, headers: string[]): void {
    Object.assign(this.result, { status: statusCode, statusText, headers });
  }

  onData(chunk: Buffer): boolean {
    this.result.body += chunk.toString('latin1');
    return ++this.chunks !== this.pauseAfter;
  }

  onComplete(): void {
    this.completed = true;
    this.finish(this.result);
  }

  onError(err: Error): void {
    this.result.error = err;
    this.finish(this.result);
  }
}

interface Raw {
  server: NetServer;
  url: string;
  connections: number;
  closed: number;
  heads: string[];
}

/**
 * A raw HTTP/1.1 server that answers each body-less request with what `answer` writes:
 * (socket, request head, index of the request on its connection, index of the connection).
 */
async function rawServer(answer: (socket: Socket, head: string, reqOnConn: number, conn: number) => void): Promise<Raw> {
  const raw: Raw = { server: undefined as unknown as NetServer, url: '', connections: 0, closed: 0, heads: [] };
  raw.server = createNetServer((socket) => {
    const conn = raw.connections++;
    rawSockets.push(socket);
    let buffered = '';
    let n = 0;
    socket.on('data', (d) => {
      buffered += d.toString('latin1');
      let end: number;
      while ((end = buffered.indexOf('\r\n\r\n')) >= 0) {
        const head = buffered.slice(0, end);
        buffered = buffered.slice(end + 4);
        raw.heads.push(head);
        answer(socket, head, n++, conn);
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => raw.closed++);
  });
  await new Promise<void>((r) => raw.server.listen(0, '127.0.0.1', r));
  raw.url = `http://127.0.0.1:${(raw.server.address() as AddressInfo).port}`;
  servers.push(raw.server);
  return raw;
}

const BODY = 'hello';
const OK = `HTTP/1.1 200 OK\r\ncontent-length: ${BODY.length}\r\n\r\n${BODY}`;

/**
 * Connections over TCP handed to the client as a stream without a TCP handle, its bytes in
 * pieces of `size` (as a TLS connection or a tunnel stream gives them): the client reads them
 * from 'data' events.
 */
function piecesConnector(size: number): Connector {
  const tcp = defaultConnectors(1000).for('http:')!;
  return {
    connect(target, callback) {
      tcp.connect(target, (err, conn) => {
        if (conn === null) return callback(err, null);
        const socket = conn as Socket;
        const stream = new Duplex({
          read: () => void socket.resume(),
          write: (chunk: Buffer, _encoding, cb) => void socket.write(chunk, cb),
          final: (cb) => void socket.end(cb),
          destroy: (e, cb) => {
            socket.destroy();
            cb(e);
          },
        });
        socket.on('data', (d: Buffer) => {
          let more = true;
          for (let i = 0; i < d.length; i += size) more = stream.push(d.subarray(i, i + size));
          if (!more) socket.pause();
        });
        socket.on('end', () => stream.push(null));
        socket.on('error', (e) => stream.destroy(e));
        callback(null, stream);
      });
    },
  };
}

const servers: (NetServer | HttpServer)[] = [];
const rawSockets: Socket[] = [];
const clients: UpstreamClient[] = [];

let kind: UpstreamClientKind = 'native';

function client(opts: Partial<typeof OPTS> = {}): UpstreamClient {
  const c = build(kind, { ...OPTS, ...opts });
  clients.push(c);
  return c;
}

function send(c: UpstreamClient, origin: string, ex: Collect): Promise<Result> {
  c.request(origin, ex);
  return ex.done;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  for (const sock of rawSockets.splice(0)) sock.destroy();
  for (const s of servers.splice(0)) {
    if ('closeAllConnections' in s) s.closeAllConnections();
    s.close();
  }
});

describe.each(['native', 'portable'] as const)('upstream client: %s', (implementation) => {
  beforeAll(() => {
    kind = implementation;
  });

  it('says which implementation it is', () => {
    expect(client().kind).toBe(implementation);
  });

  it('writes the request head as given, adds Host when missing, and reuses the connection', async () => {
    const raw = await rawServer((s) => s.write(OK));
    const c = client();
    const a = await send(c, raw.url, new Collect('GET', '/a?q=1', ['X-Thing', 'v1', 'host', 'web.example'], null, false, true));
    const b = await send(c, raw.url, new Collect('POST', '/b', ['content-length', '0']));
    expect([a.status, a.statusText, a.body, b.status, b.body]).toEqual([200, 'OK', BODY, 200, BODY]);
    expect(a.headers).toEqual(['content-length', '5']);
    expect(headOf(raw.heads[0]!)).toEqual({ line: 'GET /a?q=1 HTTP/1.1', headers: ['X-Thing: v1', 'host: web.example'] });
    expect(headOf(raw.heads[1]!)).toEqual({ line: 'POST /b HTTP/1.1', headers: ['content-length: 0', `host: ${new URL(raw.url).host}`] });
    expect(raw.connections).toBe(1);
  });

  it('reads chunked, close-delimited, HEAD, 204 and 304 answers', async () => {
    const raw = await rawServer((s, head) => {
      const path = head.split(' ')[1];
      if (path === '/chunked') s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n');
      else if (path === '/trailer') s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-sum\r\n\r\n1\r\nz\r\n0\r\nx-sum: 1\r\n\r\n');
      else if (path === '/head') s.write('HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n');
      else if (path === '/204') s.write('HTTP/1.1 204 No Content\r\nx-a: 1\r\n\r\n');
      else if (path === '/304') s.write('HTTP/1.1 304 Not Modified\r\netag: "x"\r\n\r\n');
      else if (path === '/close') s.end('HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end');
    });
    const c = client();
    expect((await send(c, raw.url, new Collect('GET', '/chunked'))).body).toBe('abcde');
    // Trailers are dropped, and do not leak into the next answer's head.
    expect((await send(c, raw.url, new Collect('GET', '/trailer'))).body).toBe('z');
    const noContent = await send(c, raw.url, new Collect('GET', '/204'));
    expect([noContent.status, noContent.headers]).toEqual([204, ['x-a', '1']]);
    expect((await send(c, raw.url, new Collect('GET', '/304'))).status).toBe(304);
    expect(raw.connections).toBe(1);
    const head = await send(c, raw.url, new Collect('HEAD', '/head'));
    expect([head.status, head.body, head.headers]).toEqual([200, '', ['content-length', '1234']]);
    expect((await send(c, raw.url, new Collect('GET', '/204'))).status).toBe(204);
    // undici keeps a connection after a HEAD answer only when it says `Connection: keep-alive`.
    expect(raw.connections).toBe(implementation === 'native' ? 1 : 2);
    const closed = await send(c, raw.url, new Collect('GET', '/close'));
    expect([closed.status, closed.body, closed.error]).toEqual([200, 'until the end', undefined]);
  });

  it('skips interim 1xx answers and passes the final one', async () => {
    const raw = await rawServer((s) => s.write(`HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n${OK}`));
    const c = client();
    const r = await send(c, raw.url, new Collect('GET', '/'));
    expect([r.status, r.headers, r.body]).toEqual([200, ['content-length', '5'], BODY]);
    expect((await send(c, raw.url, new Collect('GET', '/'))).body).toBe(BODY);
    expect(raw.connections).toBe(1);
  });

  it('handles a 100 Continue nobody asked for: native skips it, portable fails as undici does', async () => {
    const raw = await rawServer((s) => s.write(`HTTP/1.1 100 Continue\r\n\r\n${OK}`));
    const r = await send(client(), raw.url, new Collect('GET', '/'));
    if (implementation === 'native') expect([r.status, r.body, r.error]).toEqual([200, BODY, undefined]);
    else expect([r.status, r.error?.code]).toEqual([0, 'UND_ERR_SOCKET']);
  });

  it('hands over more than 32 answer headers', async () => {
    const many = Array.from({ length: 40 }, (_, i) => `x-h${i}: v${i}\r\n`).join('');
    const raw = await rawServer((s) => s.write(`HTTP/1.1 200 OK\r\n${many}content-length: 2\r\n\r\nok`));
    const r = await send(client(), raw.url, new Collect('GET', '/'));
    expect(r.headers.length).toBe(82);
    expect(r.headers.slice(78)).toEqual(['x-h39', 'v39', 'content-length', '2']);
  });

  it('retries a body-less GET on a fresh connection when a reused one was closed under it, but not a POST', async () => {
    // The second request on each connection finds it closed by the instance, unanswered.
    const raw = await rawServer((s, _head, n) => (n === 0 ? s.write(OK) : s.destroy()));
    const c = client();
    await send(c, raw.url, new Collect('GET', '/'));
    const r = await send(c, raw.url, new Collect('GET', '/again'));
    expect([r.status, r.body, r.error]).toEqual([200, BODY, undefined]);
    expect(raw.connections).toBe(2);
    const post = await send(c, raw.url, new Collect('POST', '/', ['content-length', '0']));
    expect(post.error?.code).toMatch(/^(ECONNRESET|EPIPE|UND_ERR_SOCKET)$/);
    expect(raw.connections).toBe(2);
  });

  it('fails a request the instance drops with nothing sent on a fresh connection', async () => {
    const raw = await rawServer((s) => s.destroy());
    const r = await send(client(), raw.url, new Collect('GET', '/'));
    expect(r.error?.code).toMatch(/^(ECONNRESET|UND_ERR_SOCKET)$/);
    expect(raw.connections).toBe(1);
  });

  it('holds an announced keep-alive timeout to N - 2 s, and does not reuse below the margin', async () => {
    const raw = await rawServer((s, head) => {
      const t = head.split(' ')[1] === '/short' ? 1 : 3;
      s.write(`HTTP/1.1 200 OK\r\nkeep-alive: timeout=${t}\r\ncontent-length: 0\r\n\r\n`);
    });
    const c = client();
    await send(c, raw.url, new Collect('GET', '/short'));
    await send(c, raw.url, new Collect('GET', '/short'));
    expect(raw.connections).toBe(2);
    await send(c, raw.url, new Collect('GET', '/long'));
    const idleSince = Date.now();
    await send(c, raw.url, new Collect('GET', '/long'));
    expect(raw.connections).toBe(3);
    while (raw.closed < 3 && Date.now() - idleSince < 3000) await sleep(20);
    expect(raw.closed).toBe(3);
    expect(Date.now() - idleSince).toBeGreaterThanOrEqual(900);
  });

  it('closes an idle connection after --keepalive-timeout when nothing is announced', async () => {
    const raw = await rawServer((s) => s.write(OK));
    const c = client({ keepAliveTimeoutMs: 300 });
    await send(c, raw.url, new Collect('GET', '/'));
    await sleep(150);
    expect(raw.closed).toBe(0);
    await sleep(400);
    expect(raw.closed).toBe(1);
  });

  it('times out waiting for the head and for the body, with undici\'s codes', async () => {
    const raw = await rawServer((s, head) => {
      if (head.startsWith('GET /body')) s.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc');
    });
    const c = client({ upstreamTimeoutMs: 200 });
    expect((await send(c, raw.url, new Collect('GET', '/head'))).error?.code).toBe('UND_ERR_HEADERS_TIMEOUT');
    const body = await send(c, raw.url, new Collect('GET', '/body'));
    expect([body.status, body.body, body.error?.code]).toEqual([200, 'abc', 'UND_ERR_BODY_TIMEOUT']);
  });

  it('does not time out an answer paused for a slow reader, and resumes it', async () => {
    const raw = await rawServer((s) => {
      s.write('HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nab');
      setTimeout(() => s.write('cd'), 50);
      setTimeout(() => s.write('ef'), 100);
    });
    const c = client({ upstreamTimeoutMs: 150 });
    const ex = new Collect('GET', '/', [], null, false, false, 1);
    c.request(raw.url, ex);
    await sleep(450);
    expect([ex.result.body, ex.result.error, ex.completed]).toEqual(['ab', undefined, false]);
    ex.upstream!.resume(ex);
    const r = await ex.done;
    expect([r.body, r.error]).toEqual(['abcdef', undefined]);
  });

  it('reports a refused connection with its code, and an abort closes the connection without callbacks', async () => {
    const dead = await rawServer(() => {});
    const deadUrl = dead.url;
    await new Promise((r) => dead.server.close(r));
    servers.length = 0;
    const c = client();
    expect((await send(c, deadUrl, new Collect('GET', '/'))).error?.code).toBe('ECONNREFUSED');

    const raw = await rawServer((s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc'));
    const ex = new Collect('GET', '/');
    c.request(raw.url, ex);
    while (ex.result.body === '') await sleep(10);
    ex.upstream!.abort(ex);
    while (raw.closed === 0) await sleep(10);
    await sleep(50);
    expect([ex.result.error, ex.completed]).toEqual([undefined, false]);
  });

  it('streams request bodies: by length as they are, chunked otherwise', async () => {
    const seen: { te: string | undefined; cl: string | undefined; sha: string; bytes: number }[] = [];
    const target = createHttpServer((req, res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      req.on('data', (d: Buffer) => {
        bytes += d.length;
        hash.update(d);
      });
      req.on('end', () => {
        seen.push({ te: req.headers['transfer-encoding'], cl: req.headers['content-length'], sha: hash.digest('hex'), bytes });
        res.end('ok');
      });
    });
    servers.push(target);
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    const targetUrl = `http://127.0.0.1:${(target.address() as AddressInfo).port}`;

    // A front server hands the client real IncomingMessage bodies, as the router's listener does.
    const c = client();
    const front = createHttpServer((req, res) => {
      const length = req.headers['content-length'];
      const headers = length === undefined ? [] : ['content-length', length];
      const ex = new Collect(req.method!, req.url!, headers, req, length === undefined);
      void send(c, targetUrl, ex).then((r) => res.end(r.error ? `error ${r.error.message}` : r.body));
    });
    servers.push(front);
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
    const frontPort = (front.address() as AddressInfo).port;
    const big = Buffer.alloc(3 * 1024 * 1024, 'x');
    const post = (headers: Record<string, string>, parts: Buffer[]) =>
      new Promise<string>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port: frontPort, method: 'POST', path: '/up', headers, agent: false }, (res) => {
          let b = '';
          res.on('data', (d: Buffer) => (b += d));
          res.on('end', () => resolve(b));
        });
        req.on('error', reject);
        for (const p of parts) req.write(p);
        req.end();
      });
    expect(await post({ 'content-length': String(big.length) }, [big])).toBe('ok');
    expect(await post({ 'transfer-encoding': 'chunked' }, [Buffer.from('abc'), big, Buffer.from('def')])).toBe('ok');
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    expect(seen).toEqual([
      { te: undefined, cl: String(big.length), sha: sha(big), bytes: big.length },
      { te: 'chunked', cl: undefined, sha: sha(Buffer.concat([Buffer.from('abc'), big, Buffer.from('def')])), bytes: big.length + 6 },
    ]);
  });

  it('sends a request body that ended before anything read it (an HTTP/2 stream whose END_STREAM came on an empty DATA frame), rather than wait for it', async () => {
    const seen: string[] = [];
    const target = createHttpServer((req, res) => {
      let bytes = 0;
      req.on('data', (d: Buffer) => (bytes += d.length));
      req.on('end', () => {
        seen.push(`${bytes} bytes`);
        res.end('ok');
      });
    });
    servers.push(target);
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    const targetUrl = `http://127.0.0.1:${(target.address() as AddressInfo).port}`;
    // As Node's HTTP/2 stream does then: 'end' emitted with nobody listening.
    const body = new Readable({ read() {} });
    body.push(null);
    body.read(0);
    await new Promise((r) => setImmediate(r));
    expect(body.readableEnded).toBe(true);
    const r = await send(client(), targetUrl, new Collect('POST', '/up', [], body as IncomingMessage, true));
    expect([r.error?.message, r.body]).toEqual([undefined, 'ok']);
    // Native sends it chunked (the last chunk only); undici, seeing it ended, sends it with no body.
    expect(seen).toEqual(['0 bytes']);
  });

  it('verifies the certificate of an https instance', async (t) => {
    let dir: string | undefined;
    try {
      dir = mkdtempSync(join(tmpdir(), 'upstream-tls-'));
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    } catch {
      if (dir) rmSync(dir, { recursive: true, force: true });
      t.skip();
      return;
    }
    const tls = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (_req, res) => res.end('secret'));
    rmSync(dir, { recursive: true, force: true });
    servers.push(tls);
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
    const r = await send(client(), `https://127.0.0.1:${(tls.address() as AddressInfo).port}`, new Collect('GET', '/'));
    expect(r.status).toBe(0);
    expect(r.error?.code).toBe('DEPTH_ZERO_SELF_SIGNED_CERT');
  });

  it('gets its connections from the connector for the origin\'s scheme, and fails an origin no connector serves', async () => {
    const raw = await rawServer((s) => s.write(OK));
    const tcp = defaultConnectors(1000).for('http:')!;
    const targets: string[] = [];
    const counting: Connector = {
      connect(target, callback) {
        targets.push(`${target.protocol}//${target.hostname}:${target.port}`);
        tcp.connect(target, callback);
      },
    };
    const opts = { upstreamTimeoutMs: 2000, keepAliveTimeoutMs: 4000, keepAliveMaxTimeoutMs: 60_000, connectors: new Connectors(new Map([['http:', counting]])) };
    const c = implementation === 'native' ? new NativeUpstreamClient(opts) : new PortableUpstreamClient(opts);
    clients.push(c);
    expect((await send(c, raw.url, new Collect('GET', '/'))).body).toBe(BODY);
    expect((await send(c, raw.url, new Collect('GET', '/'))).body).toBe(BODY);
    expect(targets).toEqual([`http://127.0.0.1:${new URL(raw.url).port}`]);
    const r = await send(c, 'https://127.0.0.1:1', new Collect('GET', '/'));
    expect([r.status, r.error?.code]).toEqual([0, 'UND_ERR_INVALID_ARG']);
  });

  /**
   * A client whose TCP connections retire when the test adds them to `retiring` (a draining
   * tunnel session's, as tunnel/connector.ts says); `retire()` tells the client, as a GOAWAY does.
   */
  function retiringClient(keepAliveTimeoutMs: number) {
    const tcp = defaultConnectors(1000).for('http:')!;
    const given: Socket[] = [];
    const retiring = new Set<unknown>();
    let listener: (() => void) | undefined;
    const draining: Connector = {
      connect(target, callback) {
        tcp.connect(target, (err, socket) => {
          if (socket !== null) given.push(socket as Socket);
          callback(err, socket);
        });
      },
      retired: (socket) => retiring.has(socket),
      onRetired: (l) => (listener = l),
    };
    const opts = { upstreamTimeoutMs: 2000, keepAliveTimeoutMs, keepAliveMaxTimeoutMs: 60_000, connectors: new Connectors(new Map([['http:', draining]])) };
    const c = implementation === 'native' ? new NativeUpstreamClient(opts) : new PortableUpstreamClient(opts);
    clients.push(c);
    return { c, given, retiring, retire: () => listener!() };
  }

  it('does not reuse a connection its connector says is retired (a draining tunnel session): the next request goes out on a new one', async () => {
    const raw = await rawServer((s) => s.write(OK));
    const { c, given, retiring } = retiringClient(4000);
    expect((await send(c, raw.url, new Collect('GET', '/'))).body).toBe(BODY);
    expect((await send(c, raw.url, new Collect('GET', '/'))).body).toBe(BODY);
    expect(given).toHaveLength(1);
    // Retired while idle: not reused, and closed.
    retiring.add(given[0]);
    expect((await send(c, raw.url, new Collect('GET', '/'))).body).toBe(BODY);
    expect(given).toHaveLength(2);
    await waitFor(() => (given[0]!.destroyed && raw.closed === 1) || undefined, { timeoutMs: 2000, message: 'the retired connection closed' });
    // Retired while its request is out: closed once the answer is complete, never reused.
    const inFlight = send(c, raw.url, new Collect('GET', '/'));
    retiring.add(given[1]);
    expect((await inFlight).body).toBe(BODY);
    expect((await send(c, raw.url, new Collect('GET', '/'))).body).toBe(BODY);
    expect(given).toHaveLength(3);
    await waitFor(() => (given[1]!.destroyed && raw.closed === 2) || undefined, { timeoutMs: 2000, message: 'the second retired connection closed' });
  });

  it('closes its idle connections at once when their connector says some were retired, and only those', async () => {
    const raw = await rawServer((s) => s.write(OK));
    const { c, given, retiring, retire } = retiringClient(30_000);
    // Two idle connections: two requests at once.
    const both = await Promise.all([send(c, raw.url, new Collect('GET', '/')), send(c, raw.url, new Collect('GET', '/'))]);
    expect(both.map((r) => r.body)).toEqual([BODY, BODY]);
    expect(given).toHaveLength(2);
    retiring.add(given[0]);
    retire();
    // Closed without a request to find it and long before the 30 s idle timeout; the other stays.
    await waitFor(() => (given[0]!.destroyed && raw.closed === 1) || undefined, { timeoutMs: 2000, message: 'the retired idle connection closed' });
    expect(given[1]!.destroyed).toBe(false);
    expect((await send(c, raw.url, new Collect('GET', '/'))).body).toBe(BODY);
    expect(given).toHaveLength(2);
  });

  it('reads answers from a connection fed in pieces: a Content-Length body across many, the next answer on the same connection, bytes past the length, a body cut short', async () => {
    const BIG = Array.from({ length: 500 }, (_, i) => String.fromCharCode(97 + (i % 26))).join('');
    const raw = await rawServer((s, head) => {
      const path = head.split(' ')[1];
      if (path === '/big') s.write(`HTTP/1.1 200 OK\r\ncontent-length: ${BIG.length}\r\n\r\n${BIG}`);
      else if (path === '/chunked') s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n');
      else if (path === '/extra') s.write(`HTTP/1.1 200 OK\r\ncontent-length: ${BODY.length}\r\n\r\n${BODY}HTTP/1.1 200 OK\r\n\r\n`);
      else if (path === '/cut') s.end('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial');
    });
    const opts = { upstreamTimeoutMs: 2000, keepAliveTimeoutMs: 4000, keepAliveMaxTimeoutMs: 60_000, connectors: new Connectors(new Map([['http:', piecesConnector(7)]])) };
    const c = implementation === 'native' ? new NativeUpstreamClient(opts) : new PortableUpstreamClient(opts);
    clients.push(c);
    const first = new Collect('GET', '/big');
    expect((await send(c, raw.url, first)).body).toBe(BIG);
    expect(first.completed).toBe(true);
    // Passed on piece by piece (undici joins what one turn read).
    if (implementation === 'native') expect(first.chunks).toBeGreaterThan(50);
    // The same connection reads the next answers whole, whatever their framing.
    expect((await send(c, raw.url, new Collect('GET', '/big'))).body).toBe(BIG);
    expect((await send(c, raw.url, new Collect('GET', '/chunked'))).body).toBe('abcde');
    expect((await send(c, raw.url, new Collect('GET', '/big'))).body).toBe(BIG);
    expect(raw.connections).toBe(1);
    // An answer followed by bytes nobody asked for: the answer is passed on, the connection is not reused.
    const extra = await send(c, raw.url, new Collect('GET', '/extra'));
    expect([extra.status, extra.body, extra.error]).toEqual([200, BODY, undefined]);
    expect((await send(c, raw.url, new Collect('GET', '/big'))).body).toBe(BIG);
    expect(raw.connections).toBe(2);
    // The instance closes before its Content-Length is reached: an error, never a complete answer.
    const cut = new Collect('GET', '/cut');
    const r = await send(c, raw.url, cut);
    expect([r.status, r.body, cut.completed]).toEqual([200, 'partial', false]);
    expect(r.error).toBeInstanceOf(Error);
  });

  it('passes on the error of a connector that fails at once, as it came', async () => {
    const down: Connector = {
      connect(_target, callback) {
        callback(Object.assign(new Error('tunnel down'), { code: 'ECONNREFUSED' }), null);
      },
    };
    const opts = { upstreamTimeoutMs: 2000, keepAliveTimeoutMs: 4000, keepAliveMaxTimeoutMs: 60_000, connectors: new Connectors(new Map([['http:', down]])) };
    const c = implementation === 'native' ? new NativeUpstreamClient(opts) : new PortableUpstreamClient(opts);
    clients.push(c);
    const r = await send(c, 'http://127.0.0.1:1', new Collect('GET', '/'));
    expect([r.status, r.error?.message, r.error?.code]).toEqual([0, 'tunnel down', 'ECONNREFUSED']);
  });

  it('close() closes idle connections and resolves', async () => {
    const raw = await rawServer((s) => s.write(OK));
    const c = build(implementation, OPTS);
    await send(c, raw.url, new Collect('GET', '/'));
    await c.close();
    while (raw.closed === 0) await sleep(10);
    expect(raw.closed).toBe(1);
  });
});

describe('choosing the upstream client (--upstream-client)', () => {
  const settings = { ...OPTS };
  function logger() {
    const lines: { obj: object; msg: string }[] = [];
    return { lines, warn: (obj: object, msg: string) => lines.push({ obj, msg }) };
  }

  it('passes the native start-up check on this Node, so auto runs native without a word', async () => {
    expect(checkNativeParser()).toBeUndefined();
    const log = logger();
    const c = createUpstreamClient('auto', settings, log);
    clients.push(c);
    expect(c.kind).toBe('native');
    expect(log.lines).toEqual([]);
  });

  it('falls back to portable with one warning line when the check fails; native then refuses; portable never checks', async () => {
    const failing = () => 'HTTPParser has no consume()';
    const log = logger();
    const c = createUpstreamClient('auto', settings, log, failing);
    clients.push(c);
    expect(c.kind).toBe('portable');
    expect(log.lines).toHaveLength(1);
    expect(log.lines[0]!.obj).toMatchObject({ reason: 'HTTPParser has no consume()' });
    // The fallback serves requests.
    const raw = await rawServer((s) => s.write(OK));
    expect((await send(c, raw.url, new Collect('GET', '/'))).body).toBe(BODY);

    expect(() => createUpstreamClient('native', settings, logger(), failing)).toThrow(/--upstream-client native: .*HTTPParser has no consume\(\)/);
    let checked = false;
    const p = createUpstreamClient('portable', settings, logger(), () => ((checked = true), undefined));
    clients.push(p);
    expect([p.kind, checked]).toEqual(['portable', false]);
  });
});
