/**
 * The `tunnel:` transport: an upstream connection to a tunnel instance is one HTTP/2 stream
 * (CONNECT) on a session its agent opened to this router; the agent joins the stream to a new
 * TCP connection to its app (`--to`) and answers 200 once that connection is up. The upstream
 * clients and the WebSocket handler then speak HTTP/1.1 over the stream as over a socket, so the
 * routing decision, headers (Host, X-Forwarded-*), retries and failure answers are the same as
 * for a direct instance; only the transport differs. Each connection being its own stream, HTTP/2
 * flow control keeps one slow reader from stalling the others.
 *
 * No usable session on this router: the connect fails with NO_TUNNEL_SESSION, so the instance is
 * skipped, and when it was the last the answer is the contract's 503 (an instance this router
 * cannot reach yet is not ready here), not a 502. The agent could not reach its app: ECONNREFUSED,
 * like an instance that refuses connections. A stream reset
 * after that is a dropped connection (ECONNRESET): before the answer started the request may go
 * elsewhere; after, the client's connection is cut.
 */
import { constants, type ClientHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import { NO_TUNNEL_SESSION } from '../decision/failure.js';
import { UpstreamError } from '../transport/upstream.js';
import type { ConnectCallback, ConnectTarget, Connector } from '../transport/connector.js';
import { CoalescedStream } from './coalesce.js';
import type { StreamRefusalReason } from './metrics.js';
import type { TunnelSession, TunnelSessions } from './sessions.js';

const kSession = Symbol('paas.tunnelSession');
type TunnelStream = ClientHttp2Stream & { [kSession]?: TunnelSession };
type CoalescedSocket = CoalescedStream & { [kSession]?: TunnelSession };

const CONNECT_HEADERS_METHOD = constants.HTTP2_HEADER_METHOD;
const CONNECT_HEADERS_AUTHORITY = constants.HTTP2_HEADER_AUTHORITY;

/** Stream errors read as a dropped connection by the failure classification (decision/failure.ts). */
function asReset(err: Error & { code?: string }): void {
  if (err.code !== 'ECONNRESET') err.code = 'ECONNRESET';
}

export class TunnelConnector implements Connector {
  constructor(
    private readonly sessions: TunnelSessions,
    private readonly timeoutMs: number,
    /** Counts a stream that could not be opened (metrics). */
    private readonly refused: (reason: StreamRefusalReason) => void,
  ) {}

  connect(target: ConnectTarget, callback: ConnectCallback): void {
    const session = this.sessions.pick(target.hostname);
    if (session === undefined) {
      this.refused('no_session');
      callback(new UpstreamError(`no tunnel session to ${target.hostname} on this router`, NO_TUNNEL_SESSION), null);
      return;
    }
    let stream: TunnelStream;
    try {
      stream = session.h2.request({ [CONNECT_HEADERS_METHOD]: 'CONNECT', [CONNECT_HEADERS_AUTHORITY]: target.hostname }, { endStream: false });
    } catch (err) {
      this.refused('session_closing');
      callback(new UpstreamError(`tunnel session to ${target.hostname} is closing: ${(err as Error).message}`, NO_TUNNEL_SESSION), null);
      return;
    }
    stream[kSession] = session;
    session.streams++;
    stream.once('close', () => session.streams--);
    let settled = false;
    const settle = (err: Error | null, reason?: StreamRefusalReason) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stream.removeListener('response', onResponse);
      stream.removeListener('error', onError);
      stream.removeListener('close', onClose);
      if (err === null) {
        stream.on('error', asReset);
        const socket: CoalescedSocket = new CoalescedStream(stream);
        socket[kSession] = session;
        callback(null, socket);
        return;
      }
      stream.on('error', () => undefined);
      stream.destroy();
      this.refused(reason!);
      callback(err, null);
    };
    const timer = setTimeout(() => settle(new UpstreamError('connect timeout (tunnel)', 'UND_ERR_CONNECT_TIMEOUT'), 'timeout'), this.timeoutMs);
    const onResponse = (headers: Record<string, unknown>) => {
      const status = Number(headers[constants.HTTP2_HEADER_STATUS]);
      settle(status === 200 ? null : new UpstreamError(`the agent could not open a connection to its app (${status})`, 'ECONNREFUSED'), 'app_unreachable');
    };
    const onError = (err: Error) => settle(new UpstreamError(`tunnel stream refused: ${err.message}`, 'ECONNREFUSED'), 'reset');
    const onClose = () => settle(new UpstreamError('tunnel stream closed before the agent answered', 'ECONNREFUSED'), 'reset');
    stream.once('response', onResponse);
    stream.once('error', onError);
    stream.once('close', onClose);
  }

  /** A stream of a session the agent is closing is not reused once its answer is complete. */
  retired(socket: Duplex): boolean {
    const session = (socket as CoalescedSocket)[kSession];
    return session !== undefined && session.draining;
  }

  onRetired(listener: () => void): void {
    this.sessions.onDraining(listener);
  }
}
