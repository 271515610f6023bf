/**
 * The traffic listener: fastify + @fastify/http-proxy with a per-request upstream. An onRequest
 * hook looks the request up in the live table and picks an instance before any body is read;
 * the proxy plugin then forwards through the router's own undici Agent. Errors are mapped to the
 * contract's answers here, and a failed connection moves the request to another instance.
 */
import fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import httpProxy from '@fastify/http-proxy';
import type { ServerResponse } from 'node:http';
import { Agent } from 'undici';
import type { AppPool, RoutingTable } from '../table/routing-table.js';
import type { Backend } from '../table/backend.js';
import { recordFailure, recordSuccess } from '../health/passive.js';
import type { RouterMetrics } from '../admin/metrics.js';
import { answer, answerMaintenance, answerUnavailable } from './answers.js';
import { downstreamResponseHeaders, upstreamRequestHeaders, upstreamWebSocketHeaders } from './headers.js';
import { normalizeHost } from './host.js';
import { requestIdFor } from './request-id.js';
import { classifyUpstreamError, mayRetry } from './upstream-errors.js';

export interface ProxyLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface ProxyOptions {
  getTable: () => RoutingTable;
  metrics: RouterMetrics;
  log: ProxyLogger;
  connectTimeoutMs: number;
  upstreamTimeoutMs: number;
  keepAliveTimeoutMs: number;
  retryAfterSeconds: number;
  maxAttempts: number;
  accessLog: boolean;
  /** A draining instance's last request or WebSocket ended. */
  onDrained: (backend: Backend) => void;
}

declare module 'fastify' {
  interface FastifyRequest {
    pool: AppPool | null;
    backend: Backend | null;
    attempts: number;
    dispatchedAt: number;
  }
}

/** The fastify request behind a raw response, for the close listener (shared, not a closure). */
const kRequest = Symbol('paas.request');
type TrackedResponse = ServerResponse & { [kRequest]?: FastifyRequest };

/** WebDAV and other methods apps use that fastify does not route by default. */
const EXTRA_METHODS = ['PROPFIND', 'PROPPATCH', 'MKCOL', 'COPY', 'MOVE', 'LOCK', 'UNLOCK', 'SEARCH', 'REPORT', 'MKCALENDAR', 'PURGE', 'LINK', 'UNLINK'];

export interface ProxyServer {
  server: FastifyInstance;
  agent: Agent;
  /**
   * Stops accepting and resolves once every request and WebSocket in flight has ended. Answers
   * sent meanwhile carry `Connection: close`, and connections that fall idle are closed, since
   * Node closes idle keep-alive connections only once, when close() is called.
   */
  close(): Promise<void>;
}

export function createProxyServer(opts: ProxyOptions): ProxyServer {
  const { getTable, metrics, log } = opts;
  const retryAfter = String(opts.retryAfterSeconds);
  let closing = false;

  // TLS verification stays on (reply-from's own Agent turns it off); keep-alive stays below the
  // instances' own so the router never writes to a connection the instance is closing.
  const agent = new Agent({
    connect: { timeout: opts.connectTimeoutMs, rejectUnauthorized: true },
    headersTimeout: opts.upstreamTimeoutMs,
    bodyTimeout: opts.upstreamTimeoutMs,
    keepAliveTimeout: opts.keepAliveTimeoutMs,
    keepAliveMaxTimeout: opts.keepAliveTimeoutMs,
    pipelining: 1,
  });

  const app = fastify({
    logger: false,
    genReqId: requestIdFor,
    requestIdHeader: false,
    // Requests that arrive on an open connection during shutdown are still served.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    routerOptions: { maxParamLength: 8192 },
  });
  for (const method of EXTRA_METHODS) {
    if (!app.supportedMethods.includes(method)) app.addHttpMethod(method, { hasBody: true });
  }
  // Reached only for a method fastify cannot route at all; the contract's 404 still applies.
  app.setNotFoundHandler((_request, reply) => answer(reply, 404));
  app.decorateRequest('pool', null);
  app.decorateRequest('backend', null);
  app.decorateRequest('attempts', 0);
  app.decorateRequest('dispatchedAt', 0);

  function dispatchTo(request: FastifyRequest, reply: FastifyReply, backend: Backend): void {
    request.backend = backend;
    request.attempts++;
    request.dispatchedAt = performance.now();
    backend.inflight++;
    (reply.raw as TrackedResponse)[kRequest] = request;
  }

  function release(backend: Backend): void {
    backend.inflight--;
    if (backend.inflight === 0 && backend.state === 'draining') opts.onDrained(backend);
  }

  function onResponseClosed(this: TrackedResponse): void {
    const request = this[kRequest];
    if (!request) return;
    this[kRequest] = undefined;
    const backend = request.backend;
    if (backend) release(backend);
    const appName = request.pool ? request.pool.name : '';
    metrics.countRequest(appName, this.statusCode);
    if (opts.accessLog) {
      log.info(
        { reqId: request.id, method: request.method, host: request.headers.host, url: request.url, status: this.statusCode, app: appName, instance: backend?.id, attempts: request.attempts, ms: Math.round(performance.now() - request.dispatchedAt) },
        'request',
      );
    }
  }

  app.addHook('onRequest', (request, reply, done) => {
    reply.raw.on('close', onResponseClosed);
    if (closing) reply.header('connection', 'close');
    (reply.raw as TrackedResponse)[kRequest] = request;
    const target = getTable().lookup(normalizeHost(request.headers.host), request.url);
    if (target === undefined) return answer(reply, 404);
    if (target.kind === 'maintenance') return answerMaintenance(reply, target.status, target.message);
    request.pool = target;
    const backend = target.pick(Date.now());
    if (backend === undefined) return answerUnavailable(reply, retryAfter);
    dispatchTo(request, reply, backend);
    done();
  });

  function getUpstream(request: FastifyRequest): string {
    return request.backend!.origin;
  }

  function onUpstreamResponse(request: FastifyRequest, reply: FastifyReply, res: { stream: NodeJS.ReadableStream }): void {
    const backend = request.backend!;
    if (backend.consecutiveFailures > 0) recordSuccess(backend);
    metrics.observeUpstream(request.pool!.name, (performance.now() - request.dispatchedAt) / 1000);
    reply.header('x-request-id', request.id);
    if (closing) reply.header('connection', 'close');
    reply.send(res.stream);
  }

  function onUpstreamError(reply: FastifyReply, { error }: { error: Error }): void {
    const request = reply.request;
    const backend = request.backend!;
    const verdict = classifyUpstreamError(error);
    metrics.upstreamFailures.labels(verdict.reason).inc();
    if (verdict.connectionFailure) recordFailure(backend, Date.now());
    log.warn({ reqId: request.id, app: backend.app, instance: backend.id, origin: backend.origin, reason: verdict.reason, attempt: request.attempts }, 'upstream failed');

    const raw = request.raw;
    const hasBody = raw.headers['content-length'] !== undefined ? raw.headers['content-length'] !== '0' : raw.headers['transfer-encoding'] !== undefined;
    if (request.attempts < opts.maxAttempts && mayRetry(verdict, request.method, hasBody, raw.readableDidRead)) {
      const next = request.pool!.pick(Date.now(), backend);
      if (next !== undefined && next !== backend) {
        release(backend);
        dispatchTo(request, reply, next);
        const q = request.url.indexOf('?');
        // reply-from's types allow HTTP/2 requests; this server is HTTP/1 only.
        reply.from(q >= 0 ? request.url.slice(0, q) : request.url, replyOptions as unknown as Parameters<FastifyReply['from']>[1]);
        return;
      }
    }
    answer(reply, verdict.status);
  }

  const replyOptions = {
    getUpstream,
    rewriteRequestHeaders: upstreamRequestHeaders,
    rewriteHeaders: downstreamResponseHeaders,
    onResponse: onUpstreamResponse,
    onError: onUpstreamError,
    // reply-from retries GETs on a 503 up to ten times by default; an instance's 503 is its answer.
    retryDelay: () => null,
  };

  app.register(httpProxy, {
    upstream: '',
    websocket: true,
    httpMethods: app.supportedMethods,
    internalRewriteLocationHeader: false,
    undici: agent,
    disableRequestLogging: true,
    replyOptions,
    wsClientOptions: { rewriteRequestHeaders: upstreamWebSocketHeaders, handshakeTimeout: opts.connectTimeoutMs },
  } as Parameters<typeof httpProxy>[1]);

  async function close(): Promise<void> {
    closing = true;
    const sweep = setInterval(() => app.server.closeIdleConnections(), 100);
    try {
      await app.close();
    } finally {
      clearInterval(sweep);
    }
  }

  return { server: app, agent, close };
}
