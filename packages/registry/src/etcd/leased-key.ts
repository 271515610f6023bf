/**
 * A key that lives on its own lease (a router's status record): it disappears when its writer
 * dies, and this writer puts it back whenever the lease is lost.
 *
 * etcd3's Lease grants on construction and keeps itself alive; it emits 'lost' when a keep-alive
 * answer says the lease is gone (revoked or expired: seen within TTL/3) or when it could not
 * reach etcd for 2×TTL. Then the key is gone too: grant a new lease and write the last value.
 */
import { EtcdLeaseInvalidError, type Lease } from 'etcd3';
import { Backoff } from './backoff.js';
import type { LeasedKey } from './types.js';

export interface LeasedKeyDeps {
  /** A new etcd3 Lease of `ttlSeconds`, kept alive automatically. */
  lease(ttlSeconds: number): Lease;
  put(key: string, value: string, opts: { lease: string }): Promise<bigint>;
  /** Called once the key is closed, so the client stops tracking it. */
  onClosed(): void;
}

export class EtcdLeasedKey implements LeasedKey {
  private lease: Lease | undefined;
  /** The value the key should hold: the last one asked for. */
  private value: string | undefined;
  /** Writes run one at a time, in call order, so an older value never lands after a newer one. */
  private queue: Promise<unknown> = Promise.resolve();
  private repairTimer: NodeJS.Timeout | undefined;
  private readonly backoff = new Backoff();
  private closed = false;

  constructor(
    private readonly deps: LeasedKeyDeps,
    private readonly key: string,
    private readonly ttlSeconds: number,
  ) {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) throw new RangeError(`lease TTL must be a whole number of seconds >= 1, got ${ttlSeconds}`);
  }

  /**
   * Writes `value` on the lease. When the write fails the promise rejects, and the key keeps
   * trying to write the newest value in the background (backing off) until it lands or close().
   */
  set(value: string): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`leased key ${this.key} is closed`));
    this.value = value;
    return this.enqueue(() => this.write(value)).catch((err: unknown) => {
      this.scheduleRepair();
      throw err;
    });
  }

  async close(opts: { revoke?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.repairTimer);
    await this.queue.catch(() => undefined); // a write in flight lands first, so revoke covers it
    const lease = this.lease;
    this.lease = undefined;
    this.deps.onClosed();
    if (!lease) return;
    if (opts.revoke) await lease.revoke();
    else lease.release();
  }

  private async write(value: string): Promise<void> {
    try {
      await this.deps.put(this.key, value, { lease: await this.currentLease().grant() });
    } catch (err) {
      // Revoked or expired before 'lost' told us: one more try on a new lease.
      if (!(err instanceof EtcdLeaseInvalidError)) throw err;
      this.dropLease();
      await this.deps.put(this.key, value, { lease: await this.currentLease().grant() });
    }
    this.backoff.reset();
  }

  private currentLease(): Lease {
    if (this.lease) return this.lease;
    const lease = this.deps.lease(this.ttlSeconds);
    lease.on('lost', () => this.onLost(lease));
    this.lease = lease;
    return lease;
  }

  private onLost(lease: Lease): void {
    if (lease !== this.lease) return;
    this.dropLease();
    this.scheduleRepair();
  }

  private dropLease(): void {
    this.lease?.release();
    this.lease = undefined;
  }

  /** Writes the newest value again after a back-off delay, until it lands. */
  private scheduleRepair(): void {
    if (this.closed || this.repairTimer || this.value === undefined) return;
    this.repairTimer = setTimeout(() => {
      this.repairTimer = undefined;
      // this.value is read when the write runs: a set() queued before it may have a newer one.
      this.enqueue(() => (this.closed ? Promise.resolve() : this.write(this.value!))).catch(() => this.scheduleRepair());
    }, this.backoff.next());
  }

  private enqueue<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task);
    this.queue = run.catch(() => undefined);
    return run;
  }
}
