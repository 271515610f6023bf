/**
 * The records a router has accepted (last good value per key) and the ones it rejected, plus
 * an order-independent digest of the accepted set. The digest is a sum of per-record hashes, so
 * one change updates it in O(1) and two routers holding the same records agree on it.
 *
 * The per-record hash is a 60-bit non-cryptographic hash (two 30-bit lanes) over the key and the
 * value's bytes, and the sum is kept in two small integers: a full load of 300k records spent
 * ~1 s in sha256 and BigInt arithmetic, this costs a few tens of ms and allocates nothing.
 * The digest only has to tell routers with different records apart, not resist an adversary.
 */
import type { ParsedRecord, Rejected } from '@paas/registry';

export interface AcceptedRecord {
  record: ParsedRecord;
  createRevision: bigint;
  /** The record's hash, two 30-bit halves (small integers: no heap numbers). */
  hashHi: number;
  hashLo: number;
}

const LANE = 0x40000000; // 2^30
const LANE_MASK = LANE - 1;

/** murmur3's finalizer: spreads every input bit over the 32-bit word. */
function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

let hashHi = 0;
let hashLo = 0;

/** Hashes key, a 0 separator, and the value bytes into hashHi/hashLo (module state: no result object). */
export function hashRecord(key: string, value: Uint8Array): void {
  let a = 0x811c9dc5;
  let b = 0x3c6ef372;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995) ^ (b >>> 15);
  }
  a = Math.imul(a, 0x01000193);
  b = Math.imul(b, 0x5bd1e995) ^ (b >>> 15);
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995) ^ (b >>> 15);
  }
  const n = key.length + value.length;
  a = fmix(a ^ n);
  b = fmix(b ^ Math.imul(n, 0x9e3779b1));
  hashHi = (a ^ (b >>> 2)) & LANE_MASK;
  hashLo = (b ^ (a >>> 2)) & LANE_MASK;
}

export class RecordStore {
  private readonly accepted = new Map<string, AcceptedRecord>();
  private readonly rejectedByKey = new Map<string, Rejected>();
  private sumHi = 0;
  private sumLo = 0;

  get size(): number {
    return this.accepted.size;
  }

  get(key: string): AcceptedRecord | undefined {
    return this.accepted.get(key);
  }

  /** `_modRevision` is accepted for callers of the earlier signature; the store does not need it. */
  accept(key: string, record: ParsedRecord, value: Uint8Array, createRevision: bigint, _modRevision?: bigint): void {
    hashRecord(key, value);
    this.setAccepted(key, { record, createRevision, hashHi, hashLo });
    if (this.rejectedByKey.size !== 0) this.rejectedByKey.delete(key);
  }

  /** Keeps a record taken over from an earlier store (a re-list met a bad value for a key that had a good one). */
  keep(key: string, kept: AcceptedRecord): void {
    this.setAccepted(key, kept);
  }

  reject(key: string, revision: bigint, error: string): void {
    this.rejectedByKey.set(key, { key, revision: revision.toString(), error });
  }

  /** A deleted key: its record and any rejection of it are gone. Returns what was accepted. */
  remove(key: string): AcceptedRecord | undefined {
    this.rejectedByKey.delete(key);
    const old = this.accepted.get(key);
    if (old) {
      this.accepted.delete(key);
      this.subtract(old);
    }
    return old;
  }

  rejected(): Rejected[] {
    return [...this.rejectedByKey.values()];
  }

  get rejectedCount(): number {
    return this.rejectedByKey.size;
  }

  /** 16 hex digits (the contract's shape): the 60-bit sum of the accepted records' hashes. */
  digest(): string {
    return (this.sumHi * LANE + this.sumLo).toString(16).padStart(16, '0');
  }

  private setAccepted(key: string, rec: AcceptedRecord): void {
    const old = this.accepted.get(key);
    if (old) this.subtract(old);
    this.accepted.set(key, rec);
    let lo = this.sumLo + rec.hashLo;
    let hi = this.sumHi + rec.hashHi;
    if (lo >= LANE) {
      lo -= LANE;
      hi++;
    }
    this.sumLo = lo;
    this.sumHi = hi & LANE_MASK;
  }

  private subtract(rec: AcceptedRecord): void {
    let lo = this.sumLo - rec.hashLo;
    let hi = this.sumHi - rec.hashHi;
    if (lo < 0) {
      lo += LANE;
      hi--;
    }
    this.sumLo = lo;
    this.sumHi = hi & LANE_MASK;
  }
}
