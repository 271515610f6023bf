/**
 * The native upstream client (--upstream-client native): a keep-alive pool of connections per
 * origin, one request per connection at a time (no pipelining), answers parsed by Node's own
 * llhttp binding (http-parser.ts), reading plain TCP connections straight from the handle.
 *
 * Why not undici on the fast path: the router spends nearly all of each request in Node's HTTP
 * server and its upstream client. undici builds and validates a Request per dispatch (headers the
 * server already parsed are checked again), parses in wasm, and keeps queues and per-request
 * timers. This client writes the request head as one latin1 string; Node's native parser reads
 * plain http connections straight from the TCP handle (as Node's server does) and hands over
 * header strings and body Buffers. It relies on Node internals, so the router starts it only
 * after native-check.ts parsed a canned answer with them, and otherwise runs the portable client
 * (portable-client.ts), which keeps the same behaviour on public APIs.
 *
 * Kept from undici (see upstream.ts):
 * - keep-alive per connection: an instance announcing `Keep-Alive: timeout=N` is held to N - 2 s,
 *   capped at keepAliveMaxTimeoutMs (below 0: not reused); otherwise keepAliveTimeoutMs.
 * - upstreamTimeoutMs of silence while waiting for the head or the next body bytes, not counted
 *   while the answer is paused for a slow client or the request body is still coming from the
 *   client; undici's error codes (UND_ERR_HEADERS_TIMEOUT, UND_ERR_BODY_TIMEOUT, UND_ERR_SOCKET).
 * - connections from the origin scheme's Connector (connect timeout, verified TLS, sessions).
 * - request bodies streamed with backpressure (chunked when the client sent no length), answers
 *   streamed with backpressure through the handler's onData return value and resume().
 * Different: the retry rule of upstream.ts (undici instead defers each reuse by a setImmediate to
 * catch a pending FIN first, and fails the request when it loses the race).
 */
import type { Duplex, Readable } from 'node:stream';
import type { ConnectTarget, Connector } from './connector.js';
import { loadHttpParser, type HttpParserClass, type NativeParser, type OnBody, type OnExecute, type OnHeaders, type OnHeadersComplete, type OnMessageComplete, type StreamHandle } from './http-parser.js';
import { ANNOUNCED_KEEPALIVE_MARGIN_MS, noTransportError, UpstreamError, writeAgainOnFreshConnection, type Upstream, type UpstreamClient, type UpstreamClientOptions, type UpstreamExchange } from './upstream.js';

const kConn = Symbol('paas.upstream.conn');
type Tracked<T> = T & { [kConn]?: Conn };

export class NativeUpstreamClient implements UpstreamClient {
  readonly kind = 'native';
  readonly HTTPParser: HttpParserClass;
  private readonly pools = new Map<string, OriginPool>();
  private open = 0;
  private closing = false;
  private onAllClosed: (() => void) | null = null;

  constructor(readonly opts: UpstreamClientOptions) {
    this.HTTPParser = loadHttpParser();
    opts.connectors.onRetired(() => this.closeRetiredIdle());
  }

  /** Closes the idle connections their connector now says are retired (their 'close' takes them out of the pool). */
  private closeRetiredIdle(): void {
    for (const pool of this.pools.values()) {
      if (pool.connector.retired === undefined) continue;
      for (const conn of pool.idle) if (pool.connector.retired(conn.socket!)) conn.socket!.destroy();
    }
  }

  request(origin: string, ex: UpstreamExchange): void {
    let pool = this.pools.get(origin);
    if (pool === undefined) {
      const url = new URL(origin);
      const connector = this.opts.connectors.for(url.protocol);
      if (connector === undefined) {
        ex.onError(noTransportError(origin));
        return;
      }
      pool = new OriginPool(this, origin, url, connector);
      this.pools.set(origin, pool);
    }
    let conn = pool.idle.pop();
    // Destroyed this tick (idle timeout, the instance's FIN): its 'close' has not run yet.
    while (conn !== undefined && (conn.socket!.destroyed || pool.connector.retired?.(conn.socket!) === true)) {
      if (!conn.socket!.destroyed) conn.socket!.destroy();
      conn = pool.idle.pop();
    }
    if (conn !== undefined) conn.start(ex, true);
    else this.connect(pool, ex);
  }

  connect(pool: OriginPool, ex: UpstreamExchange): void {
    this.open++;
    pool.open++;
    const conn = new Conn(pool);
    // The exchange first: a connector may call back at once.
    conn.start(ex, false);
    pool.connector.connect(pool.target, (err, socket) => conn.connected(err, socket));
  }

  closed(conn: Conn): void {
    const pool = conn.pool;
    const i = pool.idle.lastIndexOf(conn);
    if (i >= 0) pool.idle.splice(i, 1);
    if (--pool.open === 0 && this.pools.get(pool.origin) === pool) this.pools.delete(pool.origin);
    if (--this.open === 0 && this.onAllClosed !== null) this.onAllClosed();
  }

  /** A connection whose answer is complete: kept for the next request, or closed. */
  release(conn: Conn): void {
    if (this.closing || !conn.keepAlive || conn.sendingBody || conn.pool.connector.retired?.(conn.socket!) === true) {
      conn.socket!.destroy();
      return;
    }
    conn.unpause();
    conn.armIdle();
    conn.pool.idle.push(conn);
  }

  get isClosing(): boolean {
    return this.closing;
  }

  close(): Promise<void> {
    this.closing = true;
    for (const pool of this.pools.values()) {
      for (const conn of pool.idle.splice(0)) conn.socket!.destroy();
    }
    if (this.open === 0) return Promise.resolve();
    return new Promise((resolve) => (this.onAllClosed = resolve));
  }
}

class OriginPool {
  /** Idle connections, most recently used last (reused first: least likely to be timed out). */
  readonly idle: Conn[] = [];
  open = 0;
  readonly target: ConnectTarget;
  /** Host header for requests that came without one. */
  readonly authority: string;
  /** The last Keep-Alive value seen and its idle time: an instance announces the same one each time. */
  private announced = '';
  private announcedMs = 0;

  constructor(
    readonly client: NativeUpstreamClient,
    readonly origin: string,
    url: URL,
    readonly connector: Connector,
  ) {
    const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    this.target = { protocol: url.protocol, hostname, port: url.port };
    this.authority = url.host;
  }

  /** Idle time for a connection whose last answer carried this Keep-Alive value. */
  keepAliveMs(value: string): number {
    if (value !== this.announced) {
      const opts = this.client.opts;
      const m = /(?:^|[\s,])timeout\s*=\s*(\d+)/i.exec(value);
      this.announced = value;
      this.announcedMs = m === null ? opts.keepAliveTimeoutMs : Math.min(Number(m[1]) * 1000 - ANNOUNCED_KEEPALIVE_MARGIN_MS, opts.keepAliveMaxTimeoutMs);
    }
    return this.announcedMs;
  }
}

class Conn implements Upstream {
  /** Null until the connector called back with a connection. */
  socket: Tracked<Duplex> | null = null;
  readonly parser: Tracked<NativeParser>;
  ex: UpstreamExchange | null = null;
  /** The current request went out on a connection that had already served one. */
  reused = false;
  /** Bytes of the current answer arrived. */
  received = false;
  /** The final (non-1xx) head of the current answer arrived. */
  headed = false;
  isHead = false;
  keepAlive = false;
  idleMs: number;
  sendingBody = false;
  bodyPaused = false;
  paused = false;
  error: Error | null = null;
  /** Header pairs llhttp handed over before the head was complete (more than 32 pairs). */
  partial: string[] | null = null;
  /** The TCP handle llhttp reads from directly (plain TCP); null: fed from 'data' events (TLS, other streams). */
  handle: StreamHandle | null = null;
  /**
   * Body bytes of the current answer still to come that are passed on as they arrive, without
   * the parser (connections fed from 'data' events, answers with a Content-Length): llhttp
   * copies every body chunk it parses into a new Buffer, one more allocation per byte.
   */
  bodyLeft = 0;
  /** upstreamTimeoutMs of silence; refreshed on each read and write of a request. */
  silenceTimer: NodeJS.Timeout | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  private idleTimerMs = 0;

  constructor(readonly pool: OriginPool) {
    const client = pool.client;
    this.idleMs = client.opts.keepAliveTimeoutMs;
    const HTTPParser = client.HTTPParser;
    const parser: Tracked<NativeParser> = new HTTPParser();
    parser.initialize(HTTPParser.RESPONSE, this, 0, 0);
    parser[kConn] = this;
    parser[HTTPParser.kOnHeaders] = parserOnHeaders;
    parser[HTTPParser.kOnHeadersComplete] = parserOnHeadersComplete;
    parser[HTTPParser.kOnBody] = parserOnBody;
    parser[HTTPParser.kOnMessageComplete] = parserOnMessageComplete;
    this.parser = parser;
  }

  start(ex: UpstreamExchange, reused: boolean): void {
    this.ex = ex;
    ex.upstream = this;
    this.reused = reused;
    this.received = false;
    this.headed = false;
    this.isHead = ex.method === 'HEAD';
    this.sendingBody = ex.body !== null;
    // Not connected yet: sent once connected. The body is read only then, so a refused
    // connection leaves it untouched and the request may still go to another instance.
    if (this.socket !== null) this.send(ex);
  }

  private send(ex: UpstreamExchange): void {
    this.silenceTimer?.refresh();
    let head = `${ex.method} ${ex.path} HTTP/1.1\r\n`;
    const headers = ex.headers;
    for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    if (!ex.hasHost) head += `host: ${this.pool.authority}\r\n`;
    head += ex.chunked ? 'transfer-encoding: chunked\r\n\r\n' : '\r\n';
    this.socket!.write(head, 'latin1');
    if (ex.body !== null) this.pipeBody(ex.body);
  }

  /** The connector's answer: a connection to send the exchange on, or why there is none. */
  connected(err: Error | null, stream: Duplex | null): void {
    if (err !== null || stream === null) {
      this.error ??= err ?? new UpstreamError('no connection', 'UND_ERR_SOCKET');
      this.onClose();
      return;
    }
    const socket: Tracked<Duplex> = stream;
    socket[kConn] = this;
    this.socket = socket;
    socket.on('end', onSocketEnd);
    socket.on('drain', onSocketDrain);
    socket.on('error', onSocketError);
    socket.on('close', onSocketClose);
    const timeoutMs = this.pool.client.opts.upstreamTimeoutMs;
    if (timeoutMs > 0) {
      this.silenceTimer = setTimeout(onSilenceTimeout, timeoutMs, this);
      this.silenceTimer.unref();
    }
    // As Node's own server does with its connections: llhttp reads the TCP handle in C++, with
    // no Buffer per read and no stream machinery. TLS and other streams have no such handle.
    const handle = (socket as unknown as { _handle?: StreamHandle | null })._handle;
    if ((socket as { encrypted?: boolean }).encrypted !== true && handle != null && handle._externalStream !== undefined) {
      this.handle = handle;
      this.parser[this.pool.client.HTTPParser.kOnExecute] = parserOnExecute;
      this.parser.consume(handle);
      socket.resume();
    } else {
      socket.on('data', onSocketData);
    }
    const ex = this.ex;
    // The exchange was aborted while the connection was being made.
    if (ex === null) socket.destroy();
    else this.send(ex);
  }

  pipeBody(body: Tracked<Readable>): void {
    // Ended before anything read it: an HTTP/2 stream whose END_STREAM came on an empty DATA
    // frame emits 'end' unread, and never again.
    if (body.readableEnded) {
      this.bodyEnded();
      return;
    }
    body[kConn] = this;
    body.on('data', onBodyData);
    body.on('end', onBodyEnd);
  }

  /** The whole request body is written: the last chunk of a chunked one. */
  bodyEnded(): void {
    if (this.ex!.chunked) this.socket!.write('0\r\n\r\n', 'latin1');
    this.sendingBody = false;
  }

  /** Stops forwarding the request body; `drain` reads the rest off so the client's connection stays usable. */
  stopBody(body: Tracked<Readable>, drain: boolean): void {
    if (body[kConn] !== this) return;
    body[kConn] = undefined;
    body.removeListener('data', onBodyData);
    body.removeListener('end', onBodyEnd);
    this.bodyPaused = false;
    if (drain) body.resume();
  }

  abort(ex: UpstreamExchange): void {
    if (this.ex !== ex) return;
    this.ex = null;
    if (ex.body !== null) this.stopBody(ex.body, false);
    this.socket?.destroy();
  }

  resume(ex: UpstreamExchange): void {
    if (this.ex === ex) this.unpause();
  }

  pause(): void {
    this.paused = true;
    const handle = this.handle;
    if (handle === null) {
      this.socket!.pause();
    } else if (handle.reading) {
      handle.reading = false;
      handle.readStop();
    }
  }

  unpause(): void {
    if (!this.paused) return;
    this.paused = false;
    this.silenceTimer?.refresh();
    const handle = this.handle;
    if (handle === null) {
      this.socket!.resume();
    } else if (!handle.reading && !this.socket!.destroyed) {
      handle.reading = true;
      handle.readStart();
    }
  }

  fail(err: Error): void {
    this.error ??= err;
    this.socket!.destroy();
  }

  armIdle(): void {
    if (this.idleTimer !== null && this.idleTimerMs === this.idleMs) {
      this.idleTimer.refresh();
      return;
    }
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimerMs = this.idleMs;
    this.idleTimer = setTimeout(onIdleTimeout, this.idleMs, this);
    this.idleTimer.unref();
  }

  /** The answer is complete: the connection goes back to the pool (or is closed) and the exchange ends. */
  complete(ex: UpstreamExchange): void {
    this.ex = null;
    // The instance answered before the whole body was sent: the rest is read off and dropped.
    if (ex.body !== null) this.stopBody(ex.body, this.sendingBody);
    this.pool.client.release(this);
    ex.onComplete();
  }

  /** Body bytes read past the parser (bodyLeft); the last ones complete the answer. */
  passBody(ex: UpstreamExchange, data: Buffer): void {
    const left = this.bodyLeft;
    if (data.length < left) {
      this.bodyLeft = left - data.length;
      if (!ex.onData(data) && !this.paused) this.pause();
      return;
    }
    this.bodyLeft = 0;
    if (data.length > left) {
      // Bytes past the answer answer nothing we asked: the connection is not reused.
      this.keepAlive = false;
      data = data.subarray(0, left);
    }
    // llhttp still waits for the body it did not read: it starts afresh for the next answer.
    this.parser.initialize(this.pool.client.HTTPParser.RESPONSE, this, 0, 0);
    ex.onData(data);
    if (this.ex === ex) this.complete(ex);
  }

  onClose(): void {
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    if (this.silenceTimer !== null) clearTimeout(this.silenceTimer);
    if (this.handle !== null) this.parser.unconsume();
    this.parser.close();
    const client = this.pool.client;
    const ex = this.ex;
    if (ex === null) {
      client.closed(this);
      return;
    }
    this.ex = null;
    if (ex.body !== null) this.stopBody(ex.body, false);
    const err = this.error ?? new UpstreamError('other side closed', 'UND_ERR_SOCKET');
    const retry = writeAgainOnFreshConnection(ex, err, this.reused, this.received) && !client.isClosing;
    // The fresh connection is counted before this one is let go, so the pool stays registered.
    if (retry) client.connect(this.pool, ex);
    client.closed(this);
    if (!retry) ex.onError(err);
  }
}

function onIdleTimeout(conn: Conn): void {
  if (conn.ex === null) conn.socket!.destroy();
}

function onSocketData(this: Tracked<Duplex>, data: Buffer): void {
  const conn = this[kConn]!;
  if (conn.ex === null) {
    // Bytes on an idle connection answer nothing we asked: the connection cannot be trusted.
    this.destroy();
    return;
  }
  conn.received = true;
  conn.silenceTimer?.refresh();
  if (conn.bodyLeft > 0) {
    conn.passBody(conn.ex, data);
    return;
  }
  const ret = conn.parser.execute(data);
  if (ret instanceof Error) conn.fail(ret);
}

/** After llhttp parsed what it read from the handle itself: bytes parsed, or the parse error. */
const parserOnExecute: OnExecute = function (ret) {
  const conn = (this as Tracked<NativeParser>)[kConn]!;
  if (ret instanceof Error) {
    conn.fail(ret);
    return;
  }
  if (conn.ex === null) return;
  conn.received = true;
  conn.silenceTimer?.refresh();
};

function onSocketEnd(this: Tracked<Duplex>): void {
  const conn = this[kConn]!;
  // An answer without length ends with the connection: finish() completes it.
  if (conn.ex !== null && conn.headed) {
    const err = conn.parser.finish();
    if (err !== undefined) conn.error ??= err;
  }
  this.destroy();
}

function onSilenceTimeout(conn: Conn): void {
  if (conn.ex === null) return;
  // Paused for a slow client, or still sending the client's body while the instance reads it:
  // the client is the slow one. Looked at again after another period.
  if (conn.paused || (conn.sendingBody && !conn.socket!.writableNeedDrain)) {
    conn.silenceTimer!.refresh();
    return;
  }
  conn.fail(conn.headed ? new UpstreamError('body timeout', 'UND_ERR_BODY_TIMEOUT') : new UpstreamError('headers timeout', 'UND_ERR_HEADERS_TIMEOUT'));
}

function onSocketDrain(this: Tracked<Duplex>): void {
  const conn = this[kConn]!;
  if (!conn.bodyPaused) return;
  conn.bodyPaused = false;
  conn.ex?.body?.resume();
}

function onSocketError(this: Tracked<Duplex>, err: Error): void {
  this[kConn]!.error ??= err;
}

function onSocketClose(this: Tracked<Duplex>): void {
  this[kConn]!.onClose();
}

function onBodyData(this: Tracked<Readable>, chunk: Buffer): void {
  const conn = this[kConn]!;
  const socket = conn.socket!;
  let ok: boolean;
  conn.silenceTimer?.refresh();
  if (conn.ex!.chunked) {
    socket.cork();
    socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
    socket.write(chunk);
    ok = socket.write('\r\n', 'latin1');
    socket.uncork();
  } else {
    ok = socket.write(chunk);
  }
  if (!ok) {
    conn.bodyPaused = true;
    this.pause();
  }
}

function onBodyEnd(this: Tracked<Readable>): void {
  const conn = this[kConn]!;
  conn.bodyEnded();
  conn.stopBody(this, false);
}

const parserOnHeaders: OnHeaders = function (headers) {
  const conn = (this as Tracked<NativeParser>)[kConn]!;
  if (conn.partial === null) conn.partial = headers;
  else for (const h of headers) conn.partial.push(h);
};

const parserOnHeadersComplete: OnHeadersComplete = function (_major, _minor, headers, _method, _url, statusCode, statusMessage, upgrade, shouldKeepAlive) {
  const conn = (this as Tracked<NativeParser>)[kConn]!;
  let list = headers ?? [];
  if (conn.partial !== null) {
    list = headers === undefined ? conn.partial : conn.partial.concat(headers);
    conn.partial = null;
  }
  const ex = conn.ex;
  if (ex === null) {
    // An answer on an idle connection (read by llhttp from the handle): nothing asked for it.
    conn.fail(new UpstreamError('unrequested answer', 'UND_ERR_SOCKET'));
    return 1;
  }
  conn.received = true;
  if (statusCode < 200) {
    // The router never asks for an upgrade (Upgrade is hop-by-hop and not forwarded).
    if (statusCode === 101 || upgrade) conn.fail(new UpstreamError('unrequested upgrade', 'UND_ERR_SOCKET'));
    // Interim answers (100, 103) are not passed on; the final one follows on this connection.
    return 1;
  }
  conn.headed = true;
  conn.keepAlive = shouldKeepAlive;
  const pool = conn.pool;
  let idleMs = pool.client.opts.keepAliveTimeoutMs;
  // Passed on past the parser: a body of one Content-Length (llhttp refused several that
  // differ), no Transfer-Encoding, on a connection llhttp does not read itself.
  let length = -1;
  let framed = conn.handle === null && !conn.isHead && statusCode !== 204 && statusCode !== 304;
  for (let i = 0; i < list.length; i += 2) {
    const name = list[i]!;
    if (name.length === 10 && (name.charCodeAt(0) | 0x20) === 0x6b /* k */ && name.toLowerCase() === 'keep-alive') idleMs = pool.keepAliveMs(list[i + 1]!);
    else if (framed && name.length === 14 && (name.charCodeAt(0) | 0x20) === 0x63 /* c */ && name.toLowerCase() === 'content-length') length = Number(list[i + 1]);
    else if (framed && name.length === 17 && (name.charCodeAt(0) | 0x20) === 0x74 /* t */ && name.toLowerCase() === 'transfer-encoding') framed = false;
  }
  if (idleMs <= 0) conn.keepAlive = false;
  else conn.idleMs = idleMs;
  // The rest of this read still goes through the parser (parserOnBody counts it down).
  conn.bodyLeft = framed && Number.isSafeInteger(length) && length > 0 ? length : 0;
  try {
    ex.onHeaders(statusCode, statusMessage, list);
  } catch (err) {
    // A head the client side refuses (writeHead throws): nothing more of this answer is passed on.
    conn.fail(err as Error);
  }
  return conn.isHead ? 1 : 0;
};

const parserOnBody: OnBody = function (chunk) {
  const conn = (this as Tracked<NativeParser>)[kConn]!;
  const ex = conn.ex;
  if (ex === null || conn.error !== null) return;
  if (conn.bodyLeft > 0) conn.bodyLeft -= chunk.length;
  if (!ex.onData(chunk) && !conn.paused) conn.pause();
};

const parserOnMessageComplete: OnMessageComplete = function () {
  const conn = (this as Tracked<NativeParser>)[kConn]!;
  // Trailers arrive as a late header list: dropped, as they were with undici.
  conn.partial = null;
  const ex = conn.ex;
  // An interim (1xx) answer completing, or one nobody waits for any more.
  if (ex === null || !conn.headed || conn.error !== null) return;
  conn.complete(ex);
};
