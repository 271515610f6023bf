/**
 * An order-independent digest of the records a router holds: the sum of per-record hashes, so
 * one change updates it in O(1) and two routers holding the same records agree on it.
 *
 * The per-record hash is a 60-bit non-cryptographic hash (two 30-bit lanes) over the key and the
 * value's bytes, and the sum is kept in two small integers: a full load of 300k records spent
 * ~1 s in sha256 and BigInt arithmetic, this costs a few tens of ms and allocates nothing.
 * The digest only has to tell routers with different records apart, not resist an adversary.
 */

/** A record's hash, two 30-bit halves (small integers: no heap numbers). */
export interface RecordHash {
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

/** Hashes key, a 0 separator, and the value bytes into `out`. */
export function hashRecord(key: string, value: Uint8Array, out: RecordHash): void {
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
  out.hashHi = (a ^ (b >>> 2)) & LANE_MASK;
  out.hashLo = (b ^ (a >>> 2)) & LANE_MASK;
}

export class DigestSum {
  private hi = 0;
  private lo = 0;

  add(h: RecordHash): void {
    let lo = this.lo + h.hashLo;
    let hi = this.hi + h.hashHi;
    if (lo >= LANE) {
      lo -= LANE;
      hi++;
    }
    this.lo = lo;
    this.hi = hi & LANE_MASK;
  }

  subtract(h: RecordHash): void {
    let lo = this.lo - h.hashLo;
    let hi = this.hi - h.hashHi;
    if (lo < 0) {
      lo += LANE;
      hi--;
    }
    this.lo = lo;
    this.hi = hi & LANE_MASK;
  }

  /** 16 hex digits (the contract's shape): the 60-bit sum. */
  digest(): string {
    return (this.hi * LANE + this.lo).toString(16).padStart(16, '0');
  }
}
