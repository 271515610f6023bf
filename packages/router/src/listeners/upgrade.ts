/**
 * WebSocket upgrades: the traffic server's 'upgrade' listener. The same request head reading and
 * decision as plain HTTP (decision/), the same answers as raw HTTP/1.1 on the socket; a forwarded
 * upgrade becomes a byte tunnel to the instance, as nginx, HAProxy and Envoy do it: the handshake
 * (Sec-WebSocket-*, extensions) is the client's and the instance's own, and the router adds
 * X-Forwarded-* and X-Request-Id on the way in and X-Request-Id on the instance's answer.
 *
 * Until the instance's answer head arrives, nothing has reached the client, so a refused or reset
 * connection moves the upgrade to another instance (the request is a body-less GET) and the
 * contract's 502 and 504 apply as they do to plain HTTP. After the head, bytes flow both ways
 * (pipe: backpressure both ways) with no timeout: a quiet WebSocket is not a failed one.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { FAILURE_ANSWER, rawAnswer, UNAVAILABLE, type Answer } from '../decision/answers.js';
import { decide } from '../decision/decide.js';
import { addForwardedHeaders, hstsOf } from '../decision/forwarded.js';
import { readRequestHead, RequestHead } from '../decision/request-head.js';
import type { Backend } from '../table/backend.js';
import type { Connectors } from '../transport/connector.js';
import { noTransportError, UpstreamError } from '../transport/upstream.js';
import { reportBack, upstreamFailure, type ListenerOptions, type TlsEdge } from './forward.js';

/** No answer bytes yet (shared: never written to). */
const EMPTY = Buffer.alloc(0);

export interface UpgradeOptions extends ListenerOptions {
  /** The same connectors the upstream client dials through (TCP, TLS; a tunnel later). */
  connectors: Connectors;
  /** The longest wait for the instance's answer head. */
  upstreamTimeoutMs: number;
}

/** An answer head larger than this is not an answer: 502. */
const MAX_ANSWER_HEAD = 64 * 1024;
const HEAD_END = Buffer.from('\r\n\r\n');

/** How long an answered upgrade's socket may stay half-closed, waiting for the client to close its side. */
const LINGER_MS = 5000;

function ignore(): void {}

function onLingerTimeout(this: Socket): void {
  this.destroy();
}


/** What an upgrade's head is read from: Node's IncomingMessage, or the native server's UpgradeHead (h1-connection.ts). */
export interface UpgradeRequest {
  readonly method?: string;
  readonly url?: string;
  readonly httpVersion: string;
  readonly rawHeaders: string[];
  readonly headers: { upgrade?: string };
}

/** A WebSocket upgrade with the Upgrade token `websocket` (RFC 6455 §4.1: GET only). */
export function isWebSocketUpgrade(req: UpgradeRequest): boolean {
  const upgrade = req.headers.upgrade;
  return req.method === 'GET' && upgrade !== undefined && upgrade.toLowerCase() === 'websocket';
}

/** One upgrade request and, once forwarded, its tunnel. */
class Tunnel extends RequestHead {
  attempts = 0;
  dispatchedAt = performance.now();
  status = 0;
  upstream: Duplex | null = null;
  /** The instance's answer head as it arrives; null once it is through. */
  answerHead: Buffer | null = EMPTY;
  /** Why the connection to the instance failed, when it did. */
  failure: Error | null = null;
  timer: NodeJS.Timeout | null = null;
  ended = false;

  constructor(
    readonly owner: UpgradeHandler,
    readonly req: UpgradeRequest,
    readonly client: Socket,
    /** Bytes the client sent after its head (early frames). */
    readonly early: Buffer,
  ) {
    super();
  }

  dispatch(backend: Backend): void {
    const opts = this.owner.opts;
    this.backend = backend;
    this.attempts++;
    this.dispatchedAt = performance.now();
    this.failure = null;
    this.answerHead = EMPTY;
    opts.acquire(backend);
    const url = new URL(backend.origin);
    const connector = opts.connectors.for(url.protocol);
    if (connector === undefined) {
      this.failure = noTransportError(backend.origin);
      return this.upstreamFailed();
    }
    const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    // The connector gives up after the connect timeout, with undici's code.
    connector.connect({ protocol: url.protocol, hostname, port: url.port }, (err, up) => {
      if (this.backend !== backend || this.ended) {
        up?.destroy();
        return;
      }
      if (err !== null || up === null) {
        this.failure = err;
        return this.upstreamFailed();
      }
      this.upstream = up;
      let head = `GET ${this.path} HTTP/1.1\r\n`;
      const headers = this.headers;
      for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
      if (!this.hasHost) head += `host: ${url.host}\r\n`;
      up.write(`${head}\r\n`, 'latin1');
      if (this.early.length > 0) up.write(this.early);
      this.arm(opts.upstreamTimeoutMs, 'headers timeout', 'UND_ERR_HEADERS_TIMEOUT');
      up.on('data', (chunk: Buffer) => this.onAnswerData(up, chunk));
      up.on('error', (e: Error) => {
        if (this.upstream === up) this.failure ??= e;
      });
      up.once('close', () => this.upstreamClosed(up));
    });
  }

  arm(ms: number, message: string, code: string): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = ms > 0 ? setTimeout(() => this.fail(new UpstreamError(message, code)), ms) : null;
  }

  fail(err: Error): void {
    this.timer = null;
    this.failure ??= err;
    this.upstream?.destroy();
  }

  onAnswerData(up: Duplex, chunk: Buffer): void {
    if (this.answerHead === null || this.upstream !== up) return;
    const seen = Buffer.concat([this.answerHead, chunk]);
    const end = seen.indexOf(HEAD_END);
    if (end < 0) {
      if (seen.length > MAX_ANSWER_HEAD) this.fail(new UpstreamError('answer head too large', 'UND_ERR_HEADERS_OVERFLOW'));
      else this.answerHead = seen;
      return;
    }
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.answerHead = null;
    const backend = this.backend!;
    if (backend.consecutiveFailures > 0) reportBack(this.owner.opts, backend);
    this.owner.opts.metrics.observeUpstream(this.pool!.name, (performance.now() - this.dispatchedAt) / 1000);
    // "HTTP/1.1 101 Switching Protocols\r\n...": the status is the second word.
    this.status = Number(seen.toString('latin1', 9, 12)) || 0;
    up.removeAllListeners('data');
    const client = this.client;
    client.write(`${seen.toString('latin1', 0, end + 2)}x-request-id: ${this.id}\r\n\r\n`, 'latin1');
    if (end + 4 < seen.length) client.write(seen.subarray(end + 4));
    up.pipe(client);
    client.pipe(up);
  }

  upstreamClosed(up: Duplex): void {
    if (this.upstream !== up || this.ended) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.answerHead === null || this.client.destroyed) {
      // The tunnel was open (or the client left): it ends with either side.
      this.client.destroy();
      return;
    }
    this.upstreamFailed();
  }

  /** No answer head came from the instance: another instance, or the contract's 502/504. */
  upstreamFailed(): void {
    const err = this.failure ?? new UpstreamError('other side closed', 'UND_ERR_SOCKET');
    const status = upstreamFailure(this.owner.opts, this, err, true, false);
    if (status !== 0) this.answer(FAILURE_ANSWER[status]);
  }

  answer(a: Answer): void {
    this.status = a.status;
    const client = this.client;
    if (client.destroyed) return;
    // The server's sockets are half-open: ours ends here, the client's when it has read the answer.
    client.end(rawAnswer(a, this.id, this.owner.retryAfter, hstsOf(this)));
    client.resume();
    client.setTimeout(LINGER_MS, onLingerTimeout);
  }

  /** The client's socket closed: the tunnel is over. */
  finish(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.upstream?.destroy();
    const owner = this.owner;
    owner.tunnels.delete(this);
    const backend = this.backend;
    if (backend !== null) owner.opts.release(backend);
    const appName = this.pool !== null ? this.pool.name : '';
    // An upgrade the client left before any answer has no status to count.
    if (this.status !== 0) owner.opts.metrics.countRequest(appName, this.status);
    if (owner.opts.accessLog) {
      (owner.opts.accessLogger ?? owner.opts.log).info(
        {
          reqId: this.id,
          client: this.client.remoteAddress,
          method: this.method,
          host: this.hostHeader,
          url: this.req.url,
          status: this.status,
          app: appName,
          instance: backend?.id,
          upstream: backend?.origin,
          attempts: this.attempts,
          ms: Math.round(performance.now() - this.dispatchedAt),
          upgrade: 'websocket',
        },
        'request',
      );
    }
  }
}

export class UpgradeHandler {
  readonly retryAfter: string;
  /** Upgrades being answered or tunnelled, for shutdown. */
  readonly tunnels = new Set<Tunnel>();

  constructor(readonly opts: UpgradeOptions) {
    this.retryAfter = String(opts.retryAfterSeconds);
  }

  /** For a WebSocket upgrade (isWebSocketUpgrade) the HTTP server has let go of; `tls`: the TLS listener it came on, if any. */
  handle(req: UpgradeRequest, client: Socket, early: Buffer, tls: TlsEdge | null = null): void {
    const t = new Tunnel(this, req, client, early);
    this.tunnels.add(t);
    // A client error ends in 'close', which ends the tunnel.
    client.on('error', ignore);
    client.once('close', () => t.finish());
    readRequestHead(t, req.method!, req.url!, req.httpVersion, req.rawHeaders);
    if (tls !== null) {
      t.secure = true;
      t.cert = tls.certOf(client);
      tls.count(false);
    }
    // During shutdown no new WebSocket starts: close() would have to wait for it.
    const answer = this.opts.isClosing() ? UNAVAILABLE : decide(this.opts.getTable(), t, Date.now(), this.opts.httpsPort);
    if (answer !== null) return t.answer(answer);
    if (tls === null) addForwardedHeaders(t, client.remoteAddress ?? '', 'http');
    else addForwardedHeaders(t, client.remoteAddress ?? '', 'https', tls.port);
    t.headers.push('connection', 'upgrade', 'upgrade', req.headers.upgrade!);
    t.dispatch(t.backend!);
  }

  /** Ends every upgrade in progress and every tunnel (at shutdown). */
  closeAll(): void {
    for (const t of this.tunnels) t.client.destroy();
  }
}
