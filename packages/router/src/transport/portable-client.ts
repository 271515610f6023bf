/**
 * The portable upstream client (--upstream-client portable, and the fallback of auto): the same
 * interface and behaviour as the native client (upstream.ts) on public APIs only, undici's
 * Client over the origin scheme's Connector.
 *
 * One undici Client per connection (pipelining 1), pooled here per origin, most recently used
 * first, as the native client pools its connections: undici's Pool does not say which of its
 * connections a request went out on, and the retry rule of upstream.ts needs to know whether it
 * was a reused one. undici keeps the rest: keep-alive (threshold 2 s below an announcement,
 * capped at keepAliveMaxTimeoutMs), headers and body timeouts with the codes the native client
 * copies, pause/resume, request bodies with backpressure (chunked without a length).
 *
 * Differences from the native client, all undici's: an interim answer 100 that was not asked for
 * fails the request (UND_ERR_SOCKET, "bad response"; the native client skips it like other 1xx);
 * a request target that is neither absolute nor starting with "/" (`OPTIONS *`) is refused
 * (UND_ERR_INVALID_ARG); each reuse of an idle connection waits one setImmediate for a pending
 * FIN (then the request goes out on a fresh connection instead).
 */
import { createRequire } from 'node:module';
import { Readable, type Duplex } from 'node:stream';
import type { Client, Dispatcher } from 'undici';
import type { ConnectCallback, ConnectTarget, Connector } from './connector.js';
import { ANNOUNCED_KEEPALIVE_MARGIN_MS, noTransportError, writeAgainOnFreshConnection, type Upstream, type UpstreamClient, type UpstreamClientOptions, type UpstreamExchange } from './upstream.js';

type ClientOptions = ConstructorParameters<typeof Client>[1];

/**
 * undici, required when the first portable client is made: the native client is the default,
 * and loading undici is a measurable part of a cold start that would not use it.
 */
let undiciClient: typeof Client | undefined;
function loadUndiciClient(): typeof Client {
  return (undiciClient ??= (createRequire(import.meta.url)('undici') as typeof import('undici')).Client);
}

export class PortableUpstreamClient implements UpstreamClient {
  readonly kind = 'portable';
  private readonly pools = new Map<string, SlotPool>();
  private open = 0;
  private closing = false;
  private onAllClosed: (() => void) | null = null;

  constructor(readonly opts: UpstreamClientOptions) {
    loadUndiciClient();
    opts.connectors.onRetired(() => this.closeRetiredIdle());
  }

  /** Closes the idle connections their connector now says are retired. */
  private closeRetiredIdle(): void {
    for (const pool of this.pools.values()) {
      // dispose() takes the slot out of `idle`: a copy is walked.
      for (const slot of [...pool.idle]) if (slot.retired()) slot.dispose();
    }
  }

  request(origin: string, ex: UpstreamExchange): void {
    let pool = this.pools.get(origin);
    if (pool === undefined) {
      const connector = this.opts.connectors.for(new URL(origin).protocol);
      if (connector === undefined) {
        ex.onError(noTransportError(origin));
        return;
      }
      pool = new SlotPool(this, origin, connector);
      this.pools.set(origin, pool);
    }
    let slot = pool.idle.pop();
    // A connection of a transport that is draining (a tunnel session its agent is closing) is
    // not reused: the request goes out on a new connection, which the connector opens elsewhere.
    while (slot !== undefined && slot.retired()) {
      slot.dispose();
      slot = pool.idle.pop();
    }
    (slot ?? this.add(pool)).start(ex);
  }

  /** A new connection for the pool (connected by undici on its first request). */
  add(pool: SlotPool): Slot {
    this.open++;
    pool.open++;
    return new Slot(pool);
  }

  /** An answer is complete: the connection is kept for the next request, or closed. */
  release(slot: Slot): void {
    if (this.closing || !slot.connected || slot.retired()) slot.dispose();
    else slot.pool.idle.push(slot);
  }

  disposed(slot: Slot): void {
    const pool = slot.pool;
    if (--pool.open === 0 && this.pools.get(pool.origin) === pool) this.pools.delete(pool.origin);
    if (--this.open === 0 && this.onAllClosed !== null) this.onAllClosed();
  }

  get isClosing(): boolean {
    return this.closing;
  }

  close(): Promise<void> {
    this.closing = true;
    for (const pool of this.pools.values()) {
      for (const slot of pool.idle.splice(0)) slot.dispose();
    }
    if (this.open === 0) return Promise.resolve();
    return new Promise((resolve) => (this.onAllClosed = resolve));
  }
}

class SlotPool {
  /** Idle connections, most recently used last (reused first: least likely to be timed out). */
  readonly idle: Slot[] = [];
  open = 0;
  readonly clientOptions: ClientOptions;
  /** The origin's host name or IP address (IPv6 without brackets). */
  readonly hostname: string;
  /**
   * The origin as undici's Client takes it: http: or https: only. The connector hands undici a
   * connection that already reaches the instance, so another transport (`tunnel://<id>.<app>`)
   * is plain HTTP/1.1 over it: `http://<id>.<app>`, with the same host for the connector.
   */
  readonly undiciOrigin: string;

  constructor(
    readonly client: PortableUpstreamClient,
    readonly origin: string,
    readonly connector: Connector,
  ) {
    const opts = client.opts;
    const url = new URL(origin);
    const hostname = url.hostname;
    this.hostname = hostname.startsWith('[') ? hostname.slice(1, -1) : hostname;
    this.undiciOrigin = url.protocol === 'http:' || url.protocol === 'https:' ? origin : `http://${url.host}`;
    this.clientOptions = {
      pipelining: 1,
      keepAliveTimeout: opts.keepAliveTimeoutMs,
      keepAliveMaxTimeout: opts.keepAliveMaxTimeoutMs,
      keepAliveTimeoutThreshold: ANNOUNCED_KEEPALIVE_MARGIN_MS,
      headersTimeout: opts.upstreamTimeoutMs,
      bodyTimeout: opts.upstreamTimeoutMs,
    };
  }
}

/** One connection: an undici Client, and the dispatch handler of its one request at a time. */
class Slot implements Upstream, Dispatcher.DispatchHandler {
  private readonly undici: Client;
  ex: UpstreamExchange | null = null;
  /** undici holds a connected socket (between its 'connect' and 'disconnect' events). */
  connected = false;
  /** The connection the connector gave undici last (asked whether it is retired). */
  private socket: Duplex | null = null;
  /** The current request went out on a connection that had already served one. */
  private reused = false;
  /** Something of the current answer arrived. */
  private received = false;
  private body: BodyFeed | null = null;
  private abortRequest: ((err?: Error) => void) | null = null;
  private resumeAnswer: (() => void) | null = null;
  private isDisposed = false;
  /**
   * Reused for every request on this connection: undici copies what it needs. The servername is
   * the instance's own host: undici would otherwise take it from the Host header (the client's
   * host) and verify the instance's certificate against that. (A dispatch option undici's types
   * leave out; its own DNS interceptor sets it the same way.)
   */
  private readonly dispatchOptions: Dispatcher.DispatchOptions & { servername: string };

  constructor(readonly pool: SlotPool) {
    this.dispatchOptions = { path: '/', method: 'GET', headers: null, body: null, servername: pool.hostname };
    const connect = (target: ConnectTarget, callback: ConnectCallback) =>
      pool.connector.connect(target, (err, socket) => {
        this.socket = socket;
        callback(err, socket);
      });
    this.undici = new (loadUndiciClient())(pool.undiciOrigin, { ...pool.clientOptions, connect: connect as NonNullable<ClientOptions>['connect'] });
    this.undici.on('connect', () => (this.connected = true));
    this.undici.on('disconnect', () => {
      this.connected = false;
      // A request not yet written when the connection closed goes out on a fresh one.
      this.reused = false;
      if (this.ex === null && this.abortRequest === null) this.dispose();
    });
  }

  start(ex: UpstreamExchange): void {
    this.ex = ex;
    ex.upstream = this;
    this.reused = this.connected;
    this.received = false;
    this.abortRequest = null;
    this.resumeAnswer = null;
    this.body = ex.body === null ? null : new BodyFeed(ex.body);
    const o = this.dispatchOptions;
    o.path = ex.path;
    o.method = ex.method as Dispatcher.HttpMethod;
    o.headers = ex.headers;
    o.body = this.body;
    // Without a Host header undici writes the origin's authority, as the native client does.
    this.undici.dispatch(o, this);
  }

  /** Its connection is not to be reused (connector.ts, `retired`). */
  retired(): boolean {
    const socket = this.socket;
    return socket !== null && this.pool.connector.retired?.(socket) === true;
  }

  abort(ex: UpstreamExchange): void {
    if (this.ex !== ex) return;
    this.ex = null;
    this.body?.detach(false);
    // Not written yet: onConnect aborts it.
    this.abortRequest?.();
  }

  resume(ex: UpstreamExchange): void {
    if (this.ex === ex) this.resumeAnswer?.();
  }

  dispose(): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    const idle = this.pool.idle;
    const i = idle.lastIndexOf(this);
    if (i >= 0) idle.splice(i, 1);
    const client = this.pool.client;
    this.undici.destroy().then(
      () => client.disposed(this),
      () => client.disposed(this),
    );
  }

  // --- undici's dispatch handler ---

  onConnect(abort: (err?: Error) => void): void {
    this.abortRequest = abort;
    if (this.ex === null) abort();
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[] | string[] | null, resume: () => void, statusText: string): boolean {
    const ex = this.ex;
    if (ex === null) return false;
    this.received = true;
    // Interim answers (103) are not passed on; the final one follows on this connection.
    if (statusCode < 200) return true;
    this.resumeAnswer = resume;
    const list: string[] = [];
    if (rawHeaders !== null) for (const h of rawHeaders) list.push(typeof h === 'string' ? h : h.toString('latin1'));
    try {
      ex.onHeaders(statusCode, statusText, list);
    } catch (err) {
      // A head the client side refuses (writeHead throws): nothing more of this answer is passed on.
      this.abortRequest!(err as Error);
      return false;
    }
    return true;
  }

  onData(chunk: Buffer): boolean {
    const ex = this.ex;
    return ex !== null && ex.onData(chunk);
  }

  onComplete(): void {
    const ex = this.ex;
    this.abortRequest = null;
    if (ex === null) return;
    this.ex = null;
    // The instance answered before the whole body was sent: the rest is read off and dropped.
    this.body?.detach(true);
    this.pool.client.release(this);
    ex.onComplete();
  }

  onError(err: Error): void {
    const ex = this.ex;
    this.ex = null;
    this.abortRequest = null;
    this.body?.detach(false);
    const client = this.pool.client;
    const retry = ex !== null && writeAgainOnFreshConnection(ex, err, this.reused, this.received) && !client.isClosing;
    // undici closed or is closing the connection: this slot is not used again.
    this.dispose();
    if (ex === null) return;
    if (retry) client.add(this.pool).start(ex);
    else ex.onError(err);
  }
}

/**
 * The client's request body as undici reads it: read from the request only once undici starts
 * sending (a refused connection leaves it untouched for another instance), and when undici stops
 * (an early answer, an error) detached from the request rather than destroying it, so the
 * client's connection stays usable, as with the native client.
 */
class BodyFeed extends Readable {
  private attached = false;
  private readonly onSourceData = (chunk: Buffer) => {
    if (!this.push(chunk)) this.source.pause();
  };
  private readonly onSourceEnd = () => {
    this.detach(false);
    this.push(null);
  };

  constructor(private readonly source: Readable) {
    super();
  }

  override _read(): void {
    if (!this.attached) {
      // Ended before anything read it: an HTTP/2 stream whose END_STREAM came on an empty DATA
      // frame emits 'end' unread, and never again.
      if (this.source.readableEnded) {
        this.push(null);
        return;
      }
      this.attached = true;
      this.source.on('data', this.onSourceData);
      this.source.on('end', this.onSourceEnd);
    }
    this.source.resume();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.detach(false);
    callback(err);
  }

  /** Stops taking the request's bytes; `drain` reads the rest off and drops it. */
  detach(drain: boolean): void {
    if (!this.attached) return;
    this.attached = false;
    this.source.removeListener('data', this.onSourceData);
    this.source.removeListener('end', this.onSourceEnd);
    if (drain) this.source.resume();
  }
}
