/**
 * One session slot to one router: connect over TLS (verified), say Hello, and once welcomed serve
 * HTTP/2 on that connection (the router is the client). When the session ends the slot connects
 * again after a jittered backoff: the first retry waits a random time up to RECONNECT_BASE_MS,
 * each failure doubles the bound up to RECONNECT_MAX_MS ("full jitter"), so the agents of a
 * restarted router come back spread out rather than in one burst. Once one slot is back, its
 * siblings waiting on the same router retry within RECONNECT_BASE_MS (retrySoon): the router is up.
 */
import { performServerHandshake, type ServerHttp2Session } from 'node:http2';
import { isIP } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { readLine, TUNNEL_PROTOCOL, type TunnelHello, type TunnelRefusal, type TunnelWelcome } from '@paas/registry';
import type { Logger } from 'pino';
import type { AgentConfig, RouterAddress } from './config.js';
import { serveStream } from './forward.js';

const RECONNECT_BASE_MS = 1000;
const RECONNECT_MAX_MS = 5000;
/** How long the TLS handshake and the router's answer to the Hello may take. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** The router is PINGed this often; one that has not answered for PING_TIMEOUT_MS is left. */
const PING_INTERVAL_MS = 1000;
const PING_TIMEOUT_MS = 4000;
/** Per-stream receive window (uploads through the tunnel), and the whole session's. */
const STREAM_WINDOW = 4 * 1024 * 1024;
const SESSION_WINDOW = 32 * 1024 * 1024;
/** Streams (upstream connections) one router may have open on one session at once. */
export const MAX_STREAMS_PER_SESSION = 4096;
const MAX_SESSION_MEMORY_MB = 64;

export interface LinkEvents {
  /** The router welcomed us and named the live routers. */
  welcomed(link: Link, welcome: TunnelWelcome): void;
  /** The router refused the Hello: nothing this agent can fix by retrying. */
  refused(link: Link, error: string): void;
  /** A connection attempt failed or a session ended. */
  lost(link: Link): void;
}

export class Link {
  session: ServerHttp2Session | undefined;
  /** Connection attempts that failed in a row. */
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private socket: TLSSocket | undefined;

  constructor(
    readonly router: RouterAddress,
    private readonly config: AgentConfig,
    private readonly log: Logger,
    private readonly events: LinkEvents,
  ) {}

  start(): void {
    this.connect();
  }

  /** The router answered another slot: a slot waiting to reconnect tries again soon. */
  retrySoon(): void {
    if (this.timer === undefined || this.stopped) return;
    clearTimeout(this.timer);
    this.failures = 0;
    this.timer = setTimeout(() => this.connect(), Math.random() * RECONNECT_BASE_MS);
  }

  /** Waits a random time up to the current bound before the next attempt (full jitter). */
  private retry(): void {
    if (this.stopped) return;
    const bound = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** Math.min(this.failures, 10));
    this.timer = setTimeout(() => this.connect(), Math.random() * bound);
  }

  private connect(): void {
    this.timer = undefined;
    if (this.stopped) return;
    const { host, port } = this.router;
    const socket = tlsConnect({
      host,
      port,
      servername: isIP(host) === 0 ? host : undefined,
      ca: this.config.ca,
      ALPNProtocols: ['paas-tunnel'],
      rejectUnauthorized: true,
    });
    this.socket = socket;
    socket.setNoDelay(true);
    let opened = false;
    const fail = (err: Error) => {
      if (opened) return;
      opened = true;
      clearTimeout(handshakeTimer);
      socket.destroy();
      this.failures++;
      this.log.warn({ router: this.router.url, err: err.message }, 'could not open a tunnel session; will retry');
      this.events.lost(this);
      this.retry();
    };
    const handshakeTimer = setTimeout(() => fail(new Error(`no answer within ${HANDSHAKE_TIMEOUT_MS} ms`)), HANDSHAKE_TIMEOUT_MS);
    socket.once('error', fail);
    socket.once('secureConnect', () => {
      const hello: TunnelHello = { v: TUNNEL_PROTOCOL, app: this.config.app, id: this.config.id, token: this.config.token };
      socket.write(`${JSON.stringify(hello)}\n`);
      readLine(socket, HANDSHAKE_TIMEOUT_MS).then((line) => {
        if (opened) return;
        let answer: TunnelWelcome | TunnelRefusal;
        try {
          answer = JSON.parse(line) as TunnelWelcome | TunnelRefusal;
        } catch {
          return fail(new Error(`the router answered ${JSON.stringify(line.slice(0, 100))}, not a tunnel welcome`));
        }
        // A limit of the router's: say why and try again after the backoff, as after a failure.
        if (!answer.ok && answer.retry === true) return fail(new Error(`refused for now: ${String(answer.error)}`));
        if (!answer.ok) {
          opened = true;
          clearTimeout(handshakeTimer);
          socket.destroy();
          this.events.refused(this, String(answer.error));
          return;
        }
        opened = true;
        clearTimeout(handshakeTimer);
        socket.removeListener('error', fail);
        this.failures = 0;
        this.serve(socket, answer);
      }, fail);
    });
  }

  private serve(socket: TLSSocket, welcome: TunnelWelcome): void {
    const session = performServerHandshake(socket, {
      settings: { initialWindowSize: STREAM_WINDOW, maxConcurrentStreams: MAX_STREAMS_PER_SESSION, enablePush: false },
      maxSessionMemory: MAX_SESSION_MEMORY_MB,
    });
    this.session = session;
    session.on('error', () => undefined); // 'close' follows
    session.once('connect', () => session.setLocalWindowSize(SESSION_WINDOW));
    session.on('stream', (stream, headers) => serveStream(stream, headers, this.config.to));
    session.on('goaway', (code: number, _last: number, data?: Buffer) => {
      if (data !== undefined && data.length > 0) this.log.warn({ router: this.router.url, code, reason: data.toString('utf8') }, 'the router closed the tunnel session');
    });
    let pingSentAt = 0;
    const pinger = setInterval(() => {
      // Draining (GOAWAY sent or received): Node cancels every PING from then on, so none is
      // sent; the drain is bounded by --drain-timeout instead.
      if (session.closed) return;
      const now = Date.now();
      if (pingSentAt !== 0) {
        if (now - pingSentAt >= PING_TIMEOUT_MS) {
          this.log.warn({ router: welcome.router, pingTimeoutMs: PING_TIMEOUT_MS }, 'the router did not answer PING: reconnecting');
          session.destroy();
        }
        return;
      }
      pingSentAt = now;
      try {
        session.ping((err) => {
          if (err === null) pingSentAt = 0;
        });
      } catch {
        // closing
      }
    }, PING_INTERVAL_MS);
    pinger.unref();
    this.log.info({ router: welcome.router, url: this.router.url }, 'tunnel session open');
    this.events.welcomed(this, welcome);
    session.once('close', () => {
      clearInterval(pinger);
      this.session = undefined;
      if (this.stopped) return;
      this.log.info({ router: welcome.router, url: this.router.url }, 'tunnel session ended; reconnecting');
      this.events.lost(this);
      this.retry();
    });
  }

  /** Whether a session is open on this slot. */
  get open(): boolean {
    return this.session !== undefined && !this.session.closed;
  }

  /** No more connections; the open session takes no new streams and ends once its streams have. */
  drain(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const session = this.session;
    if (session === undefined) {
      this.socket?.destroy();
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      if (session.destroyed) return resolve();
      session.once('close', () => resolve());
      session.close();
    });
  }

  /** Ends everything now. */
  cut(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.session?.destroy();
    this.socket?.destroy();
  }
}

