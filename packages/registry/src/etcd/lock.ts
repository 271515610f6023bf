/**
 * A non-blocking lock: one txn creates the key on a fresh lease if nobody holds it. The key dies
 * with its holder's lease, and its create revision is a fencing token.
 */
import type { ITxnRequest, ITxnResponse, Lease } from 'etcd3';
import type { Lock, LockResult } from './types.js';

export interface LockDeps {
  /** A new etcd3 Lease of `ttlSeconds`, kept alive automatically. */
  lease(ttlSeconds: number): Lease;
  txn(request: ITxnRequest): Promise<ITxnResponse>;
  /** Tracks a taken lock until it is released, so closing the client stops its keep-alives. */
  track(lock: EtcdLock): () => void;
}

export async function tryLock(deps: LockDeps, key: string, holder: string, ttlSeconds: number): Promise<LockResult> {
  const lease = deps.lease(ttlSeconds);
  const lost = new Promise<void>((resolve) => lease.once('lost', () => resolve()));
  let leaseId: string;
  let res: ITxnResponse;
  try {
    leaseId = await lease.grant();
    const keyBuf = Buffer.from(key);
    res = await deps.txn({
      compare: [{ key: keyBuf, target: 'Create', result: 'Equal', create_revision: '0' }],
      success: [{ request_put: { key: keyBuf, value: Buffer.from(holder), lease: leaseId } }],
      failure: [{ request_range: { key: keyBuf } }],
    });
  } catch (err) {
    // Even if the txn was applied and only its answer lost, revoking removes the key again.
    await lease.revoke().catch(() => undefined);
    throw err;
  }
  if (!res.succeeded) {
    await lease.revoke().catch(() => undefined);
    const current = res.responses[0]?.response_range.kvs[0];
    // The key may have vanished between the compare and now; then there is no holder to name.
    return { ok: false, holder: current ? current.value.toString() : '' };
  }
  return { ok: true, lock: new EtcdLock(deps, key, lease, leaseId, BigInt(res.header.revision), lost) };
}

export class EtcdLock implements Lock {
  readonly lost: Promise<void>;
  private resolveLost!: () => void;
  private released = false;
  private readonly untrack: () => void;

  constructor(
    private readonly deps: LockDeps,
    private readonly key: string,
    private readonly leaseHandle: Lease,
    readonly lease: string,
    readonly revision: bigint,
    leaseLost: Promise<void>,
  ) {
    this.lost = new Promise<void>((resolve) => (this.resolveLost = resolve));
    void leaseLost.then(() => this.resolveLost());
    this.untrack = deps.track(this);
  }

  /** Deletes the key (only if it is still this lock's) and revokes the lease; `lost` resolves. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.untrack();
    const keyBuf = Buffer.from(this.key);
    // Both are tried even if one fails; either alone removes the key.
    const [deleted, revoked] = await Promise.allSettled([
      this.deps.txn({
        compare: [{ key: keyBuf, target: 'Create', result: 'Equal', create_revision: this.revision.toString() }],
        success: [{ request_delete_range: { key: keyBuf } }],
        failure: [],
      }),
      this.leaseHandle.revoke(),
    ]);
    this.resolveLost();
    if (deleted.status === 'rejected') throw deleted.reason;
    if (revoked.status === 'rejected') throw revoked.reason;
  }

  /** Client shutdown: stops keep-alives without deleting anything; the lease expires after its TTL. */
  abandon(): void {
    if (this.released) return;
    this.released = true;
    this.untrack();
    this.leaseHandle.release();
    this.resolveLost();
  }
}
