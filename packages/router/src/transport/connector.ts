/**
 * Where the upstream clients get their connections: a Connector opens one to an instance and
 * calls back once it is usable (TCP connected; TLS handshaken and verified). Neither client dials
 * a URL itself; each asks the connector for the instance URL's scheme (Connectors.for), so a new
 * transport (a tunnel) is one more Connector, and traffic and health checks, which share the
 * client, both go through it.
 *
 * The shape is undici's `connect` option (lib/core/connect.js, buildConnector): a target with
 * hostname, protocol and port as a URL has them, and a Node-style callback. The portable client
 * hands a connector to undici's Client as it is; the native client calls it the same way.
 * Connect timeouts live here, with undici's code (UND_ERR_CONNECT_TIMEOUT), so both clients
 * fail a slow connect alike.
 */
import { connect as netConnect, isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { UpstreamError } from './upstream.js';

/** What undici passes to its `connect` function, and what the native client passes too. */
export interface ConnectTarget {
  /** `http:` or `https:` (the instance URL's scheme). */
  readonly protocol: string;
  /** Host name or IP address, IPv6 without brackets. */
  readonly hostname: string;
  /** As in a URL: '' for the scheme's default. */
  readonly port: string;
  /** The name to verify the certificate against (default: hostname; IP addresses get none). */
  readonly servername?: string | null;
}

export type ConnectCallback = (err: Error | null, socket: Duplex | null) => void;

export interface Connector {
  /** Calls back once, with a connected stream or the reason there is none. */
  connect(target: ConnectTarget, callback: ConnectCallback): void;
  /**
   * Whether a connection this connector gave is not to be reused for another request (its
   * transport is draining: a tunnel session the agent closed). Absent: always reusable.
   */
  retired?(socket: Duplex): boolean;
  /**
   * Calls `listener` whenever connections it gave may have just become retired (a tunnel
   * session began draining), so that idle ones are closed at once rather than at their idle
   * timeout, which would hold the agent's drain that long.
   */
  onRetired?(listener: () => void): void;
}

function portOf(target: ConnectTarget, fallback: number): number {
  return target.port === '' ? fallback : Number(target.port);
}

/**
 * Waits for `event` (connected) on a socket being opened, at most timeoutMs; then calls back
 * with the socket, or destroys it and calls back with the error.
 */
function whenConnected(socket: Socket, event: 'connect' | 'secureConnect', timeoutMs: number, callback: ConnectCallback): void {
  const timer = setTimeout(() => settle(new UpstreamError('connect timeout', 'UND_ERR_CONNECT_TIMEOUT')), timeoutMs);
  const onConnect = () => settle(null);
  const onError = (err: Error) => settle(err);
  function settle(err: Error | null): void {
    clearTimeout(timer);
    socket.removeListener(event, onConnect);
    socket.removeListener('error', onError);
    if (err === null) {
      callback(null, socket);
      return;
    }
    socket.destroy();
    callback(err, null);
  }
  socket.once(event, onConnect);
  socket.on('error', onError);
}

/** Plain TCP, for http:// instances. */
export class TcpConnector implements Connector {
  constructor(private readonly timeoutMs: number) {}

  connect(target: ConnectTarget, callback: ConnectCallback): void {
    const socket = netConnect({ host: target.hostname, port: portOf(target, 80), noDelay: true });
    whenConnected(socket, 'connect', this.timeoutMs, callback);
  }
}

/** TLS sessions kept for resumption: one per instance, the oldest dropped first (undici keeps 100). */
const MAX_SESSIONS = 100;

/** Verified TLS (the system's CAs plus NODE_EXTRA_CA_CERTS), for https:// instances. */
export class TlsConnector implements Connector {
  private readonly sessions = new Map<string, Buffer>();

  constructor(private readonly timeoutMs: number) {}

  connect(target: ConnectTarget, callback: ConnectCallback): void {
    const host = target.hostname;
    const port = portOf(target, 443);
    // SNI and verification use the instance's own name; never an IP address (RFC 6066).
    const name = target.servername || host;
    const servername = isIP(name) === 0 ? name : undefined;
    const key = `${servername ?? ''}|${host}:${port}`;
    const socket = tlsConnect({ host, port, servername, session: this.sessions.get(key), ALPNProtocols: ['http/1.1'], rejectUnauthorized: true });
    socket.setNoDelay(true);
    socket.on('session', (session: Buffer) => {
      this.sessions.delete(key);
      this.sessions.set(key, session);
      if (this.sessions.size > MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
    });
    whenConnected(socket, 'secureConnect', this.timeoutMs, (err, connected) => {
      // A session that failed to resume or verify is not offered again.
      if (err !== null) this.sessions.delete(key);
      callback(err, connected);
    });
  }
}

/** The connector for each scheme an instance URL may have. */
export class Connectors {
  constructor(private readonly byScheme: ReadonlyMap<string, Connector>) {}

  /** The connector for `protocol` (`http:`, `https:`); undefined: no transport for it. */
  for(protocol: string): Connector | undefined {
    return this.byScheme.get(protocol);
  }

  /** Registers `listener` with every transport that retires connections (Connector.onRetired). */
  onRetired(listener: () => void): void {
    for (const connector of this.byScheme.values()) connector.onRetired?.(listener);
  }
}

/**
 * TCP for http://, verified TLS for https://, each giving up on a connect after timeoutMs; and
 * any other transports given (`tunnel:`).
 */
export function defaultConnectors(connectTimeoutMs: number, more: ReadonlyMap<string, Connector> = new Map()): Connectors {
  return new Connectors(
    new Map<string, Connector>([
      ['http:', new TcpConnector(connectTimeoutMs)],
      ['https:', new TlsConnector(connectTimeoutMs)],
      ...more,
    ]),
  );
}
