/**
 * The traffic listener's client connections, and how they end when the router stops.
 *
 * The router may close a client's keep-alive connection only at a moment the client cannot be
 * writing its next request on it: right after an answer that says `Connection: close`, or once
 * the connection has been idle longer than the `Keep-Alive: timeout=N` the router announced
 * (a client that honours the hint, as undici, Node's agent and Firefox do, stops reusing it
 * before then). Closing idle connections at any other moment resets clients that were writing.
 * So, as Envoy and gorouter do while draining:
 *
 *   begin()          from the SIGTERM on, every answer says `Connection: close`: each
 *                    connection ends after its next answer, and clients open the next one
 *                    elsewhere (or here, while the listener still accepts);
 *   stopAccepting()  after the drain wait, the listener closes; idle connections are left to
 *                    end at their own keep-alive timeout (Node's server.close() would close
 *                    them at once, under clients that may be writing);
 *   drained()        resolves once no HTTP connection is left; the caller bounds the wait with
 *                    --shutdown-timeout and then cut()s what remains.
 *
 * Upgraded connections (WebSockets) are not HTTP connections any more: they end as the
 * upgrade tunnels are closed (listeners/upgrade.ts).
 *
 * The TLS listener (tls-listener.ts) is adopted: its connections count here too, its HTTP/1.1
 * answers say `Connection: close` alike, and its HTTP/2 sessions get GOAWAY instead (RFC 9113
 * §6.8: the client sends no new stream on the session, the streams in flight finish, and the
 * client may retry elsewhere any stream the GOAWAY says was not processed). A session opened
 * while stopping gets its GOAWAY once its first stream ends, as an HTTP/1.1 connection gets
 * `Connection: close` on its first answer.
 */
import type { RequestListener, Server } from 'node:http';
import type { Http2SecureServer, ServerHttp2Session } from 'node:http2';
import { nodeHttp } from '../node-http.js';
import { Server as NetServer, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

export interface ClientConnectionOptions {
  /** How long an idle client connection is kept, announced as `Keep-Alive: timeout=N`. */
  keepAliveTimeoutMs: number;
  /** A request head must be complete this long after its first byte (or after connecting): else 408. */
  requestHeaderTimeoutMs: number;
}

/**
 * Clients still connecting after the drain wait were not told to go elsewhere (no health check
 * in front): a quiet moment to close at is all that is left to find, not worth delaying a stop.
 */
const MAX_QUIET_TURN_WAIT_MS = 1000;

/** The longest Node waits past a header deadline before it sees it (see connectionsCheckingInterval). */
const MAX_HEADER_CHECK_INTERVAL_MS = 1000;

export class ClientDrain {
  readonly server: Server;
  private isStopping = false;
  private readonly open = new Set<Socket>();
  private accepted = 0;
  private onDrained: (() => void) | null = null;
  /** Listeners besides `server` (the TLS one). */
  private readonly adopted: NetServer[] = [];
  private readonly sessions = new Set<ServerHttp2Session>();

  constructor(listener: RequestListener, opts: ClientConnectionOptions) {
    this.server = nodeHttp.createServer(
      {
        // A missing Host is refused by the decision (decision/request-head.ts), with the router's own 400.
        requireHostHeader: false,
        keepAliveTimeout: opts.keepAliveTimeoutMs,
        headersTimeout: opts.requestHeaderTimeoutMs,
        // Requests and responses may stream as long as they move: --upstream-timeout bounds an instance.
        requestTimeout: 0,
        // Node looks for expired header deadlines only this often (30 s by default, which would
        // let a head take the timeout plus up to 30 s).
        connectionsCheckingInterval: Math.min(MAX_HEADER_CHECK_INTERVAL_MS, Math.max(1, Math.floor(opts.requestHeaderTimeoutMs / 4))),
      },
      listener,
    );
    this.server.setTimeout(0);
    this.server.on('connection', (socket: Socket) => {
      this.accepted++;
      this.track(socket);
    });
    this.server.on('upgrade', (req: { socket: Socket }) => this.forget(req.socket));
  }

  /**
   * Client connections go to `serve` (the native HTTP/1.1 server, h1-connection.ts) instead of
   * Node's HTTP code; the server stays the listening socket, and its connections count here.
   */
  serveWith(serve: (socket: Socket) => void): void {
    this.server.off('connection', (nodeHttp as unknown as { _connectionListener: (socket: Socket) => void })._connectionListener);
    this.server.on('connection', serve);
  }

  /** A connection left HTTP (a WebSocket upgrade of the native server): it ends with its tunnel. */
  upgraded(socket: Socket): void {
    this.forget(socket);
  }

  private track(socket: Socket): void {
    this.open.add(socket);
    socket.once('close', () => this.forget(socket));
  }

  private forget(socket: Socket): void {
    if (!this.open.delete(socket) || this.open.size > 0 || this.onDrained === null) return;
    this.onDrained();
    this.onDrained = null;
  }

  /**
   * Drains the TLS listener's connections with this one's: `front` is its listening socket,
   * `servers` the HTTP servers it hands connections to. HTTP/1.1 over TLS as above (the
   * servers' own keep-alive and header timeouts set here), HTTP/2 sessions by GOAWAY. A
   * connection counts from its handshake's end: one still in its handshake when the router
   * stops has sent no request.
   */
  adopt(front: NetServer, servers: Http2SecureServer[], opts: ClientConnectionOptions): void {
    this.adopted.push(front);
    front.on('connection', () => this.accepted++);
    for (const server of servers) {
      // Node serves HTTP/1.1 on an HTTP/2 server with http.Server's connection code, which reads these from the server.
      const h1 = server as unknown as { keepAliveTimeout: number; headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number };
      h1.keepAliveTimeout = opts.keepAliveTimeoutMs;
      h1.headersTimeout = opts.requestHeaderTimeoutMs;
      h1.requestTimeout = 0;
      h1.connectionsCheckingInterval = Math.min(MAX_HEADER_CHECK_INTERVAL_MS, Math.max(1, Math.floor(opts.requestHeaderTimeoutMs / 4)));
      // Node starts its header-timeout checks on a server's 'listening'; these servers never
      // listen themselves (`front` does and hands them connections), so they are told when it does.
      front.once('listening', () => server.emit('listening'));
      server.on('secureConnection', (socket: TLSSocket) => this.track(socket));
      server.on('upgrade', (req: { socket: Socket }) => this.forget(req.socket));
      server.on('session', (session: ServerHttp2Session) => {
        this.sessions.add(session);
        session.once('close', () => this.sessions.delete(session));
        // An idle session ends like an idle HTTP/1.1 connection: GOAWAY, nothing in flight is cut.
        session.setTimeout(opts.keepAliveTimeoutMs, () => session.close());
        if (this.isStopping) session.once('stream', (stream) => stream.once('close', () => session.close()));
      });
    }
  }

  /** True from begin() on: answers carry `Connection: close`. */
  get stopping(): boolean {
    return this.isStopping;
  }

  /** HTTP connections open now (idle or with a request in flight). */
  get connections(): number {
    return this.open.size;
  }

  begin(): void {
    if (this.isStopping) return;
    this.isStopping = true;
    for (const session of this.sessions) session.close();
  }

  /**
   * Closes the listener only. http.Server#close() also closes every idle keep-alive connection
   * (Node >= 19), which is the moment a client may be writing a request on one; net.Server's
   * close leaves them to their keep-alive timeout. Node's header-timeout checks keep running.
   *
   * Connections the kernel has completed but Node has not accepted yet are reset when the
   * listening socket closes, after their clients may have written a request (seen under load:
   * a starved process leaves them queued for 100s of ms). So it closes right after a turn of
   * the event loop whose poll accepted none, i.e. with the queue found empty.
   */
  async stopAccepting(): Promise<void> {
    this.begin();
    const giveUpAt = performance.now() + MAX_QUIET_TURN_WAIT_MS;
    for (;;) {
      const before = this.accepted;
      // setImmediate runs right after the next poll phase, where pending connections are accepted.
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.accepted === before || performance.now() > giveUpAt) break;
    }
    if (this.server.listening) NetServer.prototype.close.call(this.server);
    for (const other of this.adopted) if (other.listening) NetServer.prototype.close.call(other);
  }

  /** Resolves once every HTTP connection has ended. */
  drained(): Promise<void> {
    if (this.open.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const previous = this.onDrained;
      this.onDrained = () => {
        previous?.();
        resolve();
      };
    });
  }

  /** The shutdown timeout ran out: closes every HTTP connection still open, in flight or not. */
  cut(): void {
    for (const session of this.sessions) session.destroy();
    for (const socket of this.open) socket.destroy();
  }
}
