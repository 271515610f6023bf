/**
 * `tunnels/<app>/<id>/<router-id>`: `{connections, since}` while this router holds sessions from
 * an instance's agent; deleted as soon as it holds none. The records are put on the router's
 * status lease (CONTRACT-EDGE.md, "on the router's lease"), so a router that dies loses its
 * presence records at the very moment its status record goes: a deployer never sees a router
 * gone yet its sessions still claimed, or the reverse. When that lease is lost and the status
 * record is written again on a new one, every record is written again on the new lease too.
 *
 * Writes are coalesced per key (the newest value wins) and run in batches, one batch at a time,
 * so a record never lands out of order and 100 agents reconnecting at once cost one batch.
 */
import type { Etcd, KeyLayout, LeasedKey, TunnelPresenceRecord } from '@paas/registry';
import type { PresenceSink } from './sessions.js';

export interface PresenceLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** A failed batch (etcd unreachable, the lease just lost) is tried again after this long. */
const RETRY_MS = 1000;

export class TunnelPresence implements PresenceSink {
  /** key -> its record, while this router holds sessions to the instance. */
  private readonly held = new Map<string, string>();
  /** Keys whose record in etcd may differ from `held`. */
  private readonly dirty = new Set<string>();
  /** The status record's lease; undefined until its first write landed. */
  private lease: string | undefined;
  private flushing: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private failing = false;
  private closed = false;

  constructor(
    private readonly etcd: Etcd,
    private readonly layout: KeyLayout,
    private readonly routerId: string,
    private readonly log: PresenceLogger,
  ) {}

  /** Puts the records on `status`'s lease, now and after each lease change. */
  attach(status: LeasedKey): void {
    status.onLease((lease) => {
      this.lease = lease;
      for (const key of this.held.keys()) this.dirty.add(key);
      this.flush();
    });
  }

  changed(app: string, id: string, connections: number, since: number): void {
    const key = this.layout.tunnelPresence(app, id, this.routerId);
    if (connections === 0) {
      if (!this.held.delete(key)) return;
    } else {
      const value: TunnelPresenceRecord = { connections, since: new Date(since).toISOString() };
      this.held.set(key, JSON.stringify(value));
    }
    this.dirty.add(key);
    this.flush();
  }

  private flush(): void {
    if (this.flushing !== undefined || this.closed || this.lease === undefined || this.retryTimer !== undefined || this.dirty.size === 0) return;
    this.flushing = this.run().finally(() => {
      this.flushing = undefined;
      this.flush();
    });
  }

  private async run(): Promise<void> {
    const batch = [...this.dirty];
    this.dirty.clear();
    const lease = this.lease!;
    const results = await Promise.allSettled(
      batch.map((key) => {
        const value = this.held.get(key);
        return value === undefined ? this.etcd.delete(key) : this.etcd.put(key, value, { lease });
      }),
    );
    let firstError: unknown;
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') return;
      firstError ??= r.reason;
      this.dirty.add(batch[i]!);
    });
    if (firstError === undefined) {
      if (this.failing) this.log.info({ records: this.held.size }, 'tunnel presence records written again');
      this.failing = false;
      return;
    }
    // Said once per failing spell, not at every retry.
    if (!this.failing) this.log.warn({ err: (firstError as Error).message }, 'could not write tunnel presence records; will retry');
    this.failing = true;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.flush();
    }, RETRY_MS);
    this.retryTimer.unref();
  }

  /** Stops writing (the router revokes its status lease next, which takes the records with it). */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    await this.flushing;
  }
}
