/**
 * The tunnel listener (--listen-tunnel): agents connect here over TLS with the `--tunnel-cert`
 * certificate (from `certs/`, swapped in when its record changes), send one Hello line, and get
 * a Welcome line naming every live router's tunnel listener or a Refusal line with the reason.
 * A welcomed connection becomes an HTTP/2 session with this router as the client
 * (`http2.connect` over the open socket) and is registered in TunnelSessions.
 *
 * Flow-control windows are raised above HTTP/2's 64 KiB default, which caps a stream at one
 * window per round trip (figures in README, "Agent tunnels"). A larger maxFrameSize would change
 * nothing: Node's HTTP/2 sends DATA frames of at most 16 KiB whatever the peer allows.
 */
import { connect as h2connect } from 'node:http2';
import { createServer, DEFAULT_CIPHERS, type Server, type TLSSocket } from 'node:tls';
import { isName, readLine, TUNNEL_PROTOCOL, type TunnelHello, type TunnelRefusal, type TunnelWelcome } from '@paas/registry';
import type { ServedCertificate } from '../table/cert-index.js';
import type { RoutingTable } from '../table/routing-table.js';
import type { RefusalReason, TunnelMetrics } from './metrics.js';
import { TunnelSession, type TunnelSessions } from './sessions.js';
import type { KnownToken, TunnelTokens } from './tokens.js';

/** Per-stream receive window the router announces (downloads through the tunnel). */
export const TUNNEL_STREAM_WINDOW = 4 * 1024 * 1024;
/** Whole-session receive window: bounds what one agent can have buffered in this router. */
export const TUNNEL_SESSION_WINDOW = 32 * 1024 * 1024;
/**
 * AES-128-GCM first (the server's order decides in TLS 1.3): every byte through a tunnel is
 * encrypted by the agent and decrypted here, and 10 AES rounds cost less than AES-256's 14.
 */
const TUNNEL_CIPHERS = ['TLS_AES_128_GCM_SHA256', ...DEFAULT_CIPHERS.split(':').filter((c) => c !== 'TLS_AES_128_GCM_SHA256')].join(':');
/** nghttp2's memory cap for one session, in MB (the default, 10, refuses streams under load). */
const MAX_SESSION_MEMORY_MB = 64;
/**
 * Connections still in their TLS handshake or Hello, on top of the sessions allowed: past that
 * the server drops new connections unanswered (net.Server maxConnections), so a flood that never
 * authenticates cannot hold more sockets than this while the handshake timeout runs.
 */
const MAX_HANDSHAKING = 256;

export interface TunnelListenerLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface TunnelListenerOptions {
  certName: string;
  getTable: () => RoutingTable;
  tokens: TunnelTokens;
  sessions: TunnelSessions;
  routerId: string;
  /** Every live router's tunnel address (this one's included). */
  peers: () => Promise<string[]>;
  log: TunnelListenerLogger;
  handshakeTimeoutMs: number;
  /** Sessions this router holds at most (--tunnel-max-sessions). */
  maxSessions: number;
  /** Sessions one instance's agent may hold to this router (--tunnel-max-sessions-per-instance). */
  maxSessionsPerInstance: number;
  metrics: TunnelMetrics;
}

export class TunnelListener {
  readonly server: Server;
  private cert: ServedCertificate | undefined;
  /** Agents turned away since start (each one logged with its reason). */
  refused = 0;
  /** Welcomed agents whose session is not registered yet (the Welcome is being written), by `<id>.<app>`. */
  private readonly opening = new Map<string, number>();
  private openingTotal = 0;

  constructor(private readonly opts: TunnelListenerOptions) {
    this.server = createServer({ ALPNProtocols: ['paas-tunnel'] }, (socket) => void this.accept(socket));
    this.server.on('tlsClientError', () => undefined);
    this.server.maxConnections = opts.maxSessions + MAX_HANDSHAKING;
    this.refreshCert();
  }

  /** Serves the current `certs/<--tunnel-cert>` record; call after every applied change. */
  refreshCert(): void {
    const cert = this.opts.getTable().certs.get(this.opts.certName);
    if (cert === this.cert) return;
    this.cert = cert;
    if (cert === undefined) {
      this.opts.log.warn({ cert: this.opts.certName }, 'tunnel certificate missing from certs/: agents cannot connect');
      return;
    }
    this.server.setSecureContext({ cert: cert.certPem, key: cert.keyPem, ciphers: TUNNEL_CIPHERS });
  }

  /** For /status: the certificate served and the agents turned away since start. */
  describe(): { cert: string; certLoaded: boolean; sessions: number; refused: number } {
    return { cert: this.opts.certName, certLoaded: this.cert !== undefined, sessions: this.opts.sessions.size, refused: this.refused };
  }

  listen(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  close(): Promise<void> {
    this.opts.sessions.closeAll();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async accept(socket: TLSSocket): Promise<void> {
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    let hello: TunnelHello;
    try {
      const line = await readLine(socket, this.opts.handshakeTimeoutMs);
      hello = JSON.parse(line) as TunnelHello;
    } catch (err) {
      return this.refuse(socket, `bad handshake: ${(err as Error).message}`, 'bad_handshake');
    }
    if (hello === null || typeof hello !== 'object') return this.refuse(socket, 'bad handshake: not a JSON object', 'bad_handshake');
    if (hello.v !== TUNNEL_PROTOCOL) return this.refuse(socket, `protocol version ${JSON.stringify(hello.v)} is not spoken here (this router speaks ${TUNNEL_PROTOCOL})`, 'protocol_version');
    if (typeof hello.app !== 'string' || !isName(hello.app)) return this.refuse(socket, `app ${JSON.stringify(hello.app)} is not an app name`, 'bad_name');
    if (typeof hello.id !== 'string' || !isName(hello.id)) return this.refuse(socket, `id ${JSON.stringify(hello.id)} is not an instance id`, 'bad_name');
    if (typeof hello.token !== 'string') return this.refuse(socket, 'no token given', 'no_token');
    const checked = this.opts.tokens.check(hello.app, hello.token);
    if (!checked.ok) return this.refuse(socket, checked.error, checked.reason, hello);

    let routers: string[];
    try {
      routers = await this.opts.peers();
    } catch {
      routers = [];
    }
    if (socket.destroyed) return;
    // Checked last, after the token (a bad token hears about its token, not the limit), and
    // with the Welcomes being written counted: no await between this check and the reservation.
    const host = `${hello.id}.${hello.app}`;
    const max = this.opts.maxSessions;
    if (this.opts.sessions.size + this.openingTotal >= max) {
      return this.refuse(socket, `this router holds its maximum of ${max} tunnel sessions (--tunnel-max-sessions)`, 'router_full', hello, true);
    }
    const perInstance = this.opts.maxSessionsPerInstance;
    if (this.opts.sessions.countFor(host) + (this.opening.get(host) ?? 0) >= perInstance) {
      return this.refuse(socket, `instance ${hello.app}/${hello.id} already holds ${perInstance} sessions to this router, the most one instance may hold (--tunnel-max-sessions-per-instance)`, 'instance_full', hello, true);
    }
    this.reserve(host, 1);
    const welcome: TunnelWelcome = { ok: true, router: this.opts.routerId, routers };
    // HTTP/2 takes the socket's handle only once the Welcome is written out: a write still
    // queued in the TLS layer would complete into the HTTP/2 session (a native assertion).
    socket.write(`${JSON.stringify(welcome)}\n`, (err) => {
      this.reserve(host, -1);
      if (err || socket.destroyed) return socket.destroy();
      this.open(socket, hello, checked.token);
    });
  }

  private reserve(host: string, n: 1 | -1): void {
    this.openingTotal += n;
    const left = (this.opening.get(host) ?? 0) + n;
    if (left === 0) this.opening.delete(host);
    else this.opening.set(host, left);
  }

  private open(socket: TLSSocket, hello: TunnelHello, token: KnownToken): void {
    const h2 = h2connect(`http://${hello.id}.${hello.app}`, {
      createConnection: () => socket,
      settings: { initialWindowSize: TUNNEL_STREAM_WINDOW, enablePush: false },
      maxSessionMemory: MAX_SESSION_MEMORY_MB,
    });
    h2.once('connect', () => h2.setLocalWindowSize(TUNNEL_SESSION_WINDOW));
    h2.on('error', () => undefined);
    const session = new TunnelSession(hello.app, hello.id, `${hello.id}.${hello.app}`, h2, token, Date.now(), socket);
    this.opts.sessions.add(session);
    this.opts.log.info({ app: hello.app, id: hello.id, agent: `${socket.remoteAddress}:${socket.remotePort}` }, 'tunnel session opened');
    h2.once('close', () => this.opts.log.info({ app: hello.app, id: hello.id }, 'tunnel session closed'));
  }

  /** `retry`: the agent may try again later (a limit), rather than stop (its token). */
  private refuse(socket: TLSSocket, error: string, reason: RefusalReason, hello?: TunnelHello, retry = false): void {
    this.refused++;
    this.opts.metrics.refused(reason);
    this.opts.log.warn({ app: hello?.app, id: hello?.id, agent: socket.remoteAddress, reason, error }, 'tunnel agent refused');
    const refusal: TunnelRefusal = retry ? { ok: false, error, retry } : { ok: false, error };
    if (!socket.destroyed) socket.end(`${JSON.stringify(refusal)}\n`);
  }
}

