/**
 * Plain HTTP forwarding: the traffic server's request listener. It reads the request head
 * (decision/request-head.ts), asks the decision (decision/decide.ts) and either writes the
 * router's own answer (decision/answers.ts) or forwards through the router's upstream client
 * (transport/) with an exchange that writes straight to the raw ServerResponse.
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
import type { Http2ServerRequest } from 'node:http2';
import type { Socket } from 'node:net';
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
export function upstreamFailure(opts: ListenerOptions, at: Attempt, err: Error, mayRedispatch: boolean, bodyTouched: boolean): 502 | 504 | 0 {
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

/** One client request and its way to an instance; also the upstream client's exchange. */
class Exchange extends RequestHead implements UpstreamExchange {
  attempts = 0;
  readonly startedAt = performance.now();
  dispatchedAt = this.startedAt;
  /** Body bytes sent to the client (the access log's). */
  bytes = 0;
  body: IncomingMessage | null = null;
  chunked = false;
  upstream: Upstream | null = null;
  /** Response head written to the client. */
  started = false;
  /** An HTTP/2 stream (Node's compatibility request and response). */
  http2 = false;
  done = false;
  /** Body bytes of the answer still to come when the instance gave a Content-Length; else -1. */
  remaining = -1;
  /** The answer's last bytes went out with res.end(). */
  ended = false;
  private onDrain: (() => void) | null = null;

  constructor(
    readonly fwd: Forwarder,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
  ) {
    super();
  }

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
    const res = this.res;
    // HTTP/2 has no reason phrase (Node warns when given one).
    if (statusText && !this.http2) res.writeHead(statusCode, statusText, out);
    else res.writeHead(statusCode, out);
    this.started = true;
  }

  onData(chunk: Buffer): boolean {
    this.bytes += chunk.length;
    // The answer's last bytes end the response in the same write: a write then an empty end()
    // costs TLS an empty write of its own (a syscall) and HTTP/2 an empty DATA frame.
    if (chunk.length === this.remaining) {
      this.ended = true;
      this.res.end(chunk);
      return true;
    }
    if (this.remaining > 0) this.remaining -= chunk.length;
    if (this.res.write(chunk)) return true;
    // The client reads slower than the instance writes: pause the upstream read until it drains.
    this.res.once('drain', (this.onDrain ??= () => this.upstream?.resume(this)));
    return false;
  }

  onComplete(): void {
    this.done = true;
    if (!this.ended) this.res.end();
  }

  onError(err: Error): void {
    const res = this.res;
    if (this.started) {
      // Part of the answer is out: the client must see it cut, not a complete response.
      this.done = true;
      this.fwd.upstreamFailed(this, err, false);
      res.destroy();
      return;
    }
    const status = this.fwd.upstreamFailed(this, err, true);
    if (status === 0) return; // dispatched to another instance
    this.fwd.send(this, FAILURE_ANSWER[status]);
  }

  // --- client side ---

  closed(): void {
    const res = this.res;
    if (!this.done && !res.writableFinished) this.upstream?.abort(this);
    const backend = this.backend;
    if (backend !== null) this.fwd.opts.release(backend);
    const fwd = this.fwd;
    const appName = this.pool !== null ? this.pool.name : '';
    fwd.opts.metrics.countRequest(appName, res.statusCode);
    if (fwd.opts.accessLog) {
      const req = this.req;
      (fwd.opts.accessLogger ?? fwd.opts.log).info(
        {
          reqId: this.id,
          client: req.socket?.remoteAddress,
          method: req.method,
          host: this.hostHeader,
          url: req.url,
          status: res.statusCode,
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
   * The server's request listener for non-upgrade requests: HTTP/1.x, and on the TLS listener
   * also HTTP/2 streams through Node's compatibility API (same shape; see README, Design).
   */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const ex = new Exchange(this, req, res);
    readRequestHead(ex, req.method!, req.url!, req.httpVersion, req.rawHeaders);
    (res as TrackedResponse)[kExchange] = ex;
    res.on('close', onResponseClose);
    const tls = this.tls;
    let socket: Socket = req.socket;
    if (tls !== null) {
      ex.secure = true;
      ex.http2 = req.httpVersionMajor === 2;
      // An HTTP/2 request's own `socket` is a proxy made per stream; its session's is made once.
      if (ex.http2) socket = (req as unknown as Http2ServerRequest).stream.session!.socket as Socket;
      ex.cert = tls.certOf(socket);
      tls.count(ex.http2);
      // An HTTP/2 request has a body unless its HEADERS frame ended the stream; without a
      // Content-Length it goes to the instance chunked.
      if (ex.http2 && !ex.hasLength && !(req as unknown as Http2ServerRequest).stream.endAfterHeaders) ex.hasBody = true;
    }

    const answer = decide(this.opts.getTable(), ex, Date.now(), this.opts.httpsPort);
    if (answer !== null) return this.send(ex, answer);
    if (tls === null) addForwardedHeaders(ex, socket.remoteAddress ?? '', 'http');
    else addForwardedHeaders(ex, socket.remoteAddress ?? '', 'https', tls.port);
    if (ex.hasBody) {
      ex.body = req;
      ex.chunked = !ex.hasLength;
    }
    ex.dispatch(ex.backend!);
  }

  upstreamFailed(ex: Exchange, err: Error, mayRedispatch: boolean): 502 | 504 | 0 {
    return upstreamFailure(this.opts, ex, err, mayRedispatch, ex.req.readableDidRead);
  }

  /** The router's own answer. */
  send(ex: Exchange, answer: Answer): void {
    ex.done = true;
    const res = ex.res;
    if (res.headersSent || res.destroyed) return;
    res.writeHead(answer.status, answerHeaders(answer, ex.id, this.retryAfter, this.opts.isClosing(), hstsOf(ex), ex.http2));
    res.end(answer.message);
    if (this.opts.accessLog) ex.bytes = Buffer.byteLength(answer.message);
    if (answer.close === true && !ex.http2) {
      (ex.req.socket as Socket & { [kClosing]?: boolean })[kClosing] = true;
      return;
    }
    // The request body is not forwarded: read it off so the connection can serve the next request.
    if (!ex.req.complete) ex.req.resume();
  }
}
