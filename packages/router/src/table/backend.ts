import { INSTANCE_STATES, TUNNEL_SCHEME, type InstanceRecord, type InstanceState } from '@paas/registry';
import type { RecordStamp } from './record-stamp.js';

/**
 * One instance of an app. The object outlives record updates and re-lists, because the proxy's
 * in-flight count and the health verdicts live on it. Its origin never changes: an instance moved
 * to another url gets a new Backend, so counters and ejections always describe the process they
 * were measured on.
 */
export class Backend implements RecordStamp {
  readonly app: string;
  readonly id: string;
  readonly origin: string;
  state: InstanceState = 'starting';
  weight = 1;
  release: string | undefined = undefined;
  /** Open requests and WebSockets, maintained by the proxy. */
  inflight = 0;
  /** Passive health (ms epoch): not preferred until then. */
  ejectedUntil = 0;
  consecutiveFailures = 0;
  /** When the current run of ejections began (ms epoch), and the last failure's reason: for the status report. */
  ejectedSince = 0;
  ejectReason = '';
  /** Active health verdict; stays true for apps without a healthCheck. */
  checkHealthy = true;
  /** When the health check began failing (ms epoch), and why: for the status report. */
  failingSince = 0;
  failingReason = '';
  /** The instance record's stamp (see RecordStamp). */
  hashHi = 0;
  hashLo = 0;
  listed = 0;

  constructor(app: string, id: string, origin: string) {
    this.app = app;
    this.id = id;
    this.origin = origin;
  }

  apply(record: InstanceRecord): void {
    // The module's own literal, not the parsed record's copy: 200k backends need not hold 200k
    // copies of "ready".
    this.state = INSTANCE_STATES[INSTANCE_STATES.indexOf(record.state)]!;
    this.weight = record.weight ?? 1;
    this.release = record.release;
  }

  /**
   * `<app>/<id>`, as the status record names instances. Built when asked (a report lists a few
   * instances), not kept: 100k apps would hold a string per instance for it.
   */
  get key(): string {
    return backendKey(this.app, this.id);
  }

  /** Neither ejected by passive checks nor failed by active ones. */
  isAvailable(now: number): boolean {
    return this.checkHealthy && this.ejectedUntil <= now;
  }
}

export function backendKey(app: string, id: string): string {
  return `${app}/${id}`;
}

/**
 * The registry accepts `http://host:port/`; the proxy appends paths to a bare origin. A tunnel
 * instance (`tunnel://<id>`) becomes `tunnel://<id>.<app>`: instance ids are unique per app
 * only, and the tunnel connector finds the agent's sessions by this host (tunnel/connector.ts).
 */
export function originOf(record: InstanceRecord, app: string): string {
  if (record.url.startsWith(TUNNEL_SCHEME)) return `${record.url}.${app}`;
  return record.url.endsWith('/') ? record.url.slice(0, -1) : record.url;
}
