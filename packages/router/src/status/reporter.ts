/**
 * Keeps <prefix>/routers/<id> current on the router's own lease: written after each applied
 * change (at most one write per 50 ms, leading edge, so a deployer hears of a change at once)
 * and on a heartbeat, so in-flight counts of draining instances stay fresh.
 *
 * The id is the router's own: the first write (claim) creates the record only if no other router
 * holds it, and no later write replaces a record another router created meanwhile (after this
 * one lost its lease); that is reported once through onTaken and writing stops.
 */
import { KeyTakenError, type LeasedKey } from '@paas/registry';

export interface ReporterLogger {
  warn(obj: object, msg: string): void;
}

const MIN_INTERVAL_MS = 50;

export class StatusReporter {
  private lastWrite = 0;
  private timer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private writing = false;
  private again = false;
  private closed = false;
  /** Nothing is written between claim() and start(): the router is not serving yet. */
  private started = false;
  private failingSince = 0;

  constructor(
    private readonly key: LeasedKey,
    /** The record's JSON value (bounded: see status-record.ts). */
    private readonly render: () => string,
    private readonly log: ReporterLogger,
    private readonly heartbeatMs: number,
    private readonly onTaken: (err: KeyTakenError) => void = () => {},
  ) {}

  /**
   * The first write: creates the record only if no router holds this id. Rejects with
   * KeyTakenError when one does; any other failure is logged and retried in the background.
   */
  async claim(): Promise<void> {
    this.lastWrite = Date.now();
    try {
      await this.key.create(this.render());
    } catch (err) {
      if (err instanceof KeyTakenError) throw err;
      this.failed(err);
    }
  }

  start(): void {
    this.started = true;
    this.heartbeat = setInterval(() => this.schedule(), this.heartbeatMs);
    this.heartbeat.unref();
    this.schedule();
  }

  schedule(): void {
    if (this.closed || !this.started || this.timer) return;
    const wait = this.lastWrite + MIN_INTERVAL_MS - Date.now();
    if (wait <= 0) {
      void this.write();
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.write();
    }, wait);
  }

  private async write(): Promise<void> {
    if (this.writing) {
      this.again = true;
      return;
    }
    this.writing = true;
    this.lastWrite = Date.now();
    try {
      await this.key.set(this.render());
      this.failingSince = 0;
    } catch (err) {
      if (err instanceof KeyTakenError) {
        this.stopWriting();
        this.onTaken(err);
        return;
      }
      this.failed(err);
    } finally {
      this.writing = false;
    }
    if (this.again) {
      this.again = false;
      this.schedule();
    }
  }

  private failed(err: unknown): void {
    // etcd may be down for a while: say so once, not on every heartbeat.
    if (this.failingSince === 0) {
      this.failingSince = Date.now();
      this.log.warn({ err: (err as Error).message }, 'could not write the router status record; will retry');
    }
  }

  private stopWriting(): void {
    this.closed = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.timer);
  }

  async close(): Promise<void> {
    this.stopWriting();
    await this.key.close({ revoke: true });
  }
}

/** The one line a router prints when its id belongs to another router. */
export function idTakenMessage(id: string, err: KeyTakenError): string {
  const startedAt = startedAtOf(err.holder.value);
  if (err.holder.lease === '0') {
    return `router id ${id} is in use: ${err.key} exists on no lease (not written by a router); delete it (etcdctl del ${err.key}) or start with another --id`;
  }
  const holder = [startedAt ? `started ${startedAt}` : undefined, `lease ${err.holder.lease}`].filter(Boolean).join(', ');
  return `router id ${id} is in use: ${err.key} belongs to another running router (${holder}); stop it or start this one with another --id (a router that died frees its id when its lease expires)`;
}

function startedAtOf(value: Buffer): string | undefined {
  try {
    const v = JSON.parse(value.toString('utf8')) as { startedAt?: unknown };
    return typeof v.startedAt === 'string' ? v.startedAt : undefined;
  } catch {
    return undefined;
  }
}
