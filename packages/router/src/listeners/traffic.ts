/**
 * The traffic listener: a node:http server (drain.ts: client connections and how they end) in a
 * fastify frame, with no fastify routing on it. With --client-parser native (the default where
 * its start-up check passes) the server only accepts: its connections, and the TLS listener's
 * HTTP/1.1 ones, are served by the native HTTP/1.1 server (h1-connection.ts), through the same
 * forwarder, upgrade handler and answers. Otherwise Node's HTTP code serves them, with these
 * listeners:
 * - 'request': plain HTTP, forwarded by forward.ts through the router's upstream client;
 * - 'upgrade': WebSocket upgrades, tunnelled by upgrade.ts; any other Upgrade (h2c from
 *   `curl --http2`) is ignored and the request served over HTTP/1.1, as nginx does;
 * - 'clientError': a head Node cannot parse gets the router's own 400/431/408.
 * Both kinds of request go through the same decision (decision/decide.ts) and answers.
 */
import fastify, { type FastifyInstance } from 'fastify';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { RouterMetrics } from '../admin/metrics.js';
import { BAD_REQUEST, HEADERS_TOO_LARGE, REQUEST_TIMEOUT } from '../decision/answers.js';
import { defaultConnectors, type Connector } from '../transport/connector.js';
import { createUpstreamClient, type UpstreamClientChoice } from '../transport/select-client.js';
import type { UpstreamClient } from '../transport/upstream.js';
import { ClientDrain } from './drain.js';
import type { Backend } from '../table/backend.js';
import type { RoutingTable } from '../table/routing-table.js';
import { closesAfterAnswer, Forwarder, type ForwardLogger } from './forward.js';
import { isWebSocketUpgrade, UpgradeHandler } from './upgrade.js';
import { TlsListener } from './tls-listener.js';
import { chooseClientParser, type ClientParserChoice, type ClientParserKind } from './client-parser.js';
import { answerAndClose, Http1Server, type Http1Options, type UpgradeHead } from './h1-connection.js';
import type { ChallengeAnswers } from '../acme/challenge-answers.js';
import { ACME_CHALLENGE_PATH } from '../decision/decide.js';

export interface ProxyOptions {
  getTable: () => RoutingTable;
  metrics: RouterMetrics;
  log: ForwardLogger;
  connectTimeoutMs: number;
  upstreamTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** Idle time of a client's keep-alive connection, announced in `Keep-Alive: timeout=N`. */
  clientKeepAliveTimeoutMs: number;
  /** Time a client has to send a request head. */
  requestHeaderTimeoutMs: number;
  /** --upstream-client (default auto). */
  upstreamClient?: UpstreamClientChoice;
  /** --client-parser (default auto). */
  clientParser?: ClientParserChoice;
  retryAfterSeconds: number;
  maxAttempts: number;
  accessLog: boolean;
  /** Where access lines go (--access-log-file); the router's log when not set. */
  accessLogger?: ForwardLogger;
  /** A draining instance's last request or WebSocket ended. */
  onDrained: (backend: Backend) => void;
  /** --public-https-port, for `tls.redirect` Locations (default 443). */
  publicHttpsPort?: number;
  /** Transports for instance URL schemes beyond http: and https: (`tunnel:`). */
  moreConnectors?: ReadonlyMap<string, Connector>;
  /** The TLS listener, when --listen-tls is set (it listens when told: see ProxyServer.tls). */
  tls?: { defaultCert: string | undefined; contextCacheSize: number };
  /** Answers ACME HTTP-01 challenges on the plain listener for the fleet (see acme/challenge-answers.ts). */
  challenges?: ChallengeAnswers;
}

/** The longest idle time an instance's own Keep-Alive announcement may give an upstream connection. */
const MAX_ANNOUNCED_KEEPALIVE_MS = 60_000;

export interface ProxyServer {
  server: FastifyInstance;
  /** The keep-alive connections to instances (also used by the active health checks). */
  upstream: UpstreamClient;
  /** What serves client HTTP/1.1 connections (--client-parser). */
  clientParser: ClientParserKind;
  /** The client connections: begin() turns every answer to `Connection: close` (see drain.ts). */
  drain: ClientDrain;
  /** The TLS listener (HTTP/2 and HTTP/1.1), when configured; its connections drain with the plain ones. */
  tls: TlsListener | undefined;
  /**
   * Ends WebSocket tunnels, stops accepting and resolves once every client connection has ended.
   * Answers sent meanwhile carry `Connection: close`; idle connections end at their keep-alive
   * timeout; new upgrades get 503.
   */
  close(): Promise<void>;
}

/** Connection tokens of an upgrade that is ignored. */
const UPGRADE_TOKENS = new Set(['upgrade', 'http2-settings']);

/**
 * Gives an upgrade request other than WebSocket back to the HTTP server without its Upgrade (and
 * HTTP2-Settings), as though it had not asked: Node has already let go of the socket, so the
 * head is written out again in front of the bytes that followed it and the socket handed to the
 * server as a new connection. Keep-alive and any body work as for any request.
 */
function serveWithoutUpgrade(server: Server, req: IncomingMessage, socket: Socket, early: Buffer): void {
  let head = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    let value = raw[i + 1]!;
    if (lower === 'upgrade' || lower === 'http2-settings') continue;
    if (lower === 'connection') {
      value = value
        .split(',')
        .map((t) => t.trim())
        .filter((t) => t !== '' && !UPGRADE_TOKENS.has(t.toLowerCase()))
        .join(', ');
      if (value === '') continue;
    }
    head += `${raw[i]}: ${value}\r\n`;
  }
  const bytes = Buffer.from(`${head}\r\n`, 'latin1');
  socket.unshift(early.length > 0 ? Buffer.concat([bytes, early]) : bytes);
  server.emit('connection', socket);
}

/** A request head Node could not parse: the router's own answer, then the connection closes. */
function onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  // The request was answered already, with the connection closing after it (its body, which
  // Node goes on to parse, failed): that answer stands, once written out.
  if (closesAfterAnswer(socket)) {
    socket.end();
    return;
  }
  answerAndClose(socket, err.code === 'HPE_HEADER_OVERFLOW' ? HEADERS_TOO_LARGE : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? REQUEST_TIMEOUT : BAD_REQUEST);
}

export function createProxyServer(opts: ProxyOptions): ProxyServer {
  const { getTable, metrics, log } = opts;
  /** Set by close(): WebSocket upgrades are refused from then on. */
  let closed = false;

  // TLS verification stays on; keep-alive stays below the instances' own so the router never
  // writes to a connection the instance is closing: an instance that announces its idle timeout
  // (`Keep-Alive: timeout=N`, as Node servers do) is held to N - 2 s (undici's margin), up to a
  // minute; one that does not, to --keepalive-timeout. Capping announced timeouts at
  // --keepalive-timeout (4 s) closed connections the instance would have kept, and reopening
  // them under load cost the fixed-rate p99 (3,000 req/s: 14-90 ms with the cap, 3.5-5 ms without).
  // One set of connectors for plain HTTP and WebSocket tunnels: a new transport serves both.
  const connectors = defaultConnectors(opts.connectTimeoutMs, opts.moreConnectors);
  const upstream = createUpstreamClient(opts.upstreamClient ?? 'auto', {
    connectors,
    connectTimeoutMs: opts.connectTimeoutMs,
    upstreamTimeoutMs: opts.upstreamTimeoutMs,
    keepAliveTimeoutMs: opts.keepAliveTimeoutMs,
    keepAliveMaxTimeoutMs: Math.max(opts.keepAliveTimeoutMs, MAX_ANNOUNCED_KEEPALIVE_MS),
  }, log);

  const acquire = (backend: Backend) => getTable().acquire(backend);
  function release(backend: Backend): void {
    if (getTable().release(backend) === 0 && backend.state === 'draining') opts.onDrained(backend);
  }

  const httpsPort = opts.publicHttpsPort === undefined || opts.publicHttpsPort === 443 ? '' : `:${opts.publicHttpsPort}`;
  const forwarderOptions = {
    getTable,
    client: upstream,
    metrics,
    log,
    retryAfterSeconds: opts.retryAfterSeconds,
    maxAttempts: opts.maxAttempts,
    accessLog: opts.accessLog,
    accessLogger: opts.accessLogger,
    isClosing: () => drain.stopping,
    acquire,
    release,
    httpsPort,
  };
  const forwarder = new Forwarder(forwarderOptions);
  const clientConnections = {
    keepAliveTimeoutMs: opts.clientKeepAliveTimeoutMs,
    requestHeaderTimeoutMs: opts.requestHeaderTimeoutMs,
  };
  const challenges = opts.challenges;
  const clientParser = chooseClientParser(opts.clientParser ?? 'auto', log);
  // One startsWith per plain request; the TLS listener never answers challenges (HTTP-01 is plain HTTP).
  const handlePlain: (req: IncomingMessage, res: ServerResponse) => void = challenges === undefined
    ? (req: IncomingMessage, res: ServerResponse) => forwarder.handle(req, res)
    : (req: IncomingMessage, res: ServerResponse): void => {
      if (req.url!.startsWith(ACME_CHALLENGE_PATH)) {
        challenges.serve(
          { method: req.method!, url: req.url!, host: req.headers.host },
          (status, headers, body) => {
            res.writeHead(status, headers);
            res.end(body);
          },
          () => forwarder.handle(req, res),
        );
      } else {
        forwarder.handle(req, res);
      }
    };
  const drain = new ClientDrain(handlePlain, clientConnections);
  /** The native HTTP/1.1 server's settings for a listener, its requests going to `forwarder`. */
  const http1Options = (forwarder: Forwarder, onUpgrade: (head: UpgradeHead, socket: Socket, early: Buffer) => void): Http1Options => ({
    keepAliveTimeoutMs: opts.clientKeepAliveTimeoutMs,
    requestHeaderTimeoutMs: opts.requestHeaderTimeoutMs,
    isClosing: () => drain.stopping,
    request: (conn, method, target, version, raw) => forwarder.exchangeFor(conn, method, target, version, raw),
    upgrade: (head, socket, early) => {
      drain.upgraded(socket);
      onUpgrade(head, socket, early);
    },
  });
  const upgrades = new UpgradeHandler({
    getTable,
    metrics,
    log,
    connectors,
    upstreamTimeoutMs: opts.upstreamTimeoutMs,
    retryAfterSeconds: opts.retryAfterSeconds,
    maxAttempts: opts.maxAttempts,
    accessLog: opts.accessLog,
    accessLogger: opts.accessLogger,
    isClosing: () => closed,
    acquire,
    release,
    httpsPort,
  });
  let tls: TlsListener | undefined;
  if (opts.tls !== undefined) {
    tls = new TlsListener(
      { getTable, metrics, log, defaultCert: opts.tls.defaultCert, contextCacheSize: opts.tls.contextCacheSize, helloTimeoutMs: opts.requestHeaderTimeoutMs },
      (edge) => new Forwarder(forwarderOptions, edge),
      upgrades,
      clientParser === 'native'
        ? (tlsForwarder, edge) => {
          const h1 = new Http1Server(http1Options(tlsForwarder, (head, socket, early) => upgrades.handle(head, socket, early, edge)));
          return (socket) => h1.serve(socket);
        }
        : undefined,
    );
    drain.adopt(tls.front, tls.fallback === undefined ? [tls.server] : [tls.server, tls.fallback], clientConnections);
  }

  if (clientParser === 'native') {
    // Only WebSocket upgrades leave HTTP there (others are served as plain requests, as above).
    const options = http1Options(forwarder, (head, socket, early) => upgrades.handle(head, socket, early));
    if (challenges !== undefined) {
      // One startsWith per plain request, as for Node's server above.
      options.request = (conn, method, target, version, raw) => {
        const ex = forwarder.exchangeFor(conn, method, target, version, raw);
        if (target.startsWith(ACME_CHALLENGE_PATH)) {
          ex.start = () => challenges.serve(
            { method, url: target, host: ex.hostHeader },
            (status, headers, body) => {
              ex.done = true;
              ex.writeHead(status, '', headers);
              ex.end(body);
            },
            () => forwarder.startSocket(ex),
          );
        }
        return ex;
      };
    }
    const h1 = new Http1Server(options);
    drain.serveWith((socket) => h1.serve(socket));
  }

  const app = fastify({
    logger: false,
    // fastify's own request handling is not used: the listeners above take every request.
    serverFactory: () => {
      const server = drain.server;
      server.on('upgrade', (req: IncomingMessage, socket: Socket, early: Buffer) => {
        if (isWebSocketUpgrade(req)) upgrades.handle(req, socket, early);
        else serveWithoutUpgrade(server, req, socket, early);
      });
      return server;
    },
    clientErrorHandler: onClientError,
    // Requests that arrive on an open connection during shutdown are still served.
    return503OnClosing: false,
    // Idle connections end at their keep-alive timeout, not at close() (see drain.ts).
    forceCloseConnections: false,
  });

  async function close(): Promise<void> {
    closed = true;
    // Open WebSockets end when shutdown starts: a tunnel has no way to ask its client to move.
    upgrades.closeAll();
    await drain.stopAccepting();
    await drain.drained();
    await app.close();
  }

  return { server: app, upstream, clientParser, drain, tls, close };
}
