/**
 * The interface of the etcd wrapper: the only code in the project that talks to etcd3.
 * Revisions are bigint everywhere (etcd3 hands them out as decimal strings).
 */
import type { EtcdSecurity } from './security.js';

export interface KvEntry {
  key: string;
  value: Buffer;
  createRevision: bigint;
  modRevision: bigint;
  version: bigint;
  lease: string;
}

export type WatchEvent =
  | { type: 'put'; key: string; value: Buffer; createRevision: bigint; modRevision: bigint }
  | { type: 'delete'; key: string; modRevision: bigint };

/** A key as etcd serves it at an earlier revision, or `compacted` once etcd compacted that revision away. */
export type KeyAtRevision = { compacted: false; entry: KvEntry | undefined } | { compacted: true };

export interface EtcdOptions {
  endpoints: string[];
  /** How long one unary call may take before it fails (ms). */
  callTimeoutMs?: number;
  /** TLS and user/password for a secured etcd (see security.ts). */
  security?: EtcdSecurity;
}

export type Compare =
  | { key: string; target: 'version' | 'create' | 'mod'; op: '=' | '!=' | '<' | '>'; value: bigint }
  | { key: string; target: 'value'; op: '=' | '!='; value: string };

export type TxnOp = { put: string; value: string; lease?: string } | { delete: string };

export interface TxnResult {
  succeeded: boolean;
  revision: bigint;
}

/** A full list delivered page by page (see MirrorHandlers.beginSnapshot). */
export interface SnapshotBuilder {
  /** One page of the list, in key order; every page is at `revision`. */
  page(entries: KvEntry[], revision: bigint): void;
  /** The list is complete: swap the state built from the pages in. */
  commit(revision: bigint): void;
  /** The list failed or was started over: drop what was built. */
  abandon(): void;
}

export interface MirrorHandlers {
  /** A full (re)list at one revision: build a new state from `entries` and swap it in. */
  onSnapshot(entries: KvEntry[], revision: bigint): void;
  /**
   * Optional, instead of onSnapshot: receive a full list page by page while the next page is
   * being read, so a large range is never held as one array and parsing overlaps etcd's work.
   */
  beginSnapshot?(): SnapshotBuilder;
  /** Every event of one etcd revision, in order; called once per revision, in revision order. */
  onRevision(events: WatchEvent[], revision: bigint): void;
  /** A progress notification: nothing in the range changed up to and including `revision`. */
  onProgress?(revision: bigint): void;
  /**
   * Every event in the range up to `revision` has been delivered, as far as etcd's answers to
   * progress requests tell (see Mirror.onProgressAnswer): the state is current up to there even
   * though nothing in the range changed. Unlike onProgress, not a revision to apply.
   */
  onCurrent?(revision: bigint): void;
  /**
   * The mirror is listing again (a compaction passed its revision, etcd refused the watch, or
   * resync()); `reason` says why. A watch that is merely lost is resumed without a list.
   */
  onResync?(reason: string): void;
  /** etcd became reachable (true) or unreachable (false). */
  onConnection?(connected: boolean): void;
  /** A handler above threw, or a list failed; the mirror carries on. */
  onError?(err: unknown): void;
}

export interface MirrorOptions {
  /** Half-open key range [start, end). */
  start: string;
  end: string;
  /** Keys per range page; a single range response over 4 MiB fails in grpc-js. */
  pageSize?: number;
  /** Keys inside the range at which to cut it into separately paged segments (see list.ts). */
  boundaries?: string[];
  /** Keys at which a segment holding more than two pages is cut further (see list.ts). */
  splits?: string[];
  /** start() rejects with a message naming the endpoints when the first list has not succeeded by then. */
  startTimeoutMs?: number;
}

export interface Mirror {
  /**
   * Lists, delivers the first snapshot, starts watching; resolves once the snapshot was delivered.
   * When it rejects (startTimeoutMs) the mirror keeps trying in the background until close().
   */
  start(): Promise<void>;
  /** Drops the watch and lists again now (e.g. a digest mismatch was noticed); no-op before start(). */
  resync(reason: string): void;
  close(): Promise<void>;
}

export interface LeasedKey {
  /** Writes the value on this key's lease (granting one when there is none or it was lost). */
  set(value: string): Promise<void>;
  /**
   * Makes the key exclusive to this writer and writes `value` only if the key does not exist.
   * Rejects with KeyTakenError (naming the holder) when it does. From then on a write replaces
   * the key only while it is the one this writer created, or recreates it when it is gone (a
   * lost lease): a key someone else created meanwhile is never overwritten; set() then rejects
   * with KeyTakenError.
   */
  create(value: string): Promise<void>;
  /**
   * Calls `listener` with the lease each time a write lands on a lease other than the last one
   * (the first write, and the first after a lost lease), and at once when one already has: other
   * keys put on that lease go with this one, at the same moment.
   */
  onLease(listener: (lease: string) => void): void;
  /** Stops keep-alives; with revoke the lease is revoked so the key disappears at once. */
  close(opts?: { revoke?: boolean }): Promise<void>;
}

export interface Lock {
  /** The key's create revision: a fencing token. */
  readonly revision: bigint;
  readonly lease: string;
  release(): Promise<void>;
  /** Resolves (never rejects) when the lock's lease is lost. */
  readonly lost: Promise<void>;
}

export type LockResult = { ok: true; lock: Lock } | { ok: false; holder: string };

export interface Etcd {
  readonly endpoints: string[];
  get(key: string): Promise<KvEntry | undefined>;
  /**
   * The key as it was at `revision` (undefined: it did not exist then). `revision` must not be
   * ahead of the store: etcd answers both "compacted" and "future revision" with OUT_OF_RANGE.
   */
  getAt(key: string, revision: bigint): Promise<KeyAtRevision>;
  /**
   * Whether etcd still serves reads at `revision`, i.e. has not compacted past it. Reads `key`
   * (count only): pass one the client's etcd role may read; the default, "\0", needs a role
   * that reads outside any prefix.
   */
  servesRevision(revision: bigint, key?: string): Promise<boolean>;
  /** Every key in [start, end) at one revision, read in pages. */
  list(start: string, end: string, opts?: { pageSize?: number; revision?: bigint; boundaries?: string[]; splits?: string[] }): Promise<{ entries: KvEntry[]; revision: bigint }>;
  /** Convenience over list() for a key prefix. */
  listPrefix(prefix: string, opts?: { pageSize?: number; revision?: bigint }): Promise<{ entries: KvEntry[]; revision: bigint }>;
  put(key: string, value: string, opts?: { lease?: string }): Promise<bigint>;
  delete(key: string): Promise<bigint>;
  txn(compares: Compare[], success: TxnOp[], failure?: TxnOp[]): Promise<TxnResult>;
  currentRevision(): Promise<bigint>;
  /** List-then-watch of a key range, resyncing on compaction, error or a lost stream. */
  mirror(opts: MirrorOptions, handlers: MirrorHandlers): Mirror;
  leasedKey(key: string, ttlSeconds: number): LeasedKey;
  /** A lease nobody keeps alive: keys put on it go when it expires, `ttlSeconds` from now. */
  grantLease(ttlSeconds: number): Promise<string>;
  /** Seconds a lease has left; undefined when it has expired or never existed. */
  leaseTimeToLive(lease: string): Promise<number | undefined>;
  /** Revokes a lease, deleting its keys at once; a lease already gone is not an error. */
  revokeLease(lease: string): Promise<void>;
  /** Takes `key` if nobody holds it (a lease-backed key, gone when its holder dies). */
  tryLock(key: string, holder: string, ttlSeconds: number): Promise<LockResult>;
  close(): Promise<void>;
}

/** Helpers for the end of a prefix range (etcd's "range_end" for a prefix). */
export function prefixEnd(prefix: string): string {
  const buf = Buffer.from(prefix);
  for (let i = buf.length - 1; i >= 0; i--) {
    if (buf[i]! < 0xff) {
      buf[i]! += 1;
      return buf.subarray(0, i + 1).toString('latin1');
    }
  }
  return '\0';
}
