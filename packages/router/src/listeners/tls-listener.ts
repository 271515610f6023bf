/**
 * The TLS listener (--listen-tls): HTTP/2 and HTTP/1.1 chosen by ALPN on one port, every request
 * through the same forwarder, upgrade handler and decision as the plain listener.
 *
 * The server has no certificate of its own: every handshake is answered from SNICallback with
 * the certificate the table's index gives for the server name (exact, then one-label wildcard),
 * else the --default-cert one, else none, and the handshake fails. A server certificate of its
 * own would be served instead of an SNI certificate of another key type (nodejs/node#54235:
 * Node adds the SNI certificate beside the default one and OpenSSL may pick either).
 *
 * The certificate a connection was handshaken with is kept on its socket: a request on it for a
 * host that certificate does not cover is answered 421 by the decision (HTTP/2 clients reuse a
 * connection for every host its certificate covers).
 *
 * A client that sends no server name never reaches SNICallback (Node then serves the server's
 * own certificate). So with --default-cert the listening socket is a plain TCP server that reads
 * the ClientHello (client-hello.ts) and hands the connection to the SNI server, or, when it names
 * no server, to a second server whose own certificate is the default one (no SNICallback there,
 * so nodejs/node#54235 cannot bite either). Without --default-cert a handshake without a name
 * fails either way, so connections go to the SNI server at once: reading the ClientHello first
 * costs every full handshake a JavaScript read, a timer and a hand-over (README, TLS benchmark).
 *
 * WebSocket goes over HTTP/1.1 only (Extended CONNECT, RFC 8441, is not advertised). Other
 * upgrades are served as plain requests, as on the plain listener.
 */
import { createSecureServer, type Http2SecureServer, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { SecureContext, TLSSocket } from 'node:tls';
import type { RouterMetrics } from '../admin/metrics.js';
import { BAD_REQUEST, rawAnswer } from '../decision/answers.js';
import { normalizeHost } from '../decision/host.js';
import type { ServedCertificate } from '../table/cert-index.js';
import type { RoutingTable } from '../table/routing-table.js';
import { nodeHttp } from '../node-http.js';
import type { Forwarder, ForwardLogger, TlsEdge } from './forward.js';
import { firstRecordLength, MAX_RECORD, namesServer } from './client-hello.js';
import { SpareContexts } from './spare-contexts.js';
import { ContextCache } from './tls-contexts.js';
import { isWebSocketUpgrade, type UpgradeHandler } from './upgrade.js';

/** On a TLS socket: the certificate its handshake served (null: none covered the name). */
const kCert = Symbol('paas.cert');
type CertSocket = TLSSocket & { [kCert]?: ServedCertificate | null };

/** Handshake failures that mean "no certificate to serve" when the client sent no server name. */
const NO_CERTIFICATE = new Set(['ERR_SSL_NO_SUITABLE_SIGNATURE_ALGORITHM', 'ERR_SSL_NO_SHARED_CIPHER', 'ERR_SSL_NO_CERTIFICATE_ASSIGNED']);

export interface TlsListenerOptions {
  getTable: () => RoutingTable;
  metrics: RouterMetrics;
  log: ForwardLogger;
  /** --default-cert: the `certs/` name served when none covers the server name. */
  defaultCert: string | undefined;
  /** --tls-context-cache. */
  contextCacheSize: number;
  /** How long a client has to send its ClientHello and to finish its handshake (--request-header-timeout). */
  helloTimeoutMs: number;
}

function ignore(): void {}

/** What a server's requests go to: HTTP/1.1 requests, and HTTP/2 streams of the core API. */
interface Serve {
  request: (req: IncomingMessage, res: ServerResponse) => void;
  stream: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, raw: string[]) => void;
}

type Handshake = 'ok' | 'default_cert' | 'unknown_name' | 'error';

/**
 * Empty contexts kept ready (spare-contexts.ts): enough for a handful of new hosts arriving
 * together at little memory (README); a longer burst builds whole contexts, as before.
 */
const SPARE_CONTEXTS = 8;

/**
 * HTTP/1.1 connections (ALPN http/1.1, or none) go to `http1` instead of the http module's
 * connection code that `allowHTTP1` hands them to; h2 ones still start Node's HTTP/2 session.
 * allowHTTP1 stays on: it is what makes Node offer http/1.1 in ALPN.
 */
function takeHttp1(server: Http2SecureServer, http1: (socket: TLSSocket) => void): void {
  const node = server.listeners('secureConnection') as ((this: Http2SecureServer, socket: TLSSocket) => void)[];
  for (const listener of node) server.off('secureConnection', listener);
  server.on('secureConnection', function (this: Http2SecureServer, socket: TLSSocket) {
    if (socket.alpnProtocol === 'h2') for (const listener of node) listener.call(this, socket);
    else http1(socket);
  });
}

export class TlsListener implements TlsEdge {
  /** The listening socket: reads each ClientHello and hands the connection on. */
  readonly front: NetServer;
  /** Handshakes that name a server: certificates from SNICallback. */
  readonly server: Http2SecureServer;
  /** Handshakes that name none, with --default-cert: that certificate as the server's own. */
  readonly fallback: Http2SecureServer | undefined;
  /** The certificate `fallback` serves now. */
  private fallbackCert: ServedCertificate | undefined;
  readonly contexts: ContextCache;
  /** X-Forwarded-Port, once listening. */
  port = '';
  private readonly handshakes: Record<Handshake, { inc(): void }>;

  constructor(
    private readonly opts: TlsListenerOptions,
    /** The forwarder for this listener's requests, given the listener. */
    makeForwarder: (edge: TlsEdge) => Forwarder,
    upgrades: UpgradeHandler,
    /** The native HTTP/1.1 server for connections that did not choose h2 (--client-parser native); else Node's. */
    makeHttp1?: (forwarder: Forwarder, edge: TlsEdge) => (socket: TLSSocket) => void,
  ) {
    const forwarder = makeForwarder(this);
    const http1 = makeHttp1?.(forwarder, this);
    const spares = new SpareContexts(SPARE_CONTEXTS, (err) => opts.log.warn({ err: err.message }, 'TLS spare contexts off: this Node refused a certificate in an empty context that it accepts whole'));
    this.contexts = new ContextCache(opts.contextCacheSize, spares);
    const m = opts.metrics;
    // Label children bound once; requests are counted by the metrics' own cells (countTlsRequest).
    this.handshakes = { ok: m.tlsHandshakes.labels('ok'), default_cert: m.tlsHandshakes.labels('default_cert'), unknown_name: m.tlsHandshakes.labels('unknown_name'), error: m.tlsHandshakes.labels('error') };
    const select = (socket: CertSocket, servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => this.select(socket, servername, cb);
    const http = {
      allowHTTP1: true,
      ALPNProtocols: ['h2', 'http/1.1'],
      // Node's default is a hash of the process's command line, which differs between replicas
      // (ids, ports) and would refuse their tickets: one value for the whole fleet.
      sessionIdContext: 'paas-router',
      // A client that connects and does not finish its handshake is held this long, not Node's 120 s.
      handshakeTimeout: opts.helloTimeoutMs,
      // The same bound on a request head as HTTP/1.1 (Node's --max-http-header-size).
      maxSendHeaderBlockLength: nodeHttp.maxHeaderSize * 4,
      settings: { maxHeaderListSize: nodeHttp.maxHeaderSize, enableConnectProtocol: false },
    };
    const serve: Serve = {
      request: (req, res) => forwarder.handle(req, res),
      stream: (stream, headers, _flags, raw) => forwarder.handleStream(stream, headers, raw),
    };
    this.server = createSecureServer({
      ...http,
      // Node calls it as a method of the TLS socket being handshaken.
      SNICallback(this: CertSocket, servername, cb) {
        select(this, servername, cb);
      },
    });
    if (http1 !== undefined) takeHttp1(this.server, http1);
    this.wire(this.server, serve, upgrades);
    if (opts.defaultCert !== undefined) {
      const fallback = createSecureServer(http);
      if (http1 !== undefined) takeHttp1(fallback, http1);
      this.wire(fallback, serve, upgrades);
      fallback.on('secureConnection', (socket: CertSocket) => {
        socket[kCert] = this.fallbackCert ?? null;
      });
      this.fallback = fallback;
    }
    // Without Nagle, as Node's HTTP/1.1 server and its HTTP/2 sessions have: an answer written
    // right after the session tickets would otherwise wait for the client's delayed ACK of them.
    const server = this.server;
    this.front = createNetServer(
      { noDelay: true },
      opts.defaultCert === undefined ? (socket) => server.emit('connection', socket) : (socket) => this.dispatch(socket, opts.helloTimeoutMs),
    );
  }

  /** The same requests, upgrades and counts on both servers. */
  private wire(server: Http2SecureServer, serve: Serve, upgrades: UpgradeHandler): void {
    const m = this.opts.metrics;
    // HTTP/1.1 requests arrive as 'request'. Adding a 'request' listener also makes Node serve
    // HTTP/2 streams through its compatibility API (a request and a response object on top of
    // every stream, see README, TLS benchmark): HTTP/2 streams are served from the core API's
    // 'stream' instead, and any other 'stream' listener is taken off.
    server.on('request', serve.request);
    for (const other of server.listeners('stream')) server.off('stream', other as (...args: unknown[]) => void);
    server.on('stream', serve.stream);
    // Only WebSocket upgrades leave HTTP (Node >= 24.9 and 22.21 ask; older ones hand every upgrade to 'upgrade').
    (server as unknown as { shouldUpgradeCallback?: (req: IncomingMessage) => boolean }).shouldUpgradeCallback = isWebSocketUpgrade;
    server.on('upgrade', (req: IncomingMessage, socket: Socket, early: Buffer) => {
      if (isWebSocketUpgrade(req)) upgrades.handle(req, socket, early, this);
      else socket.end(rawAnswer(BAD_REQUEST, '', ''));
    });
    server.on('secureConnection', (socket: CertSocket) => {
      if (socket.isSessionReused()) m.tlsResumed.inc();
    });
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: CertSocket) => {
      // A name no certificate covers was counted when it was looked up.
      if (socket[kCert] === null) return;
      if (socket[kCert] === undefined && !socket.servername && NO_CERTIFICATE.has(err.code ?? '')) this.handshakes.unknown_name.inc();
      else this.handshakes.error.inc();
    });
  }

  /**
   * Reads the first TLS record (the ClientHello), then hands the connection, bytes unread, to
   * the server that answers it: Node's TLS socket takes over bytes already buffered.
   */
  private dispatch(socket: Socket, timeoutMs: number): void {
    let seen: Buffer | null = null;
    socket.on('error', ignore);
    socket.setTimeout(timeoutMs, () => socket.destroy());
    const onData = (chunk: Buffer) => {
      seen = seen === null ? chunk : Buffer.concat([seen, chunk]);
      const length = firstRecordLength(seen);
      if (length !== 0 && seen.length < length && seen.length < MAX_RECORD) return;
      socket.off('data', onData);
      socket.off('error', ignore);
      socket.setTimeout(0);
      socket.pause();
      socket.unshift(seen);
      const target = length !== 0 && seen.length >= length && !namesServer(seen) ? this.fallbackFor() : this.server;
      target.emit('connection', socket);
    };
    socket.on('data', onData);
  }

  /** The server for a handshake that names no server: the fallback, its certificate the current --default-cert one. */
  private fallbackFor(): Http2SecureServer {
    const fallback = this.fallback;
    if (fallback === undefined) return this.server;
    const cert = this.opts.getTable().certs.get(this.opts.defaultCert!);
    if (cert === undefined) return this.server;
    if (cert !== this.fallbackCert) {
      try {
        fallback.setSecureContext({ cert: cert.certPem, key: cert.keyPem });
      } catch (err) {
        this.opts.log.warn({ cert: cert.name, err: (err as Error).message }, 'TLS context could not be built');
        return this.server;
      }
      this.fallbackCert = cert;
    }
    this.handshakes.default_cert.inc();
    return fallback;
  }

  /** The certificate for a handshake's server name (see the module comment). */
  private select(socket: CertSocket, servername: string, cb: (err: Error | null, ctx?: SecureContext) => void): void {
    const certs = this.opts.getTable().certs;
    let cert = certs.forHost(normalizeHost(servername));
    let result: Handshake = 'ok';
    if (cert === undefined && this.opts.defaultCert !== undefined) {
      cert = certs.get(this.opts.defaultCert);
      result = 'default_cert';
    }
    if (cert === undefined) {
      socket[kCert] = null;
      this.handshakes.unknown_name.inc();
      // No context: the server has no certificate, so the handshake fails.
      cb(null);
      return;
    }
    let context: SecureContext;
    try {
      const before = this.contexts.size;
      context = this.contexts.get(cert);
      if (this.contexts.size !== before) this.opts.metrics.tlsContexts.set(this.contexts.size);
    } catch (err) {
      this.opts.log.warn({ cert: cert.name, err: (err as Error).message }, 'TLS context could not be built');
      this.handshakes.error.inc();
      socket[kCert] = null;
      cb(null);
      return;
    }
    socket[kCert] = cert;
    this.handshakes[result].inc();
    cb(null, context);
  }

  /** The session ticket key of both servers (see ticket-keys.ts). */
  setTicketKeys(key: Buffer): void {
    this.server.setTicketKeys(key);
    this.fallback?.setTicketKeys(key);
  }

  // --- TlsEdge ---

  certOf(socket: Socket): ServedCertificate | null {
    return (socket as CertSocket)[kCert] ?? null;
  }

  count(http2: boolean): void {
    this.opts.metrics.countTlsRequest(http2);
  }

  listen(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.front.once('error', reject);
      this.front.listen(port, host, () => {
        this.front.off('error', reject);
        const address = this.front.address();
        this.port = typeof address === 'object' && address !== null ? String(address.port) : String(port);
        resolve();
      });
    });
  }
}
