/**
 * connectEtcd: the Etcd interface over one etcd3 client. The only place that constructs etcd3.
 */
import type { IRangeResponse, Lease } from 'etcd3';
import { isCompactedError } from './errors.js';
import { clientOptions, DEFAULT_CALL_TIMEOUT_MS } from './client-options.js';
import { prefixRangeEnd, toKvEntry } from './convert.js';
import { EtcdLeasedKey } from './leased-key.js';
import { RegistryEtcd3, type CallOptions } from './etcd3-client.js';
import { listRange, type ListOptions, type RangeCall } from './list.js';
import { tryLock, type EtcdLock } from './lock.js';
import { RangeMirror } from './mirror.js';
import { toCompare, toRequestOp } from './txn.js';
import type {
  Compare,
  Etcd,
  EtcdOptions,
  KeyAtRevision,
  KvEntry,
  LeasedKey,
  LockResult,
  Mirror,
  MirrorHandlers,
  MirrorOptions,
  TxnOp,
  TxnResult,
} from './types.js';

/** Creates the client; it connects lazily, on the first call. */
export function connectEtcd(opts: EtcdOptions): Etcd {
  return new EtcdClient(opts);
}

/** What close() must shut down: mirrors, leased keys, locks still held. */
type Shutdown = () => Promise<void>;

class EtcdClient implements Etcd {
  readonly endpoints: string[];
  private readonly client: RegistryEtcd3;
  private readonly range: RangeCall;
  private readonly callTimeoutMs: number;
  private readonly open = new Set<Shutdown>();
  private closing: Promise<void> | undefined;

  constructor(opts: EtcdOptions) {
    if (opts.endpoints.length === 0) throw new Error('connectEtcd: no etcd endpoints given');
    this.endpoints = [...opts.endpoints];
    this.callTimeoutMs = opts.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    this.client = new RegistryEtcd3(clientOptions(this.endpoints, this.callTimeoutMs, opts.security));
    this.range = (req, options) => this.client.rangePage(req, options);
  }

  async get(key: string): Promise<KvEntry | undefined> {
    const res = await this.client.kv.range({ key: Buffer.from(key) }, this.callOptions());
    const kv = res.kvs[0];
    return kv && toKvEntry(kv);
  }

  async getAt(key: string, revision: bigint): Promise<KeyAtRevision> {
    try {
      const res = await this.client.kv.range({ key: Buffer.from(key), revision: revision.toString() }, this.callOptions());
      const kv = res.kvs[0];
      return { compacted: false, entry: kv && toKvEntry(kv) };
    } catch (err) {
      if (isCompactedError(err)) return { compacted: true };
      throw err;
    }
  }

  async servesRevision(revision: bigint, key = '\0'): Promise<boolean> {
    try {
      await this.client.kv.range({ key: Buffer.from(key), count_only: true, revision: revision.toString() }, this.callOptions());
      return true;
    } catch (err) {
      if (isCompactedError(err)) return false;
      throw err;
    }
  }

  list(start: string, end: string, opts?: ListOptions): Promise<{ entries: KvEntry[]; revision: bigint }> {
    return listRange(this.range, this.callOptions, Buffer.from(start), Buffer.from(end), opts);
  }

  listPrefix(prefix: string, opts?: ListOptions): Promise<{ entries: KvEntry[]; revision: bigint }> {
    return listRange(this.range, this.callOptions, Buffer.from(prefix), prefixRangeEnd(prefix), opts);
  }

  async put(key: string, value: string, opts: { lease?: string } = {}): Promise<bigint> {
    const req = { key: Buffer.from(key), value: Buffer.from(value), ...(opts.lease !== undefined && { lease: opts.lease }) };
    const res = await this.client.kv.put(req, this.callOptions());
    return BigInt(res.header.revision);
  }

  async grantLease(ttlSeconds: number): Promise<string> {
    const res = await this.client.leaseClient.leaseGrant({ TTL: ttlSeconds, ID: 0 }, this.callOptions());
    return res.ID;
  }

  async leaseTimeToLive(lease: string): Promise<number | undefined> {
    const res = await this.client.leaseClient.leaseTimeToLive({ ID: lease }, this.callOptions());
    const ttl = Number(res.TTL);
    return ttl > 0 ? ttl : undefined;
  }

  async revokeLease(lease: string): Promise<void> {
    try {
      await this.client.leaseClient.leaseRevoke({ ID: lease }, this.callOptions());
    } catch (err) {
      if (!/lease not found/.test((err as Error).message)) throw err;
    }
  }

  async delete(key: string): Promise<bigint> {
    const res = await this.client.kv.deleteRange({ key: Buffer.from(key) }, this.callOptions());
    return BigInt(res.header.revision);
  }

  async txn(compares: Compare[], success: TxnOp[], failure: TxnOp[] = []): Promise<TxnResult> {
    const res = await this.client.kv.txn(
      { compare: compares.map(toCompare), success: success.map(toRequestOp), failure: failure.map(toRequestOp) },
      this.callOptions(),
    );
    return { succeeded: res.succeeded, revision: BigInt(res.header.revision) };
  }

  async currentRevision(): Promise<bigint> {
    const res: IRangeResponse = await this.client.kv.range({ key: Buffer.from([0]), count_only: true }, this.callOptions());
    return BigInt(res.header.revision);
  }

  mirror(opts: MirrorOptions, handlers: MirrorHandlers): Mirror {
    this.assertOpen();
    const shutdown: Shutdown = () => mirror.close();
    const mirror = new RangeMirror(
      {
        endpoints: this.endpoints,
        callTimeoutMs: this.callTimeoutMs,
        list: (start, end, listOpts) => listRange(this.range, this.callOptions, start, end, listOpts),
        openWatch: () => this.client.openWatchStream(),
        onClosed: () => this.open.delete(shutdown),
      },
      opts,
      handlers,
    );
    this.open.add(shutdown);
    return mirror;
  }

  leasedKey(key: string, ttlSeconds: number): LeasedKey {
    this.assertOpen();
    const shutdown: Shutdown = () => leased.close({ revoke: false });
    const leased = new EtcdLeasedKey(
      {
        lease: (ttl) => this.lease(ttl),
        put: (k, v, o) => this.put(k, v, o),
        txn: (compares, success) => this.txn(compares, success),
        get: (k) => this.get(k),
        onClosed: () => this.open.delete(shutdown),
      },
      key,
      ttlSeconds,
    );
    this.open.add(shutdown);
    return leased;
  }

  tryLock(key: string, holder: string, ttlSeconds: number): Promise<LockResult> {
    this.assertOpen();
    return tryLock(
      {
        lease: (ttl) => this.lease(ttl),
        txn: (request) => this.client.kv.txn(request, this.callOptions()),
        track: (lock: EtcdLock) => {
          const shutdown: Shutdown = async () => lock.abandon();
          this.open.add(shutdown);
          return () => this.open.delete(shutdown);
        },
      },
      key,
      holder,
      ttlSeconds,
    );
  }

  /** Closes mirrors and stops keep-alives (leases are left to expire, not revoked), then the client. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.allSettled([...this.open].map((shutdown) => shutdown()));
      this.client.close();
    })();
    return this.closing;
  }

  /** One deadline for a whole call, retries included (etcd3's per-attempt default is the fallback). */
  private readonly callOptions = (): CallOptions => ({ deadline: Date.now() + this.callTimeoutMs });

  private lease(ttlSeconds: number): Lease {
    return this.client.lease(ttlSeconds, { autoKeepAlive: true });
  }

  private assertOpen(): void {
    if (this.closing) throw new Error('this etcd client is closed');
  }
}
