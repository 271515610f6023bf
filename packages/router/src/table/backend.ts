import { INSTANCE_STATES, TUNNEL_SCHEME, type InstanceRecord, type InstanceState } from '@paas/registry';
import type { RecordStamp } from './record-stamp.js';

/**
 * An instance's health: passive ejections and the active check's verdict. Made at the first
 * failure; until then the instance is healthy and holds none of it (100k apps would otherwise
 * carry these seven fields on every instance, and a starting router's young-generation
 * collections copy every object of the table it builds: README, Performance: cold start).
 */
class Health {
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
}

/** What an instance that never failed reads. */
const NEVER_FAILED: Readonly<Health> = Object.freeze(new Health());

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
  /** The instance record's stamp (see RecordStamp). */
  hashHi = 0;
  hashLo = 0;
  listed = 0;
  private health: Health | undefined = undefined;

  constructor(app: string, id: string, origin: string) {
    this.app = app;
    this.id = id;
    this.origin = origin;
  }

  private get read(): Readonly<Health> {
    return this.health ?? NEVER_FAILED;
  }

  private get write(): Health {
    return (this.health ??= new Health());
  }

  get ejectedUntil(): number { return this.read.ejectedUntil; }
  set ejectedUntil(v: number) { this.write.ejectedUntil = v; }
  get consecutiveFailures(): number { return this.read.consecutiveFailures; }
  set consecutiveFailures(v: number) { this.write.consecutiveFailures = v; }
  get ejectedSince(): number { return this.read.ejectedSince; }
  set ejectedSince(v: number) { this.write.ejectedSince = v; }
  get ejectReason(): string { return this.read.ejectReason; }
  set ejectReason(v: string) { this.write.ejectReason = v; }
  get checkHealthy(): boolean { return this.read.checkHealthy; }
  set checkHealthy(v: boolean) { this.write.checkHealthy = v; }
  get failingSince(): number { return this.read.failingSince; }
  set failingSince(v: number) { this.write.failingSince = v; }
  get failingReason(): string { return this.read.failingReason; }
  set failingReason(v: string) { this.write.failingReason = v; }

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
    const h = this.health;
    return h === undefined || (h.checkHealthy && h.ejectedUntil <= now);
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
