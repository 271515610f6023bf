/**
 * Request forwarding: the request listener of the plain server and of the TLS one (HTTP/1.x
 * requests of Node's server or of the native one, h1-connection.ts, and HTTP/2 streams of
 * Node's core API). It reads the request head
 * (decision/request-head.ts), asks the decision (decision/decide.ts) and either writes the
 * router's own answer (decision/answers.ts) or forwards through the router's upstream client
 * (transport/) with an exchange that writes straight to the raw ServerResponse or HTTP/2 stream.
 *
 * Why not fastify + reply-from: measured on one core, they spent most of each request in
 * per-request objects (header copies, URL building, query re-stringifying, stream piping,
 * hooks); this path reads the client's raw header list once, builds the upstream list in one
 * array, and writes the response with one writeHead(array) and the body chunks as they come
 * (backpressure through the upstream connection's pause/resume).
 *
 * Besides the decision's: failover to another instance on a failed connection, passive
 * ejection, in-flight counts per backend, 502/504 on upstream failure, client aborts freeing the
 * upstream request, access log, metrics.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { Http1Connection, Http1Exchange, RequestBody } from './h1-connection.js';
import type { RouterMetrics } from '../admin/metrics.js';
import { answerHeaders, FAILURE_ANSWER, type Answer } from '../decision/answers.js';
import { decide, retryTarget } from '../decision/decide.js';
import { classifyUpstreamError } from '../decision/failure.js';
import { addForwardedHeaders, forwardedResponseHeaders, hstsOf } from '../decision/forwarded.js';
import { readRequestHead, RequestHead } from '../decision/request-head.js';
import { recordFailure, recordSuccess } from '../health/passive.js';
import type { Upstream, UpstreamClient, UpstreamExchange } from '../transport/upstream.js';
import type { Backend } from '../table/backend.js';
import type { ServedCertificate } from '../table/cert-index.js';
import type { RoutingTable } from '../table/routing-table.js';

export interface ForwardLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** What every request listener (plain HTTP, WebSocket upgrades) is given by the traffic listener. */
export interface ListenerOptions {
  getTable: () => RoutingTable;
  metrics: RouterMetrics;
  log: ForwardLogger;
  retryAfterSeconds: number;
  maxAttempts: number;
  accessLog: boolean;
  /** Where access lines go (--access-log-file); the router's log when not set. */
  accessLogger?: ForwardLogger;
  /** True once the listener is stopping: plain HTTP answers carry `Connection: close`, upgrades get 503. */
  isClosing: () => boolean;
  /** Counts a request against a backend (in flight), and releases it. */
  acquire: (backend: Backend) => void;
  release: (backend: Backend) => void;
  /** What follows the host in a `tls.redirect` Location: `:N` for --public-https-port N, '' for 443. */
  httpsPort: string;
}

/** What a request listener knows of the TLS listener a request came on (null: the plain one). */
export interface TlsEdge {
  /** X-Forwarded-Port: the port the TLS listener accepted the connection on. */
  readonly port: string;
  /** The certificate the connection's handshake served. */
  certOf(socket: Socket): ServedCertificate | null;
  /** Counts a request over TLS by protocol. */
  count(http2: boolean): void;
}

export interface ForwarderOptions extends ListenerOptions {
  client: UpstreamClient;
}

/** A request's attempt at an instance, plain HTTP or an upgrade: its head, the instance tried, and how to try another. */
export interface Attempt extends RequestHead {
  attempts: number;
  dispatch(backend: Backend): void;
}

/**
 * Records a failed attempt (metric, passive health, log line). When `mayRedispatch`, sends the
 * request to another instance if the retry rule allows it and returns 0; else returns the
 * status to answer. `bodyTouched`: some of the request body was read already.
 */
export function upstreamFailure(opts: ListenerOptions, at: Attempt, err: Error, mayRedispatch: boolean, bodyTouched: boolean): 502 | 503 | 504 | 0 {
  const backend = at.backend!;
  const verdict = classifyUpstreamError(err);
  const now = Date.now();
  opts.metrics.upstreamFailures.labels(verdict.reason).inc();
  if (verdict.connectionFailure && recordFailure(backend, now, verdict.reason)) reportEjected(opts, backend, now);
  opts.log.warn({ reqId: at.id, app: backend.app, instance: backend.id, origin: backend.origin, reason: verdict.reason, attempt: at.attempts }, 'upstream failed');
  if (!mayRedispatch) return verdict.status;
  const next = retryTarget(at, backend, verdict, at.attempts, opts.maxAttempts, bodyTouched, now);
  if (next === undefined) return verdict.status;
  opts.release(backend);
  at.backend = null;
  at.dispatch(next);
  return 0;
}

/** One line per ejection (not per failed request), and the backend on the table's list of unhealthy ones. */
function reportEjected(opts: ListenerOptions, backend: Backend, now: number): void {
  opts.getTable().noteUnhealthy(backend);
  opts.log.warn(
    { app: backend.app, instance: backend.id, origin: backend.origin, reason: backend.ejectReason, ejectedMs: backend.ejectedUntil - now, failures: backend.consecutiveFailures },
    'instance ejected',
  );
}

/** The backend answered after an ejection: it is back in rotation. */
export function reportBack(opts: ListenerOptions, backend: Backend): void {
  const since = backend.ejectedSince;
  if (!recordSuccess(backend)) return;
  opts.log.info({ app: backend.app, instance: backend.id, origin: backend.origin, ejectedForMs: Date.now() - since }, 'instance back: it answered after its ejection');
}

/** The Content-Length of an instance's answer (its raw header list), or -1 without one. */
function answerLength(raw: string[]): number {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 14 && (name.charCodeAt(0) | 0x20) === 0x63 /* c */ && name.toLowerCase() === 'content-length') {
      const n = Number(raw[i + 1]);
      return Number.isSafeInteger(n) && n >= 0 ? n : -1;
    }
  }
  return -1;
}

const kExchange = Symbol('paas.exchange');
/** On a client socket: the router answered with an answer that closes the connection. */
const kClosing = Symbol('paas.closing');

/** The router has answered on this connection and closes it after that answer. */
export function closesAfterAnswer(socket: Socket): boolean {
  return (socket as Socket & { [kClosing]?: boolean })[kClosing] === true;
}

type TrackedResponse = ServerResponse & { [kExchange]?: Exchange };

function onResponseClose(this: TrackedResponse): void {
  const ex = this[kExchange];
  if (ex === undefined) return;
  this[kExchange] = undefined;
  ex.closed();
}

/**
 * One client request and its way to an instance; also the upstream client's exchange. The
 * client side is a request and response of Node's HTTP/1.x server (MessageExchange) or an
 * HTTP/2 stream of the core API (StreamExchange).
 */
abstract class Exchange extends RequestHead implements UpstreamExchange {
  attempts = 0;
  readonly startedAt = performance.now();
  dispatchedAt = this.startedAt;
  /** Body bytes sent to the client (the access log's). */
  bytes = 0;
  body: Readable | null = null;
  chunked = false;
  upstream: Upstream | null = null;
  /** Response head written to the client. */
  started = false;
  /** The status answered (as Node's response has it: 200 until a head is written). */
  status = 200;
  done = false;
  /** Body bytes of the answer still to come when the instance gave a Content-Length; else -1. */
  remaining = -1;
  /** The answer's last bytes went out with its end. */
  ended = false;
  private onDrain: (() => void) | null = null;

  constructor(readonly fwd: Forwarder) {
    super();
  }

  abstract readonly http2: boolean;
  /** The answer's head; `statusText` only where the protocol has one. */
  abstract writeHead(status: number, statusText: string, headers: string[]): void;
  /** False: wait for 'drain'. */
  abstract write(chunk: Buffer): boolean;
  abstract onceDrained(resume: () => void): void;
  abstract end(last?: Buffer | string): void;
  /** Cuts the answer: the client sees it incomplete. */
  abstract cut(): void;
  /** A head went out already, or the client is gone. */
  abstract get answered(): boolean;
  abstract get answerFinished(): boolean;
  /** Some of the request body was read. */
  abstract get bodyTouched(): boolean;
  /** Reads the rest of a request body that is not forwarded off and drops it. */
  abstract readOff(): void;
  /** The request body, read by the upstream client when the request has one. */
  abstract requestBody(): Readable;
  /** The connection ends after this answer (HTTP/1.x). */
  abstract closeAfterAnswer(): void;
  abstract get clientAddress(): string | undefined;
  /** The request target as the client sent it (the access log's). */
  abstract get target(): string | undefined;

  dispatch(backend: Backend): void {
    this.backend = backend;
    this.attempts++;
    this.dispatchedAt = performance.now();
    this.upstream = null;
    this.fwd.opts.acquire(backend);
    this.fwd.opts.client.request(backend.origin, this);
  }

  // --- upstream exchange ---

  onHeaders(statusCode: number, statusText: string, rawHeaders: string[]): void {
    const backend = this.backend!;
    const fwd = this.fwd;
    if (backend.consecutiveFailures > 0) reportBack(fwd.opts, backend);
    fwd.opts.metrics.observeUpstream(this.pool!.name, (performance.now() - this.dispatchedAt) / 1000);
    const out = forwardedResponseHeaders(rawHeaders, this.id, !this.http2 && fwd.opts.isClosing(), hstsOf(this));
    this.remaining = answerLength(rawHeaders);
    this.writeHead(statusCode, statusText, out);
    this.started = true;
  }

  onData(chunk: Buffer): boolean {
    this.bytes += chunk.length;
    // The answer's last bytes end the response in the same write: a write then an empty end()
    // costs TLS an empty write of its own (a syscall) and HTTP/2 an empty DATA frame.
    if (chunk.length === this.remaining) {
      this.ended = true;
      this.end(chunk);
      return true;
    }
    if (this.remaining > 0) this.remaining -= chunk.length;
    if (this.write(chunk)) return true;
    // The client reads slower than the instance writes: pause the upstream read until it drains.
    this.onceDrained((this.onDrain ??= () => this.upstream?.resume(this)));
    return false;
  }

  onComplete(): void {
    this.done = true;
    if (!this.ended) this.end();
  }

  onError(err: Error): void {
    if (this.started) {
      // Part of the answer is out: the client must see it cut, not a complete response.
      this.done = true;
      this.fwd.upstreamFailed(this, err, false);
      this.cut();
      return;
    }
    const status = this.fwd.upstreamFailed(this, err, true);
    if (status === 0) return; // dispatched to another instance
    this.fwd.send(this, FAILURE_ANSWER[status]);
  }

  // --- client side ---

  closed(): void {
    if (!this.done && !this.answerFinished) this.upstream?.abort(this);
    const backend = this.backend;
    if (backend !== null) this.fwd.opts.release(backend);
    const fwd = this.fwd;
    const appName = this.pool !== null ? this.pool.name : '';
    fwd.opts.metrics.countRequest(appName, this.status);
    if (fwd.opts.accessLog) {
      (fwd.opts.accessLogger ?? fwd.opts.log).info(
        {
          reqId: this.id,
          client: this.clientAddress,
          method: this.method,
          host: this.hostHeader,
          url: this.target,
          status: this.status,
          bytes: this.bytes,
          app: appName,
          instance: backend?.id,
          upstream: backend?.origin,
          attempts: this.attempts,
          ms: Math.round(performance.now() - this.startedAt),
        },
        'request',
      );
    }
  }
}

/** HTTP/1.x: Node's server request and response. */
class MessageExchange extends Exchange {
  readonly http2 = false;

  constructor(
    fwd: Forwarder,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
  ) {
    super(fwd);
  }

  writeHead(status: number, statusText: string, headers: string[]): void {
    this.status = status;
    if (statusText) this.res.writeHead(status, statusText, headers);
    else this.res.writeHead(status, headers);
  }

  write(chunk: Buffer): boolean {
    return this.res.write(chunk);
  }

  onceDrained(resume: () => void): void {
    this.res.once('drain', resume);
  }

  end(last?: Buffer | string): void {
    this.res.end(last);
  }

  cut(): void {
    this.res.destroy();
  }

  get answered(): boolean {
    return this.res.headersSent || this.res.destroyed;
  }

  get answerFinished(): boolean {
    return this.res.writableFinished;
  }

  get bodyTouched(): boolean {
    return this.req.readableDidRead;
  }

  readOff(): void {
    if (!this.req.complete) this.req.resume();
  }

  requestBody(): Readable {
    return this.req;
  }

  closeAfterAnswer(): void {
    (this.req.socket as Socket & { [kClosing]?: boolean })[kClosing] = true;
  }

  get clientAddress(): string | undefined {
    return this.req.socket?.remoteAddress;
  }

  get target(): string | undefined {
    return this.req.url;
  }
}

function onStreamClose(this: ServerHttp2Stream & { [kExchange]?: Exchange }): void {
  const ex = this[kExchange];
  if (ex === undefined) return;
  this[kExchange] = undefined;
  ex.closed();
}

/** Errors of a stream the client reset: its 'close' follows, which is all the exchange needs. */
function ignoreStreamError(): void {}

/**
 * HTTP/2 through Node's core API: the stream is both the request body and the answer. Node's
 * compatibility API builds a request and a response object (a Readable fed from the stream, and
 * a header map) on top of every stream; this writes the answer's header list as it is.
 */
class StreamExchange extends Exchange {
  readonly http2 = true;
  /** end() was called: the answer is complete once Node has flushed it. */
  private answerEnded = false;

  constructor(
    fwd: Forwarder,
    readonly stream: ServerHttp2Stream,
    /** The session's TLS socket. */
    readonly socket: Socket,
    private readonly rawTarget: string | undefined,
  ) {
    super(fwd);
  }

  writeHead(status: number, _statusText: string, headers: string[]): void {
    this.status = status;
    // Node sorts pseudo-headers first and lower-cases names; HTTP/2 has no reason phrase.
    headers.push(':status', String(status));
    this.stream.respond(headers);
  }

  write(chunk: Buffer): boolean {
    return this.stream.write(chunk);
  }

  onceDrained(resume: () => void): void {
    this.stream.once('drain', resume);
  }

  end(last?: Buffer | string): void {
    const stream = this.stream;
    this.answerEnded = true;
    // A HEAD request, 204 or 304: Node ended the stream with the head.
    if (stream.writableEnded) return;
    if (last === undefined) stream.end();
    else stream.end(last);
  }

  cut(): void {
    this.stream.destroy();
  }

  get answered(): boolean {
    return this.stream.headersSent || this.stream.destroyed;
  }

  get answerFinished(): boolean {
    // Node marks a stream the client reset (RST_STREAM) as finished too, answered or not.
    return this.answerEnded && this.stream.writableFinished;
  }

  get bodyTouched(): boolean {
    return this.stream.readableDidRead;
  }

  readOff(): void {
    if (!this.stream.readableEnded) this.stream.resume();
  }

  requestBody(): Readable {
    return this.stream;
  }

  closeAfterAnswer(): void {}

  get clientAddress(): string | undefined {
    return this.socket.remoteAddress;
  }

  get target(): string | undefined {
    return this.rawTarget;
  }
}

/**
 * HTTP/1.x on the native server (h1-connection.ts): the connection parsed the head and writes
 * the answer to the socket; the body, when there is one, is the connection's RequestBody.
 */
export class SocketExchange extends Exchange implements Http1Exchange {
  readonly http2 = false;
  keepAlive = true;
  answerEnded = false;
  /** Set when the head announces a body (exchangeFor). */
  reqBody: RequestBody | null = null;

  constructor(
    fwd: Forwarder,
    readonly conn: Http1Connection,
    readonly rawTarget: string,
    readonly httpVersion: string,
  ) {
    super(fwd);
  }

  start(): void {
    this.fwd.startSocket(this);
  }

  writeHead(status: number, statusText: string, headers: string[]): void {
    this.status = status;
    this.conn.writeHead(this, this.method, this.httpVersion, status, statusText, headers);
  }

  write(chunk: Buffer): boolean {
    return this.conn.write(chunk);
  }

  onceDrained(resume: () => void): void {
    this.conn.onceDrained(resume);
  }

  end(last?: Buffer | string): void {
    this.conn.end(this, last);
  }

  cut(): void {
    this.conn.socket.destroy();
  }

  get answered(): boolean {
    return this.conn.headed || this.conn.isAnswered(this) || this.conn.socket.destroyed;
  }

  get answerFinished(): boolean {
    return this.answerEnded;
  }

  get bodyTouched(): boolean {
    return this.reqBody !== null && this.reqBody.readableDidRead;
  }

  readOff(): void {
    this.conn.discard(this);
  }

  requestBody(): Readable {
    return this.reqBody!;
  }

  closeAfterAnswer(): void {
    this.conn.closeAfterAnswer();
  }

  get clientAddress(): string | undefined {
    return this.conn.remoteAddress;
  }

  get target(): string | undefined {
    return this.rawTarget;
  }
}

export class Forwarder {
  private readonly retryAfter: string;

  /** `tls`: the TLS listener this forwarder serves, or null for the plain one. */
  constructor(
    readonly opts: ForwarderOptions,
    readonly tls: TlsEdge | null = null,
  ) {
    this.retryAfter = String(opts.retryAfterSeconds);
  }

  /**
   * The server's request listener for non-upgrade HTTP/1.x requests (plain, and over TLS when
   * ALPN chose http/1.1).
   */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const ex = new MessageExchange(this, req, res);
    readRequestHead(ex, req.method!, req.url!, req.httpVersion, req.rawHeaders);
    (res as TrackedResponse)[kExchange] = ex;
    res.on('close', onResponseClose);
    const socket = req.socket;
    const tls = this.tls;
    if (tls !== null) {
      ex.secure = true;
      ex.cert = tls.certOf(socket);
      tls.count(false);
    }
    this.route(ex, socket);
  }

  /**
   * The TLS listener's HTTP/2 streams ('stream' of the core API): `raw` is the request's header
   * list, pseudo-headers first.
   */
  handleStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, raw: string[]): void {
    const target = headers[':path'];
    // The session's socket (a proxy made once per session) rather than the stream's own.
    const socket = stream.session!.socket as Socket;
    const ex = new StreamExchange(this, stream, socket, target);
    readRequestHead(ex, headers[':method'] ?? '', target ?? '', '2.0', raw);
    (stream as ServerHttp2Stream & { [kExchange]?: Exchange })[kExchange] = ex;
    stream.on('close', onStreamClose);
    stream.on('error', ignoreStreamError);
    const tls = this.tls!;
    ex.secure = true;
    ex.cert = tls.certOf(socket);
    tls.count(true);
    // A request has a body unless its HEADERS frame ended the stream; without a Content-Length
    // it goes to the instance chunked.
    if (!ex.hasLength && !stream.endAfterHeaders) ex.hasBody = true;
    // Expect as Node's compatibility API and its HTTP/1.1 server answer it: 100 Continue (the
    // client may wait for it before it sends the body), or a bare 417 for any other expectation.
    const expect = headers.expect;
    if (expect !== undefined) {
      if (expect.toLowerCase() !== '100-continue') {
        ex.done = true;
        ex.writeHead(417, '', []);
        ex.end();
        return;
      }
      stream.additionalHeaders({ ':status': 100 });
    }
    this.route(ex, socket);
  }

  /**
   * A request head of the native HTTP/1.1 server: its exchange, routed when its turn comes
   * (startSocket).
   */
  exchangeFor(conn: Http1Connection, method: string, target: string, httpVersion: string, raw: string[]): SocketExchange {
    const ex = new SocketExchange(this, conn, target, httpVersion);
    readRequestHead(ex, method, target, httpVersion, raw);
    if (ex.hasBody) ex.reqBody = conn.openBody();
    const tls = this.tls;
    if (tls !== null) {
      ex.secure = true;
      ex.cert = tls.certOf(conn.socket);
      tls.count(false);
    }
    return ex;
  }

  /** The native server's exchange's turn: Expect as Node's server answers it, then the decision. */
  startSocket(ex: SocketExchange): void {
    const expect = ex.expect;
    if (expect !== undefined && ex.httpVersion === '1.1') {
      if (expect.toLowerCase() !== '100-continue') {
        ex.done = true;
        ex.writeHead(417, '', ['Content-Length', '0']);
        ex.end();
        return;
      }
      ex.conn.writeContinue();
    }
    this.route(ex, ex.conn.socket);
  }

  /** The decision, then the router's answer or the request on its way to the instance. */
  private route(ex: Exchange, socket: Socket): void {
    const tls = this.tls;
    const answer = decide(this.opts.getTable(), ex, Date.now(), this.opts.httpsPort);
    if (answer !== null) return this.send(ex, answer);
    if (tls === null) addForwardedHeaders(ex, socket.remoteAddress ?? '', 'http');
    else addForwardedHeaders(ex, socket.remoteAddress ?? '', 'https', tls.port);
    if (ex.hasBody) {
      ex.body = ex.requestBody();
      ex.chunked = !ex.hasLength;
    }
    ex.dispatch(ex.backend!);
  }

  upstreamFailed(ex: Exchange, err: Error, mayRedispatch: boolean): 502 | 503 | 504 | 0 {
    return upstreamFailure(this.opts, ex, err, mayRedispatch, ex.bodyTouched);
  }

  /** The router's own answer. */
  send(ex: Exchange, answer: Answer): void {
    ex.done = true;
    if (ex.answered) return;
    ex.writeHead(answer.status, '', answerHeaders(answer, ex.id, this.retryAfter, this.opts.isClosing(), hstsOf(ex), ex.http2));
    // Before end(): the native server's exchange is closed (and logged) by it.
    if (this.opts.accessLog) ex.bytes = Buffer.byteLength(answer.message);
    ex.end(answer.message);
    if (answer.close === true && !ex.http2) {
      ex.closeAfterAnswer();
      return;
    }
    // The request body is not forwarded: read it off so the connection can serve the next request.
    ex.readOff();
  }
}
