/**
 * The records a router has accepted (last good value per key) and the ones it rejected, plus
 * an order-independent digest of the accepted set. The digest is a sum of per-record hashes, so
 * one change updates it in O(1) and two routers holding the same records agree on it.
 */
import { createHash } from 'node:crypto';
import type { ParsedRecord, Rejected } from '@paas/registry';

export interface AcceptedRecord {
  record: ParsedRecord;
  createRevision: bigint;
  modRevision: bigint;
  hash: bigint;
}

const MASK = (1n << 64n) - 1n;

function recordHash(key: string, value: Buffer): bigint {
  const h = createHash('sha256').update(key).update('\0').update(value).digest();
  return h.readBigUInt64BE(0);
}

export class RecordStore {
  private readonly accepted = new Map<string, AcceptedRecord>();
  private readonly rejectedByKey = new Map<string, Rejected>();
  private sum = 0n;

  get size(): number {
    return this.accepted.size;
  }

  get(key: string): AcceptedRecord | undefined {
    return this.accepted.get(key);
  }

  accept(key: string, record: ParsedRecord, value: Buffer, createRevision: bigint, modRevision: bigint): void {
    this.setAccepted(key, { record, createRevision, modRevision, hash: recordHash(key, value) });
    this.rejectedByKey.delete(key);
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
      this.sum = (this.sum - old.hash) & MASK;
    }
    return old;
  }

  rejected(): Rejected[] {
    return [...this.rejectedByKey.values()];
  }

  get rejectedCount(): number {
    return this.rejectedByKey.size;
  }

  digest(): string {
    return this.sum.toString(16).padStart(16, '0');
  }

  private setAccepted(key: string, rec: AcceptedRecord): void {
    const old = this.accepted.get(key);
    if (old) this.sum = (this.sum - old.hash) & MASK;
    this.accepted.set(key, rec);
    this.sum = (this.sum + rec.hash) & MASK;
  }
}
