/**
 * The lean forwarding path for plain HTTP requests: it runs as the traffic server's request
 * listener, before fastify, and forwards through the router's own upstream client
 * (transport/) with an exchange that writes straight to the raw ServerResponse.
 * WebSocket upgrades (the server's 'upgrade' event) still go through fastify and
 * @fastify/http-proxy.
 *
 * Why: measured on one core, fastify + reply-from spent most of each request in per-request
 * objects (header copies, URL building, query re-stringifying, stream piping, hooks); this path
 * reads the client's raw header list once, builds the upstream list in one array, and writes
 * the response with one writeHead(array) and the body chunks as they come (backpressure through
 * the upstream connection's pause/resume).
 *
 * Behaviour is the contract's, as the fastify path has it: 404/503/maintenance answers with the
 * exact bodies, X-Forwarded-* and X-Request-Id, hop-by-hop headers dropped both ways, failover
 * to another instance on a failed connection, passive ejection, in-flight counts per backend,
 * 502/504 on upstream failure, client aborts freeing the upstream request, access log, metrics.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RouterMetrics } from '../admin/metrics.js';
import { recordFailure, recordSuccess } from '../health/passive.js';
import type { Backend } from '../table/backend.js';
import type { AppPool, RoutingTable } from '../table/routing-table.js';
import { STATUS_TEXT } from './answers.js';
import { connectionListed, HOP_BY_HOP } from './headers.js';
import { normalizeHost } from './host.js';
import { SANE_REQUEST_ID } from './request-id.js';
import { classifyUpstreamError, mayRetry } from './upstream-errors.js';
import type { Upstream, UpstreamClient, UpstreamExchange } from '../transport/upstream.js';

export interface ForwardLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface ForwarderOptions {
  getTable: () => RoutingTable;
  client: UpstreamClient;
  metrics: RouterMetrics;
  log: ForwardLogger;
  retryAfterSeconds: number;
  maxAttempts: number;
  accessLog: boolean;
  /** True once shutdown began: answers carry `Connection: close`. */
  isClosing: () => boolean;
  /** Counts a request against a backend (in flight), and releases it. */
  acquire: (backend: Backend) => void;
  release: (backend: Backend) => void;
}

const TEXT = 'text/plain; charset=utf-8';

/** Request header names (lower-case) never copied upstream as they are. */
const REQUEST_SKIP = new Set([
  ...HOP_BY_HOP,
  // answered by Node already (100 Continue)
  'expect',
  // rewritten by the router
  'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id',
]);

const RESPONSE_SKIP = new Set(HOP_BY_HOP);

const NO_LENGTH_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'CONNECT']);

const kExchange = Symbol('paas.exchange');
type TrackedResponse = ServerResponse & { [kExchange]?: Exchange };

function onResponseClose(this: TrackedResponse): void {
  const ex = this[kExchange];
  if (ex === undefined) return;
  this[kExchange] = undefined;
  ex.closed();
}

/** One client request and its way to an instance; also the upstream client's exchange. */
class Exchange implements UpstreamExchange {
  pool: AppPool | null = null;
  backend: Backend | null = null;
  attempts = 0;
  dispatchedAt = 0;
  readonly method: string;
  readonly path: string;
  hasHost = false;
  body: IncomingMessage | null = null;
  chunked = false;
  upstream: Upstream | null = null;
  /** Response head written to the client. */
  started = false;
  done = false;
  private onDrain: (() => void) | null = null;

  constructor(
    readonly fwd: Forwarder,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly id: string,
    readonly hostHeader: string | undefined,
    /** The upstream header list (built once, reused by a retry). */
    readonly headers: string[],
  ) {
    this.dispatchedAt = performance.now();
    this.method = req.method!;
    this.path = req.url!;
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
    if (backend.consecutiveFailures > 0) recordSuccess(backend);
    fwd.opts.metrics.observeUpstream(this.pool!.name, (performance.now() - this.dispatchedAt) / 1000);
    const out: string[] = [];
    let listed: Set<string> | undefined;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i]!;
      const lower = name.toLowerCase();
      if (RESPONSE_SKIP.has(lower)) {
        if (lower === 'connection') listed = connectionListed(rawHeaders[i + 1]!);
        continue;
      }
      out.push(name, rawHeaders[i + 1]!);
    }
    if (listed !== undefined) {
      for (let i = out.length - 2; i >= 0; i -= 2) {
        if (listed.has(out[i]!.toLowerCase())) out.splice(i, 2);
      }
    }
    out.push('x-request-id', this.id);
    if (fwd.opts.isClosing()) out.push('connection', 'close');
    const res = this.res;
    if (statusText) res.writeHead(statusCode, statusText, out);
    else res.writeHead(statusCode, out);
    this.started = true;
  }

  onData(chunk: Buffer): boolean {
    if (this.res.write(chunk)) return true;
    // The client reads slower than the instance writes: pause the upstream read until it drains.
    this.res.once('drain', (this.onDrain ??= () => this.upstream?.resume(this)));
    return false;
  }

  onComplete(): void {
    this.done = true;
    this.res.end();
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
    this.done = true;
    this.fwd.answer(this, status);
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
      fwd.opts.log.info(
        { reqId: this.id, method: req.method, host: this.hostHeader, url: req.url, status: res.statusCode, app: appName, instance: backend?.id, attempts: this.attempts, ms: Math.round(performance.now() - this.dispatchedAt) },
        'request',
      );
    }
  }
}

export class Forwarder {
  private readonly retryAfter: string;

  constructor(readonly opts: ForwarderOptions) {
    this.retryAfter = String(opts.retryAfterSeconds);
  }

  /** The server's request listener for non-upgrade requests. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const raw = req.rawHeaders;
    const headers: string[] = [];
    let host: string | undefined;
    let givenId: string | undefined;
    let xff: string | undefined;
    let connection: string | undefined;
    let hasBody = false;
    let hasLength = false;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      const value = raw[i + 1]!;
      const lower = name.toLowerCase();
      if (!REQUEST_SKIP.has(lower)) {
        if (lower === 'host') {
          if (host !== undefined) continue;
          host = value;
        } else if (lower === 'content-length') {
          hasLength = true;
          if (value !== '0') hasBody = true;
        }
        headers.push(name, value);
        continue;
      }
      switch (lower) {
        case 'x-forwarded-for':
          xff = xff === undefined ? value : `${xff}, ${value}`;
          break;
        case 'x-request-id':
          givenId ??= value;
          break;
        case 'transfer-encoding':
          hasBody = true;
          break;
        case 'connection':
          connection = connection === undefined ? value : `${connection}, ${value}`;
          break;
      }
    }
    const id = givenId !== undefined && SANE_REQUEST_ID.test(givenId) ? givenId : randomUUID();
    const ex = new Exchange(this, req, res, id, host, headers);
    (res as TrackedResponse)[kExchange] = ex;
    res.on('close', onResponseClose);

    const target = this.opts.getTable().lookup(normalizeHost(host), req.url!);
    if (target === undefined) return this.answer(ex, 404);
    if (target.kind === 'maintenance') return this.send(ex, target.status, target.message, false);
    ex.pool = target;
    const backend = target.pick(Date.now());
    if (backend === undefined) return this.answer(ex, 503);

    if (connection !== undefined) {
      const listed = connectionListed(connection);
      if (listed !== undefined) {
        for (let i = headers.length - 2; i >= 0; i -= 2) {
          if (listed.has(headers[i]!.toLowerCase())) headers.splice(i, 2);
        }
      }
    }
    const remote = req.socket.remoteAddress ?? '';
    headers.push('x-forwarded-for', xff === undefined ? remote : `${xff}, ${remote}`, 'x-forwarded-proto', 'http', 'x-request-id', id);
    if (host !== undefined) headers.push('x-forwarded-host', host);
    // As undici did: a body-less request of a method that usually has one says so.
    if (!hasBody && !hasLength && !NO_LENGTH_METHODS.has(ex.method)) headers.push('content-length', '0');
    ex.hasHost = host !== undefined;
    if (hasBody) {
      ex.body = req;
      ex.chunked = !hasLength;
    }
    ex.dispatch(backend);
  }

  /**
   * Records an upstream failure (metrics, passive health, log). When `mayRedispatch`, sends the
   * request to another instance if that is allowed and returns 0; else returns the answer's status.
   */
  upstreamFailed(ex: Exchange, err: Error, mayRedispatch: boolean): 502 | 504 | 0 {
    const backend = ex.backend!;
    const verdict = classifyUpstreamError(err);
    this.opts.metrics.upstreamFailures.labels(verdict.reason).inc();
    if (verdict.connectionFailure) recordFailure(backend, Date.now());
    this.opts.log.warn({ reqId: ex.id, app: backend.app, instance: backend.id, origin: backend.origin, reason: verdict.reason, attempt: ex.attempts }, 'upstream failed');
    if (!mayRedispatch) return verdict.status;
    const req = ex.req;
    if (ex.attempts < this.opts.maxAttempts && mayRetry(verdict, req.method!, ex.body !== null, req.readableDidRead)) {
      const next = ex.pool!.pick(Date.now(), backend);
      if (next !== undefined && next !== backend) {
        this.opts.release(backend);
        ex.backend = null;
        ex.dispatch(next);
        return 0;
      }
    }
    return verdict.status;
  }

  answer(ex: Exchange, status: keyof typeof STATUS_TEXT): void {
    this.send(ex, status, STATUS_TEXT[status], status === 503);
  }

  send(ex: Exchange, status: number, body: string, retryAfter: boolean): void {
    ex.done = true;
    const res = ex.res;
    if (res.headersSent || res.destroyed) return;
    const out: string[] = ['content-type', TEXT, 'content-length', String(Buffer.byteLength(body)), 'x-request-id', ex.id];
    if (retryAfter) out.push('retry-after', this.retryAfter);
    if (this.opts.isClosing()) out.push('connection', 'close');
    res.writeHead(status, out);
    res.end(body);
    // The request body is not forwarded: read it off so the connection can serve the next request.
    if (!ex.req.complete) ex.req.resume();
  }
}
