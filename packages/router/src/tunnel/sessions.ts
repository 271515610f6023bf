/**
 * The tunnel sessions this router holds, by instance: each is an HTTP/2 client session over a
 * TLS connection an agent opened (listener.ts). The tunnel connector opens one stream per
 * upstream connection on the least busy session of the instance; a session is watched by PING
 * (a frozen agent is dropped within pingTimeoutMs), checked every second against the tokens
 * (revoked, replaced or expired: closed with a GOAWAY saying why), and, once the agent closes it
 * gracefully (SIGTERM: GOAWAY), takes no new streams while its open ones finish.
 *
 * While at least one session to an instance is held, `tunnels/<app>/<id>/<router-id>` says so
 * (presence.ts): the deployer's barrier and `paas-deploy status` read it.
 */
import { constants, type ClientHttp2Session } from 'node:http2';
import type { SessionCloseReason, TunnelMetrics } from './metrics.js';
import type { KnownToken, TunnelTokens } from './tokens.js';

export interface SessionsLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** How long a GOAWAY carrying a reason gets to reach the agent before the connection is cut. */
const GOAWAY_FLUSH_MS = 100;

/** One agent connection. */
export class TunnelSession {
  /** Streams open on it (upstream connections). */
  streams = 0;
  /** The agent closed it (GOAWAY) or it is closing: no new streams. */
  draining = false;
  /** Why it is ending, once known (metrics); a close with none set lost its connection. */
  closeReason: SessionCloseReason | undefined;
  private pingSentAt = 0;

  constructor(
    readonly app: string,
    readonly id: string,
    /** `<id>.<app>`: the tunnel origin's host (table/backend.ts originOf). */
    readonly host: string,
    readonly h2: ClientHttp2Session,
    readonly token: KnownToken,
    readonly since: number,
    /** The agent's TLS connection, for its byte counts. */
    readonly socket: { readonly bytesRead: number; readonly bytesWritten: number },
  ) {}

  /** Sends a PING when none is outstanding; returns false when the last one went unanswered too long. */
  ping(now: number, timeoutMs: number): boolean {
    if (this.pingSentAt !== 0) return now - this.pingSentAt < timeoutMs;
    this.pingSentAt = now;
    try {
      this.h2.ping((err) => {
        if (err === null) this.pingSentAt = 0;
      });
    } catch {
      // The session is closing: its 'close' removes it.
    }
    return true;
  }
}

export interface PresenceSink {
  /** The number of sessions held to `app/id` changed; 0: none any more. */
  changed(app: string, id: string, connections: number, since: number): void;
}

export interface SessionsOptions {
  tokens: TunnelTokens;
  presence: PresenceSink;
  log: SessionsLogger;
  pingIntervalMs: number;
  pingTimeoutMs: number;
  metrics: TunnelMetrics;
}

/** tokens.ended()'s reasons, as metric labels. */
const TOKEN_END_REASONS: Record<string, SessionCloseReason> = { 'token revoked': 'token_revoked', 'token replaced': 'token_replaced', 'token expired': 'token_expired' };

export class TunnelSessions {
  /** `<id>.<app>` -> its sessions, draining ones included until they close. */
  private readonly byHost = new Map<string, Set<TunnelSession>>();
  private readonly drainingListeners: (() => void)[] = [];
  private readonly timer: NodeJS.Timeout;
  private count = 0;
  /** Wire bytes of the sessions that have ended (the open ones are read at collection). */
  private endedBytesRead = 0;
  private endedBytesWritten = 0;

  constructor(private readonly opts: SessionsOptions) {
    this.timer = setInterval(() => this.sweep(), Math.min(opts.pingIntervalMs, 1000));
    this.timer.unref();
    opts.metrics.setSources({
      sessions: () => this.count,
      streams: () => {
        let n = 0;
        for (const set of this.byHost.values()) for (const s of set) n += s.streams;
        return n;
      },
      bytes: () => {
        let fromAgents = this.endedBytesRead;
        let toAgents = this.endedBytesWritten;
        for (const set of this.byHost.values()) {
          for (const s of set) {
            fromAgents += s.socket.bytesRead;
            toAgents += s.socket.bytesWritten;
          }
        }
        return { fromAgents, toAgents };
      },
    });
  }

  /** Sessions held now, draining ones included. */
  get size(): number {
    return this.count;
  }

  /** Sessions held now to the instance `<id>.<app>`. */
  countFor(host: string): number {
    return this.byHost.get(host)?.size ?? 0;
  }

  add(session: TunnelSession): void {
    let set = this.byHost.get(session.host);
    if (set === undefined) this.byHost.set(session.host, (set = new Set()));
    set.add(session);
    this.count++;
    this.opts.metrics.opened();
    const h2 = session.h2;
    h2.on('goaway', () => {
      session.closeReason ??= 'agent_closed';
      this.retire(session);
    });
    h2.on('error', () => undefined); // 'close' follows
    h2.once('close', () => this.remove(session));
    this.report(session);
  }

  /** The least busy session able to take a stream to `<id>.<app>`, if any. */
  pick(host: string): TunnelSession | undefined {
    const set = this.byHost.get(host);
    if (set === undefined) return undefined;
    let best: TunnelSession | undefined;
    for (const s of set) if (!s.draining && !s.h2.closed && !s.h2.destroyed && (best === undefined || s.streams < best.streams)) best = s;
    return best;
  }

  private remove(session: TunnelSession): void {
    const set = this.byHost.get(session.host);
    if (set === undefined || !set.delete(session)) return;
    if (set.size === 0) this.byHost.delete(session.host);
    this.count--;
    this.endedBytesRead += session.socket.bytesRead;
    this.endedBytesWritten += session.socket.bytesWritten;
    this.opts.metrics.closed(session.closeReason ?? 'connection_lost');
    this.report(session);
  }

  private report(session: TunnelSession): void {
    const set = this.byHost.get(session.host);
    let since = Infinity;
    if (set !== undefined) for (const s of set) since = Math.min(since, s.since);
    this.opts.presence.changed(session.app, session.id, set?.size ?? 0, since);
  }

  /** PINGs, and ends sessions whose agent stopped answering or whose token no longer holds. */
  private sweep(): void {
    const now = Date.now();
    for (const set of this.byHost.values()) {
      for (const s of set) {
        if (s.h2.destroyed) continue;
        const ended = this.opts.tokens.ended(s.token, now);
        if (ended !== undefined) {
          this.opts.log.info({ app: s.app, id: s.id, reason: ended }, 'tunnel session closed');
          this.close(s, ended, TOKEN_END_REASONS[ended] ?? 'token_revoked');
          continue;
        }
        // Once the agent sent GOAWAY, Node cancels every PING (ERR_HTTP2_PING_CANCEL): a draining
        // session is not PINGed, and its open streams are bounded by their own timeouts
        // (--upstream-timeout) instead of being cut by a PING that can never be answered.
        if (!s.draining && !s.ping(now, this.opts.pingTimeoutMs)) {
          this.opts.log.warn({ app: s.app, id: s.id, pingTimeoutMs: this.opts.pingTimeoutMs }, 'tunnel session dropped: the agent did not answer PING');
          s.closeReason = 'ping_timeout';
          s.h2.destroy();
        }
      }
    }
  }

  /** Calls `listener` each time a session starts draining (its streams are not reused from then on). */
  onDraining(listener: () => void): void {
    this.drainingListeners.push(listener);
  }

  private retire(s: TunnelSession): void {
    if (s.draining) return;
    s.draining = true;
    for (const listener of this.drainingListeners) listener();
  }

  /** Ends a session at once, telling the agent why in the GOAWAY's debug data. */
  private close(s: TunnelSession, reason: string, metricReason: SessionCloseReason): void {
    s.closeReason ??= metricReason;
    this.retire(s);
    try {
      s.h2.goaway(constants.NGHTTP2_NO_ERROR, 0, Buffer.from(reason));
    } catch {
      // already closing
    }
    // A moment for the GOAWAY to be written before the connection goes.
    setTimeout(() => s.h2.destroy(), GOAWAY_FLUSH_MS).unref();
  }

  /** Every session ends (router stop): agents reconnect to the other routers meanwhile. */
  closeAll(): void {
    clearInterval(this.timer);
    for (const set of this.byHost.values()) for (const s of set) this.close(s, 'router stopping', 'router_stopping');
  }
}
