/**
 * Keeps <prefix>/routers/<id> current on the router's own lease: written after each applied
 * change (at most one write per 50 ms, leading edge, so a deployer hears of a change at once)
 * and on a heartbeat, so in-flight counts of draining instances stay fresh.
 */
import type { LeasedKey } from '@paas/registry';

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
  private failingSince = 0;

  constructor(
    private readonly key: LeasedKey,
    private readonly render: () => object,
    private readonly log: ReporterLogger,
    private readonly heartbeatMs: number,
  ) {}

  start(): void {
    this.heartbeat = setInterval(() => this.schedule(), this.heartbeatMs);
    this.heartbeat.unref();
    this.schedule();
  }

  schedule(): void {
    if (this.closed || this.timer) return;
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
      await this.key.set(JSON.stringify(this.render()));
      this.failingSince = 0;
    } catch (err) {
      // etcd may be down for a while: say so once, not on every heartbeat.
      if (this.failingSince === 0) {
        this.failingSince = Date.now();
        this.log.warn({ err: (err as Error).message }, 'could not write the router status record; will retry');
      }
    } finally {
      this.writing = false;
    }
    if (this.again) {
      this.again = false;
      this.schedule();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.timer);
    await this.key.close({ revoke: true });
  }
}
