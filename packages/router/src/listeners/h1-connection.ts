/**
 * The native HTTP/1.1 server side (--client-parser native): client connections of the plain
 * listener and the TLS listener's HTTP/1.1 ones, parsed by Node's own llhttp binding
 * (transport/http-parser.ts) reading the socket's handle in C++, as Node's http.Server does,
 * but without its per-request objects: no IncomingMessage, no ServerResponse, no stream state
 * per message, no socket timer per request. Each request head goes to the forwarder as an
 * exchange (forward.ts, SocketExchange) whose answer this module writes to the socket: the head
 * as one string, sent with the first body bytes (one write for a small answer).
 *
 * Kept from Node's server (lib/_http_server.js), so --client-parser node behaves the same:
 * - keep-alive: `Connection: keep-alive` and `Keep-Alive: timeout=N` on answers, idle
 *   connections closed after the client keep-alive timeout; `Connection: close` when the
 *   client asked for it, when the router drains (drain.ts) and after a refused framing;
 * - a request head must be complete within --request-header-timeout of its first byte (of the
 *   connection's start for the first one): else 408; a head too large is 431, an unparsable
 *   one 400, each closing the connection;
 * - pipelining: requests are answered in order, one at a time; reading stops while a parsed
 *   request waits for the one before it (a flood of pipelined requests stays in the socket);
 * - request bodies (length or chunked) as a Readable with backpressure to the socket;
 * - `Expect: 100-continue` answered 100 before the body is read (the forwarder, as for HTTP/2);
 * - a WebSocket upgrade leaves HTTP with the bytes after its head (upgrade.ts); another
 *   Upgrade (h2c) is served as a plain request and the connection goes on as HTTP/1.1;
 * - `Date` on every answer, chunked framing for an answer without length to an HTTP/1.1
 *   client (HTTP/1.0: the connection ends the answer).
 * Timeouts are found by one sweep per listener (as Node's connectionsCheckingInterval does for
 * header deadlines), so a request costs two clock reads rather than timer updates.
 */
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { BAD_REQUEST, HEADERS_TOO_LARGE, rawAnswer, REQUEST_TIMEOUT, type Answer } from '../decision/answers.js';
import { nodeHttp } from '../node-http.js';
import {
  loadHttpParser,
  loadRequestMethods,
  type HttpParserClass,
  type NativeParser,
  type OnBody,
  type OnExecute,
  type OnHeaders,
  type OnHeadersComplete,
  type OnMessageBegin,
  type OnMessageComplete,
  type StreamHandle,
} from '../transport/http-parser.js';

/** What the connection needs of the exchange answering a request (forward.ts, SocketExchange). */
export interface Http1Exchange {
  /** The request body as the exchange reads it, when the head announced one. */
  reqBody: RequestBody | null;
  /** The client asked for keep-alive (llhttp's view of its version and Connection); set by the connection. */
  keepAlive: boolean;
  /** The answer was written to its end; set by the connection. */
  answerEnded: boolean;
  /** The exchange's turn: decide and answer (or forward). */
  start(): void;
  /** The answer is over (complete, or the client gone): counts, logs, frees the upstream request. */
  closed(): void;
}

/** A WebSocket upgrade's head, for upgrade.ts (the shape of Node's IncomingMessage it reads). */
export interface UpgradeHead {
  readonly method: string;
  readonly url: string;
  readonly httpVersion: string;
  readonly rawHeaders: string[];
  readonly headers: { upgrade?: string };
}

export interface Http1Options {
  keepAliveTimeoutMs: number;
  requestHeaderTimeoutMs: number;
  /** True while draining: every answer closes its connection. */
  isClosing(): boolean;
  /** A request head (not an upgrade): the exchange that will answer it once its turn comes. */
  request(conn: Http1Connection, method: string, target: string, httpVersion: string, raw: string[]): Http1Exchange;
  /** A WebSocket upgrade: the socket is not HTTP any more; `early`: the bytes after its head. */
  upgrade(head: UpgradeHead, socket: Socket, early: Buffer): void;
}

const kConn = Symbol('paas.h1.conn');
type Tracked<T> = T & { [kConn]?: Http1Connection };

const EMPTY = Buffer.alloc(0);
/**
 * Parsers of closed connections kept for new ones, as Node's server keeps its own (`parsers`
 * FreeList in lib/_http_common.js, the same bound): a connection then costs an `initialize`
 * instead of a native parser made, its callbacks set, and closed on a later turn.
 */
const FREE_PARSERS = 1000;
const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';
/** An answer's first body chunk up to this size goes out in one buffer with the head (copied); a larger one beside it (writev). */
const COALESCE_MAX = 16 * 1024;

/** Node's Date value, cached for the second it names (as Node's utcDate). */
let dateCache: string | undefined;
function resetDate(): void {
  dateCache = undefined;
}
function utcDate(): string {
  if (dateCache === undefined) {
    const d = new Date();
    dateCache = d.toUTCString();
    setTimeout(resetDate, 1000 - d.getMilliseconds()).unref();
  }
  return dateCache;
}

/** The request body: the socket reads on while the exchange's reader wants more. */
export class RequestBody extends Readable {
  constructor(private readonly conn: Http1Connection) {
    super();
  }

  override _read(): void {
    this.conn.bodyWanted();
  }
}

/** One listener's native HTTP/1.1 connections and their timeouts. */
export class Http1Server {
  readonly HTTPParser: HttpParserClass;
  readonly methods: string[];
  readonly connections = new Set<Http1Connection>();
  readonly keepAliveHeader: string;
  private readonly freeParsers: Tracked<NativeParser>[] = [];
  private sweeper: NodeJS.Timeout | null = null;
  private readonly sweepMs: number;

  constructor(readonly opts: Http1Options) {
    this.HTTPParser = loadHttpParser();
    this.methods = loadRequestMethods();
    this.keepAliveHeader = `Connection: keep-alive\r\nKeep-Alive: timeout=${Math.floor(opts.keepAliveTimeoutMs / 1000)}\r\n`;
    // Late by at most this much; a quarter of the shorter timeout, as Node checks header deadlines.
    this.sweepMs = Math.min(250, Math.max(1, Math.floor(Math.min(opts.keepAliveTimeoutMs, opts.requestHeaderTimeoutMs || opts.keepAliveTimeoutMs) / 4)));
  }

  /** Serves a client connection (plain TCP, or TLS after its handshake chose HTTP/1.1). */
  serve(socket: Socket): void {
    const conn = new Http1Connection(this, socket);
    this.connections.add(conn);
    if (this.sweeper === null) {
      this.sweeper = setInterval(sweep, this.sweepMs, this);
      this.sweeper.unref();
    }
    conn.begin();
  }

  /** A parser ready for a new connection's first request, its callbacks set. */
  takeParser(): Tracked<NativeParser> {
    const HTTPParser = this.HTTPParser;
    let parser = this.freeParsers.pop();
    if (parser === undefined) {
      parser = new HTTPParser();
      parser[HTTPParser.kOnMessageBegin] = parserOnMessageBegin;
      parser[HTTPParser.kOnHeaders] = parserOnHeaders;
      parser[HTTPParser.kOnHeadersComplete] = parserOnHeadersComplete;
      parser[HTTPParser.kOnBody] = parserOnBody;
      parser[HTTPParser.kOnMessageComplete] = parserOnMessageComplete;
      parser[HTTPParser.kOnExecute] = parserOnExecute;
    }
    parser.initialize(HTTPParser.REQUEST, {}, 0, 0);
    return parser;
  }

  /**
   * A closed connection's parser, no longer consuming its handle and tied to no connection.
   * Only from 'close' (a later tick than any of the parser's own callbacks): one let go inside
   * its callbacks (an upgrade) is closed instead, once they have returned.
   */
  giveParser(parser: Tracked<NativeParser>): void {
    if (this.freeParsers.length < FREE_PARSERS) this.freeParsers.push(parser);
    else setImmediate(closeParser, parser);
  }

  forget(conn: Http1Connection): void {
    this.connections.delete(conn);
    if (this.connections.size === 0 && this.sweeper !== null) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  }
}

function sweep(server: Http1Server): void {
  const now = performance.now();
  const { keepAliveTimeoutMs, requestHeaderTimeoutMs } = server.opts;
  for (const conn of server.connections) {
    if (conn.headSince >= 0) {
      if (requestHeaderTimeoutMs > 0 && now - conn.headSince >= requestHeaderTimeoutMs) conn.refuse(REQUEST_TIMEOUT);
    } else if (conn.idleSince >= 0 && now - conn.idleSince >= keepAliveTimeoutMs) {
      conn.socket.destroy();
    }
  }
}

export class Http1Connection {
  readonly parser: Tracked<NativeParser>;
  /** The TCP or TLS handle llhttp reads from; null: fed from 'data' events. */
  private handle: StreamHandle | null = null;
  /** The exchange being answered, and those parsed behind it (pipelined), in order. */
  current: Http1Exchange | null = null;
  private readonly queue: Http1Exchange[] = [];
  /** The exchange whose request message llhttp is parsing (its body goes there). */
  private reading: Http1Exchange | null = null;
  /** The current request's message has been read to its end. */
  private messageDone = false;
  /** The current answer has been written to its end. */
  private answerDone = false;
  /** When the head being read started (ms, performance.now()); -1: not reading a head. */
  headSince: number;
  /** When the connection went idle; -1: not idle. */
  idleSince = -1;
  /** The connection closes after the current answer. */
  private closeAfter = false;
  /** The router is done with the connection (closing, upgraded, or closed). */
  private finished = false;
  /** Reading stopped: the body's reader is full, or requests are waiting their turn. */
  private bodyFull = false;
  private readPaused = false;
  /** Body bytes of a request whose answer is done (or refused) are dropped. */
  private discarding = false;
  /** Header pairs and target of a head llhttp hands over in parts (more than 32 pairs). */
  private partial: string[] | null = null;
  private partialUrl = '';
  /** A WebSocket upgrade read (its head), waiting for its message to end or its turn. */
  private upgradeHead: UpgradeHead | null = null;
  private upgradeReady = false;
  /** An upgrade other than WebSocket was served as a request: llhttp stops after its message and is started again. */
  private restartAfterUpgrade = false;
  /** The current answer: its head until body bytes go with it, and its framing. */
  private pendingHead: string | null = null;
  private chunked = false;
  private bodyless = false;
  private drainWaiter: (() => void) | null = null;

  constructor(
    readonly server: Http1Server,
    readonly socket: Tracked<Socket>,
  ) {
    this.headSince = performance.now();
    const parser = server.takeParser();
    parser[kConn] = this;
    this.parser = parser;
  }

  begin(): void {
    const socket = this.socket;
    socket[kConn] = this;
    socket.on('error', ignore);
    socket.on('end', onSocketEnd);
    socket.on('close', onSocketClose);
    socket.on('drain', onSocketDrain);
    // As Node's server: llhttp reads the handle in C++ (TCP, and TLS's decrypted stream).
    const handle = (socket as unknown as { _handle?: (StreamHandle & { isStreamBase?: boolean; _consumed?: boolean }) | null })._handle;
    // Bytes already buffered on the socket's stream (none, as a rule) are read from it instead.
    if (handle != null && handle.isStreamBase === true && handle._externalStream !== undefined && handle._consumed !== true && socket.readableLength === 0) {
      handle._consumed = true;
      this.handle = handle;
      this.parser.consume(handle);
    } else {
      socket.on('data', onSocketData);
    }
    socket.resume();
  }

  /** A request body's reader, fed by onBody. */
  openBody(): RequestBody {
    return new RequestBody(this);
  }

  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }

  // --- reading ---

  onMessageBegin(): void {
    this.headSince = performance.now();
    this.idleSince = -1;
  }

  onHeaders(headers: string[], url: string): void {
    if (this.partial === null) this.partial = headers;
    else for (const h of headers) this.partial.push(h);
    this.partialUrl += url;
  }

  onHeadersComplete(major: number, minor: number, headers: string[] | undefined, method: number | undefined, url: string | undefined, upgrade: boolean, keepAlive: boolean): number {
    this.headSince = -1;
    let raw = headers ?? [];
    let target = url ?? '';
    if (this.partial !== null) {
      raw = headers === undefined ? this.partial : this.partial.concat(headers);
      target = this.partialUrl + target;
      this.partial = null;
      this.partialUrl = '';
    }
    if (this.finished) return 1;
    const name = this.server.methods[method ?? -1] ?? '';
    const version = major === 1 && minor === 1 ? '1.1' : major === 1 && minor === 0 ? '1.0' : `${major}.${minor}`;
    if (upgrade) {
      const value = headerValue(raw, 'upgrade');
      if (name === 'GET' && value !== undefined && value.toLowerCase() === 'websocket') {
        this.upgradeHead = { method: name, url: target, httpVersion: version, rawHeaders: raw, headers: { upgrade: value } };
        return 0;
      }
      // CONNECT: the router is no forward proxy; Node's server (no 'connect' listener) drops the connection.
      if (name === 'CONNECT') {
        this.socket.destroy();
        return 1;
      }
      // h2c and the like: served over HTTP/1.1 as though not asked (as nginx does).
      this.restartAfterUpgrade = true;
    }
    const ex = this.server.opts.request(this, name, target, version, raw);
    ex.keepAlive = keepAlive;
    this.reading = ex;
    if (this.current === null) {
      this.open(ex);
    } else {
      // Pipelined behind an answer still going: its turn comes when that answer ends; meanwhile
      // no more is read than what arrived with it.
      this.queue.push(ex);
      this.pauseReading();
    }
    return 0;
  }

  onBody(chunk: Buffer): void {
    const ex = this.reading;
    if (ex === null || ex.reqBody === null || (this.discarding && ex === this.current)) return;
    if (!ex.reqBody.push(chunk)) {
      this.bodyFull = true;
      this.pauseReading();
    }
  }

  onMessageComplete(): void {
    // Trailers arrive as a late header list: dropped, as Node's server leaves them off rawHeaders.
    this.partial = null;
    this.partialUrl = '';
    if (this.upgradeHead !== null) {
      this.upgradeReady = true;
      return;
    }
    const ex = this.reading;
    if (ex === null) return;
    this.reading = null;
    ex.reqBody?.push(null);
    // An ended body's reader asks for nothing more (_read is not called again), so a buffer it
    // left full must not keep the connection from reading: next() resumes it after the answer.
    this.bodyFull = false;
    if (ex === this.current) {
      this.messageDone = true;
      if (this.answerDone) this.next();
    }
  }

  /** After llhttp parsed a read: `ret` bytes of `data` (null: read from the handle). */
  afterExecute(ret: number | Error, data: Buffer | null): void {
    if (ret instanceof Error) {
      const code = (ret as NodeJS.ErrnoException).code;
      // Bytes after a request that asked to close: its answer ends the connection, they are not read.
      if (code === 'HPE_CLOSED_CONNECTION') {
        this.pauseReading();
        return;
      }
      this.refuse(code === 'HPE_HEADER_OVERFLOW' ? HEADERS_TOO_LARGE : BAD_REQUEST);
      return;
    }
    if (this.upgradeReady) {
      this.leaveForUpgrade(this.unparsed(ret, data));
      return;
    }
    if (this.restartAfterUpgrade) {
      this.restartAfterUpgrade = false;
      const rest = this.unparsed(ret, data);
      // llhttp stops after an upgrade's message: a fresh parse picks up the bytes after it.
      this.parser.initialize(this.server.HTTPParser.REQUEST, {}, 0, 0);
      if (rest.length > 0 && !this.finished) this.afterExecute(this.parser.execute(rest), rest);
    }
  }

  // --- the turn of an exchange ---

  private open(ex: Http1Exchange): void {
    this.current = ex;
    this.messageDone = ex !== this.reading;
    this.answerDone = false;
    this.discarding = false;
    this.pendingHead = null;
    this.idleSince = -1;
    ex.start();
  }

  private next(): void {
    this.current = null;
    if (this.finished) return;
    const ex = this.queue.shift();
    if (ex !== undefined) {
      this.open(ex);
      if (this.queue.length === 0 && this.upgradeHead === null) this.resumeReading();
      return;
    }
    if (this.upgradeReady) {
      this.leaveForUpgrade(EMPTY);
      return;
    }
    if (this.headSince < 0) this.idleSince = performance.now();
    this.resumeReading();
  }

  /** The bytes of a read that llhttp stopped before (`ret` parsed; `data` null: read from the handle). */
  private unparsed(ret: number, data: Buffer | null): Buffer {
    const buffer = data ?? this.parser.getCurrentBuffer();
    return ret < buffer.length ? buffer.subarray(ret) : EMPTY;
  }

  /** The body's reader wants more (RequestBody#_read). */
  bodyWanted(): void {
    if (!this.bodyFull) return;
    this.bodyFull = false;
    if (this.queue.length === 0) this.resumeReading();
  }

  private pauseReading(): void {
    if (this.readPaused) return;
    this.readPaused = true;
    const handle = this.handle;
    if (handle === null) this.socket.pause();
    else if (handle.reading) {
      handle.reading = false;
      handle.readStop();
    }
  }

  private resumeReading(): void {
    if (!this.readPaused || this.bodyFull || this.finished) return;
    this.readPaused = false;
    const handle = this.handle;
    if (handle === null) this.socket.resume();
    else if (!handle.reading && !this.socket.destroyed) {
      handle.reading = true;
      handle.readStart();
    }
  }

  /** The WebSocket upgrade's turn: the socket leaves HTTP with the bytes read after its head. */
  private leaveForUpgrade(early: Buffer): void {
    if (this.current !== null) {
      // An answer before it is still going: the upgrade waits for it, nothing more is read.
      this.pauseReading();
      if (early.length > 0) this.socket.unshift(early);
      return;
    }
    const head = this.upgradeHead!;
    this.upgradeHead = null;
    this.upgradeReady = false;
    this.detach();
    this.server.opts.upgrade(head, this.socket, early);
  }

  /** The router lets go of the socket (upgrade): llhttp and the listeners come off. */
  private detach(): void {
    this.finished = true;
    this.headSince = -1;
    this.idleSince = -1;
    const socket = this.socket;
    socket.off('error', ignore);
    socket.off('end', onSocketEnd);
    socket.off('close', onSocketClose);
    socket.off('drain', onSocketDrain);
    socket.off('data', onSocketData);
    this.releaseParser(false);
    this.server.forget(this);
    // The upgrade's reader reads from the socket's own stream again.
    if (this.readPaused && this.handle !== null) {
      this.readPaused = false;
      const handle = this.handle;
      if (!handle.reading && !socket.destroyed) {
        handle.reading = true;
        handle.readStart();
      }
    }
    socket.pause();
  }

  /** `reuse`: the connection closed (see Http1Server.giveParser); else it left HTTP, maybe inside a parser callback. */
  private releaseParser(reuse: boolean): void {
    const handle = this.handle;
    if (handle !== null) {
      this.parser.unconsume();
      (handle as StreamHandle & { _consumed?: boolean })._consumed = false;
    }
    this.parser[kConn] = undefined;
    if (reuse) this.server.giveParser(this.parser);
    // Possibly inside one of its own callbacks: closed (freed) once they have returned, as Node's server does.
    else setImmediate(closeParser, this.parser);
  }

  /** A head the router refuses before any exchange took it (bad framing, too large, too slow): the answer, then close. */
  refuse(answer: Answer): void {
    if (this.finished) return;
    this.headSince = -1;
    const socket = this.socket;
    // An answer is under way (or done, closing): it stands; the connection ends with it.
    if (this.current !== null && (this.pendingHead !== null || this.answerDone || this.closeAfter)) {
      this.finished = true;
      if (this.pendingHead !== null) socket.destroy();
      else socket.destroySoon();
      return;
    }
    this.finished = true;
    answerAndClose(socket, answer);
  }

  onEnd(): void {
    if (this.finished) return;
    // The client has sent all it will: a message cut short is a bad request. Else the
    // connection ends from this side too, as Node's server ends it (httpAllowHalfOpen off): a
    // client that stops sending has left, and the request in flight is given up (onClose).
    const err = this.parser.finish();
    if (err !== undefined) {
      this.afterExecute(err, null);
      return;
    }
    this.finished = true;
    this.headSince = -1;
    this.socket.end();
  }

  onClose(): void {
    this.finished = true;
    this.server.forget(this);
    if (this.parser[kConn] === this) this.releaseParser(true);
    const ex = this.current;
    // Closed while current: an answer not ended is given up (the upstream request freed).
    if (ex !== null && !this.answerDone) {
      this.answerDone = true;
      ex.closed();
    }
    this.current = null;
    if (ex?.reqBody != null && !ex.reqBody.readableEnded) ex.reqBody.destroy();
    for (const queued of this.queue.splice(0)) queued.reqBody?.destroy();
    if (this.reading !== null && this.reading !== ex) this.reading.reqBody?.destroy();
    this.reading = null;
  }

  // --- the current answer, written by its exchange ---

  /** Expect: 100-continue, answered as the exchange's turn comes. */
  writeContinue(): void {
    this.socket.write(CONTINUE, 'latin1');
  }

  /**
   * The answer's head (sent with its first body bytes). A `Connection: close` among `headers`
   * (answers.ts, forwarded.ts add it while draining or on refused framing) ends the connection after it.
   */
  writeHead(ex: Http1Exchange, method: string, httpVersion: string, status: number, statusText: string, headers: string[]): void {
    let head = `HTTP/1.1 ${status} ${statusText || nodeHttp.STATUS_CODES[status] || 'unknown'}\r\n`;
    let length = false;
    let connection = false;
    let date = false;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      const value = headers[i + 1]!;
      head += `${name}: ${value}\r\n`;
      const n = name.length;
      if (n === 14) {
        if (!length && name.toLowerCase() === 'content-length') length = true;
      } else if (n === 10) {
        if (name.toLowerCase() === 'connection') {
          connection = true;
          if (value.toLowerCase().includes('close')) this.closeAfter = true;
        }
      } else if (n === 4 && name.toLowerCase() === 'date') {
        date = true;
      }
    }
    if (!date) head += `Date: ${utcDate()}\r\n`;
    this.bodyless = method === 'HEAD' || status === 204 || status === 304 || status < 200;
    this.chunked = false;
    let keepAlive = ex.keepAlive && !this.closeAfter && !this.server.opts.isClosing();
    if (!this.bodyless && !length) {
      if (httpVersion === '1.1') {
        this.chunked = true;
        head += 'Transfer-Encoding: chunked\r\n';
      } else {
        // HTTP/1.0 without a length: the end of the connection ends the answer.
        keepAlive = false;
      }
    }
    if (!keepAlive) this.closeAfter = true;
    if (!connection) head += keepAlive ? this.server.keepAliveHeader : 'Connection: close\r\n';
    this.pendingHead = `${head}\r\n`;
  }

  /** False: wait for drain (onceDrained). */
  write(chunk: Buffer): boolean {
    if (this.bodyless || chunk.length === 0) return true;
    const socket = this.socket;
    const head = this.pendingHead;
    if (this.chunked) {
      this.pendingHead = null;
      return writeChunk(socket, head, chunk, false);
    }
    if (head === null) return socket.write(chunk);
    this.pendingHead = null;
    return writeHeadWith(socket, head, chunk);
  }

  onceDrained(resume: () => void): void {
    this.drainWaiter = resume;
  }

  onDrain(): void {
    const waiter = this.drainWaiter;
    if (waiter === null) return;
    this.drainWaiter = null;
    waiter();
  }

  /** The answer's end, with its last bytes (a Buffer from an instance, a string of the router's own). */
  end(ex: Http1Exchange, last?: Buffer | string): void {
    if (ex !== this.current || this.answerDone) return;
    const socket = this.socket;
    const head = this.pendingHead;
    this.pendingHead = null;
    if (this.bodyless || last === undefined || last.length === 0) {
      const tail = this.chunked ? '0\r\n\r\n' : '';
      if (head !== null) socket.write(head + tail, 'latin1');
      else if (tail !== '') socket.write(tail, 'latin1');
    } else if (this.chunked) {
      writeChunk(socket, head, last, true);
    } else if (typeof last === 'string') {
      if (Buffer.byteLength(last) === last.length) {
        // ASCII: one latin1 string.
        socket.write((head ?? '') + last, 'latin1');
      } else {
        if (head !== null) socket.write(head, 'latin1');
        socket.write(last);
      }
    } else if (head !== null) {
      writeHeadWith(socket, head, last);
    } else {
      socket.write(last);
    }
    this.answerEnded(ex);
  }

  /** The head went out, or is waiting for body bytes. */
  get headed(): boolean {
    return this.pendingHead !== null;
  }

  /** The exchange's turn is over (answered, or the connection gone). */
  isAnswered(ex: Http1Exchange): boolean {
    return ex !== this.current || this.answerDone;
  }

  /** Drops the rest of the current request's body (the answer does not need it). */
  discard(ex: Http1Exchange): void {
    if (ex !== this.current) return;
    this.discarding = true;
    const body = ex.reqBody;
    if (body !== null && !body.readableEnded) body.resume();
    if (this.bodyFull) {
      this.bodyFull = false;
      if (this.queue.length === 0) this.resumeReading();
    }
  }

  /** The connection ends after the current answer. */
  closeAfterAnswer(): void {
    this.closeAfter = true;
  }

  private answerEnded(ex: Http1Exchange): void {
    ex.answerEnded = true;
    this.answerDone = true;
    this.drainWaiter = null;
    ex.closed();
    if (this.closeAfter || this.finished) {
      this.finished = true;
      this.socket.destroySoon();
      return;
    }
    if (this.messageDone) this.next();
    else this.discard(ex);
  }
}

/**
 * One chunk of a chunked answer, after the pending head when there is one, and with `last` the
 * terminating chunk too: corked, so it leaves as one write.
 */
function writeChunk(socket: Socket, head: string | null, chunk: Buffer | string, last: boolean): boolean {
  const size = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
  socket.cork();
  socket.write(`${head ?? ''}${size.toString(16)}\r\n`, 'latin1');
  socket.write(chunk);
  const ok = socket.write(last ? '\r\n0\r\n\r\n' : '\r\n', 'latin1');
  socket.uncork();
  return ok;
}

/** The head and a body chunk: one buffer when the chunk is small, else both in one writev. */
function writeHeadWith(socket: Socket, head: string, chunk: Buffer): boolean {
  if (chunk.length <= COALESCE_MAX) {
    const buf = Buffer.allocUnsafe(head.length + chunk.length);
    buf.write(head, 0, 'latin1');
    chunk.copy(buf, head.length);
    return socket.write(buf);
  }
  socket.cork();
  socket.write(head, 'latin1');
  const ok = socket.write(chunk);
  socket.uncork();
  return ok;
}

/**
 * A head refused before any exchange took it (Node's server: its clientError): the router's own
 * answer, then the connection closes; a socket that can no longer be written to just closes.
 */
export function answerAndClose(socket: Socket, answer: Answer): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(rawAnswer(answer, randomUUID(), ''), () => socket.destroy());
}

/** The first value of a header (lower-case name) in a raw list. */
function headerValue(raw: string[], lower: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === lower.length && raw[i]!.toLowerCase() === lower) return raw[i + 1];
  }
  return undefined;
}

function ignore(): void {}

function closeParser(parser: NativeParser): void {
  parser.close();
}

function onSocketEnd(this: Tracked<Socket>): void {
  this[kConn]?.onEnd();
}

function onSocketClose(this: Tracked<Socket>): void {
  this[kConn]?.onClose();
}

function onSocketDrain(this: Tracked<Socket>): void {
  this[kConn]?.onDrain();
}

function onSocketData(this: Tracked<Socket>, data: Buffer): void {
  const conn = this[kConn];
  if (conn === undefined) return;
  conn.afterExecute(conn.parser.execute(data), data);
}

const parserOnExecute: OnExecute = function (ret) {
  (this as Tracked<NativeParser>)[kConn]?.afterExecute(ret, null);
};

const parserOnMessageBegin: OnMessageBegin = function () {
  (this as Tracked<NativeParser>)[kConn]!.onMessageBegin();
};

const parserOnHeaders: OnHeaders = function (headers, url) {
  (this as Tracked<NativeParser>)[kConn]!.onHeaders(headers, url);
};

const parserOnHeadersComplete: OnHeadersComplete = function (major, minor, headers, method, url, _statusCode, _statusMessage, upgrade, shouldKeepAlive) {
  return (this as Tracked<NativeParser>)[kConn]!.onHeadersComplete(major, minor, headers, method, url, upgrade, shouldKeepAlive);
};

const parserOnBody: OnBody = function (chunk) {
  (this as Tracked<NativeParser>)[kConn]!.onBody(chunk);
};

const parserOnMessageComplete: OnMessageComplete = function () {
  (this as Tracked<NativeParser>)[kConn]!.onMessageComplete();
};
