/**
 * A key that lives on its own lease (a router's status record): it disappears when its writer
 * dies, and this writer puts it back whenever the lease is lost.
 *
 * etcd3's Lease grants on construction and keeps itself alive; it emits 'lost' when a keep-alive
 * answer says the lease is gone (revoked or expired: seen within TTL/3) or when it could not
 * reach etcd for 2×TTL. Then the key is gone too: grant a new lease and write the last value.
 *
 * A key opened with create() belongs to this writer alone: its first write creates it only if
 * it is absent (create revision 0, as the lock does), and every later write, the one after a
 * lost lease included, replaces it only while it is still the key this writer created (same
 * create revision) or recreates it when it is gone. So a second writer of the same key is
 * refused, and a writer whose lease lapsed never overwrites the record someone else created
 * meanwhile: the key turns "taken" and stops writing.
 */
import { EtcdLeaseInvalidError, type Lease } from 'etcd3';
import { Backoff } from './backoff.js';
import type { Compare, KvEntry, LeasedKey, TxnOp, TxnResult } from './types.js';

export interface LeasedKeyDeps {
  /** A new etcd3 Lease of `ttlSeconds`, kept alive automatically. */
  lease(ttlSeconds: number): Lease;
  put(key: string, value: string, opts: { lease: string }): Promise<bigint>;
  txn(compares: Compare[], success: TxnOp[]): Promise<TxnResult>;
  get(key: string): Promise<KvEntry | undefined>;
  /** Called once the key is closed, so the client stops tracking it. */
  onClosed(): void;
}

/** The key exists and is not this writer's: create() refused, or it was taken after a lost lease. */
export class KeyTakenError extends Error {
  constructor(
    readonly key: string,
    /** The key as it was found: its value, lease ('0' for none) and create revision. */
    readonly holder: KvEntry,
  ) {
    super(`${key} exists: created at revision ${holder.createRevision} by another writer${holder.lease === '0' ? ' (on no lease)' : ` (lease ${holder.lease})`}`);
    this.name = 'KeyTakenError';
  }
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
  /** Set by create(): every write is conditional on the key being this writer's (or absent). */
  private exclusive = false;
  /** Create revision of the key this writer created (exclusive mode), once it has. */
  private owned: bigint | undefined;
  /** Someone else holds the key: no more writes. */
  private taken: KeyTakenError | undefined;
  /** The lease the last landed write is on, as told to the onLease listeners. */
  private landedOn: string | undefined;
  private readonly leaseListeners: Array<(lease: string) => void> = [];

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
    if (this.taken) return Promise.reject(this.taken);
    this.value = value;
    return this.enqueue(() => this.write(value)).catch((err: unknown) => {
      this.scheduleRepair();
      throw err;
    });
  }

  /**
   * The first write of an exclusive key: creates it with `value` only if it does not exist.
   * Rejects with KeyTakenError when it does (and revokes the lease it granted for nothing); on
   * any other failure it keeps trying, exclusively, in the background like set().
   */
  create(value: string): Promise<void> {
    this.exclusive = true;
    return this.set(value).catch(async (err: unknown) => {
      if (err instanceof KeyTakenError) await this.revokeLease();
      throw err;
    });
  }

  onLease(listener: (lease: string) => void): void {
    this.leaseListeners.push(listener);
    if (this.landedOn !== undefined) listener(this.landedOn);
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
    if (this.taken) throw this.taken;
    let lease: string;
    try {
      lease = await this.currentLease().grant();
      await this.writeOn(lease, value);
    } catch (err) {
      // Revoked or expired before 'lost' told us: one more try on a new lease.
      if (!(err instanceof EtcdLeaseInvalidError)) throw err;
      this.dropLease();
      lease = await this.currentLease().grant();
      await this.writeOn(lease, value);
    }
    this.backoff.reset();
    if (lease !== this.landedOn) {
      this.landedOn = lease;
      for (const listener of this.leaseListeners) listener(lease);
    }
  }

  private async writeOn(lease: string, value: string): Promise<void> {
    if (!this.exclusive) {
      await this.deps.put(this.key, value, { lease });
      return;
    }
    const put: TxnOp[] = [{ put: this.key, value, lease }];
    if (this.owned !== undefined) {
      const res = await this.deps.txn([{ key: this.key, target: 'create', op: '=', value: this.owned }], put);
      if (res.succeeded) return;
    }
    // Not ours (any more): create it if nobody holds it. A put's create revision is its revision.
    const created = await this.deps.txn([{ key: this.key, target: 'create', op: '=', value: 0n }], put);
    if (created.succeeded) {
      this.owned = created.revision;
      return;
    }
    const holder = await this.deps.get(this.key);
    // Gone again between the two calls: an ordinary failure, retried.
    if (holder === undefined) throw new Error(`${this.key} was deleted while it was being created`);
    if (holder.lease === lease) {
      // Ours after all: an earlier create landed but its answer was lost.
      this.owned = holder.createRevision;
      const res = await this.deps.txn([{ key: this.key, target: 'create', op: '=', value: this.owned }], put);
      if (res.succeeded) return;
      throw new Error(`${this.key} changed while it was being written`);
    }
    this.taken = new KeyTakenError(this.key, holder);
    clearTimeout(this.repairTimer);
    throw this.taken;
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

  private async revokeLease(): Promise<void> {
    const lease = this.lease;
    this.lease = undefined;
    await lease?.revoke().catch(() => undefined);
  }

  /** Writes the newest value again after a back-off delay, until it lands. */
  private scheduleRepair(): void {
    if (this.closed || this.taken || this.repairTimer || this.value === undefined) return;
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
