/**
 * The tunnel's metrics (registered only with --listen-tunnel). Every label set is fixed here, so
 * the series count does not grow with apps, instances or agents. Nothing is counted per request
 * or per chunk: open sessions, open streams and bytes are read from the sessions when metrics
 * are collected (bytes are the TLS connections' own counters: what crossed the wire, TLS and
 * HTTP/2 framing included).
 */
import { Counter, Gauge, type Registry } from 'prom-client';

/** Why a session ended. */
export const SESSION_CLOSE_REASONS = ['agent_closed', 'ping_timeout', 'token_revoked', 'token_replaced', 'token_expired', 'router_stopping', 'connection_lost'] as const;
export type SessionCloseReason = (typeof SESSION_CLOSE_REASONS)[number];

/** Why an agent was turned away at its Hello. */
export const REFUSAL_REASONS = ['bad_handshake', 'protocol_version', 'bad_name', 'no_token', 'malformed_token', 'unknown_token', 'foreign_app_token', 'secret_mismatch', 'token_expired', 'router_full', 'instance_full'] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/** Why the connector could not open a stream to an instance. */
export const STREAM_REFUSAL_REASONS = ['no_session', 'session_closing', 'app_unreachable', 'reset', 'timeout'] as const;
export type StreamRefusalReason = (typeof STREAM_REFUSAL_REASONS)[number];

/** What the gauges read at collection. */
export interface TunnelMetricSources {
  sessions(): number;
  streams(): number;
  /** Wire bytes received from and sent to agents since start. */
  bytes(): { fromAgents: number; toAgents: number };
}

export class TunnelMetrics {
  private sources: TunnelMetricSources | undefined;
  private readonly opens: Counter;
  private readonly closes: Counter<'reason'>;
  private readonly refusals: Counter<'reason'>;
  private readonly streamRefusals: Counter<'reason'>;

  constructor(registry: Registry) {
    const registers = [registry];
    const sessions: Gauge = new Gauge({
      name: 'router_tunnel_sessions',
      help: 'Agent tunnel sessions open on this router',
      registers,
      collect: () => sessions.set(this.sources?.sessions() ?? 0),
    });
    const streams: Gauge = new Gauge({
      name: 'router_tunnel_streams',
      help: 'Streams open over agent tunnel sessions (one per upstream connection to a tunnel instance)',
      registers,
      collect: () => streams.set(this.sources?.streams() ?? 0),
    });
    const bytes: Counter<'direction'> = new Counter({
      name: 'router_tunnel_bytes_total',
      help: 'Bytes on the tunnel connections (TLS and HTTP/2 framing included), by direction',
      labelNames: ['direction'] as const,
      registers,
      collect: () => {
        const { fromAgents, toAgents } = this.sources?.bytes() ?? { fromAgents: 0, toAgents: 0 };
        bytes.reset();
        bytes.inc({ direction: 'from_agents' }, fromAgents);
        bytes.inc({ direction: 'to_agents' }, toAgents);
      },
    });
    this.opens = new Counter({ name: 'router_tunnel_session_opens_total', help: 'Agent tunnel sessions opened (agents welcomed)', registers });
    this.closes = new Counter({ name: 'router_tunnel_session_closes_total', help: 'Agent tunnel sessions ended, by reason', labelNames: ['reason'] as const, registers });
    this.refusals = new Counter({ name: 'router_tunnel_agents_refused_total', help: 'Agents turned away at their Hello, by reason (token checks, limits)', labelNames: ['reason'] as const, registers });
    this.streamRefusals = new Counter({ name: 'router_tunnel_streams_refused_total', help: 'Streams to tunnel instances that could not be opened, by reason', labelNames: ['reason'] as const, registers });
    // Every series exists from the start (0), so a rate() sees the first event.
    for (const reason of SESSION_CLOSE_REASONS) this.closes.inc({ reason }, 0);
    for (const reason of REFUSAL_REASONS) this.refusals.inc({ reason }, 0);
    for (const reason of STREAM_REFUSAL_REASONS) this.streamRefusals.inc({ reason }, 0);
  }

  setSources(sources: TunnelMetricSources): void {
    this.sources = sources;
  }

  opened(): void {
    this.opens.inc();
  }

  closed(reason: SessionCloseReason): void {
    this.closes.inc({ reason });
  }

  refused(reason: RefusalReason): void {
    this.refusals.inc({ reason });
  }

  streamRefused(reason: StreamRefusalReason): void {
    this.streamRefusals.inc({ reason });
  }
}
