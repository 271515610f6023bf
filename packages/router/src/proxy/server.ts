/**
 * The traffic listener. Plain HTTP requests take the lean path (forward.ts): the server's own
 * request listener looks the request up in the live table, picks an instance and forwards it
 * through the router's upstream client (upstream/client.ts), writing to the raw response.
 * fastify + @fastify/http-proxy stay the frame for the rest: WebSocket upgrades (an onRequest
 * hook does the same lookup and pick, the proxy plugin forwards with a per-request upstream)
 * and methods fastify does not route (404). Errors are mapped to the contract's answers on
 * both paths, and a failed connection moves the request to another instance.
 */
import fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import httpProxy from '@fastify/http-proxy';
import { createRequire } from 'node:module';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AppPool, RoutingTable } from '../table/routing-table.js';
import type { Backend } from '../table/backend.js';
import type { RouterMetrics } from '../admin/metrics.js';
import { answer, answerMaintenance, answerUnavailable } from './answers.js';
import { Forwarder } from './forward.js';
import { upstreamWebSocketHeaders } from './headers.js';
import { normalizeHost } from './host.js';
import { requestIdFor } from './request-id.js';
import { UpstreamClient } from './upstream/client.js';

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

// Required, not imported: since Node 22 an ES import of node:http builds its ESM facade, which reads
// every export, and the lazy WebSocket ones load Node's bundled undici (tens of ms at start-up).
const { createServer } = createRequire(import.meta.url)('node:http') as typeof import('node:http');

/** The fastify request behind a raw response, for the close listener (shared, not a closure). */
const kRequest = Symbol('paas.request');
type TrackedResponse = ServerResponse & { [kRequest]?: FastifyRequest };

/** The longest idle time an instance's own Keep-Alive announcement may give an upstream connection. */
const MAX_ANNOUNCED_KEEPALIVE_MS = 60_000;

export interface ProxyServer {
  server: FastifyInstance;
  /** The keep-alive connections to instances. */
  upstream: UpstreamClient;
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
  // instances' own so the router never writes to a connection the instance is closing: an
  // instance that announces its idle timeout (`Keep-Alive: timeout=N`, as Node servers do) is
  // held to N - 2 s (undici's margin), up to a minute; one that does not, to --keepalive-timeout.
  // Capping announced timeouts at --keepalive-timeout (4 s) closed connections the instance
  // would have kept, and reopening them under load cost the fixed-rate p99 (3,000 req/s:
  // 14-90 ms with the cap, 3.5-5 ms without).
  const upstream = new UpstreamClient({
    connectTimeoutMs: opts.connectTimeoutMs,
    upstreamTimeoutMs: opts.upstreamTimeoutMs,
    keepAliveTimeoutMs: opts.keepAliveTimeoutMs,
    keepAliveMaxTimeoutMs: Math.max(opts.keepAliveTimeoutMs, MAX_ANNOUNCED_KEEPALIVE_MS),
  });

  function release(backend: Backend): void {
    if (getTable().release(backend) === 0 && backend.state === 'draining') opts.onDrained(backend);
  }

  const forwarder = new Forwarder({
    getTable,
    client: upstream,
    metrics,
    log,
    retryAfterSeconds: opts.retryAfterSeconds,
    maxAttempts: opts.maxAttempts,
    accessLog: opts.accessLog,
    isClosing: () => closing,
    acquire: (backend) => getTable().acquire(backend),
    release,
  });

  const app = fastify({
    logger: false,
    // Every plain HTTP request, whatever its method, takes the lean path (forward.ts); fastify
    // and @fastify/http-proxy get only WebSocket upgrades, through their own 'upgrade' listener.
    serverFactory: () => {
      const server = createServer((req: IncomingMessage, res: ServerResponse) => forwarder.handle(req, res));
      // What fastify sets on a server it creates itself.
      server.keepAliveTimeout = 72_000;
      server.requestTimeout = 0;
      server.setTimeout(0);
      return server;
    },
    genReqId: requestIdFor,
    requestIdHeader: false,
    // Requests that arrive on an open connection during shutdown are still served.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    routerOptions: { maxParamLength: 8192 },
  });
  // An upgrade request with a method other than GET: the contract's 404 still applies.
  app.setNotFoundHandler((_request, reply) => answer(reply, 404));
  app.decorateRequest('pool', null);
  app.decorateRequest('backend', null);
  app.decorateRequest('attempts', 0);
  app.decorateRequest('dispatchedAt', 0);

  function dispatchTo(request: FastifyRequest, reply: FastifyReply, backend: Backend): void {
    request.backend = backend;
    request.attempts++;
    request.dispatchedAt = performance.now();
    getTable().acquire(backend);
    (reply.raw as TrackedResponse)[kRequest] = request;
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

  // WebSocket upgrades read the instance chosen by the onRequest hook; plain HTTP never gets here.
  const replyOptions = { getUpstream };

  app.register(httpProxy, {
    upstream: '',
    websocket: true,
    httpMethods: app.supportedMethods,
    internalRewriteLocationHeader: false,
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

  return { server: app, upstream, close };
}
