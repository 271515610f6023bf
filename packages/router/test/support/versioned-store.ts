/**
 * A model of etcd's multi-version key store for unit tests of code that reads history: one
 * revision per write, versions per incarnation, reads at a revision, compaction (reads below the
 * compaction revision fail, as in etcd's mvcc). The real thing is exercised against etcd in
 * test/integration/last-good.test.ts; this lets property tests run thousands of histories.
 */
import type { KeyAtRevision, KvEntry, WatchEvent } from '@paas/registry';
import type { KeyHistory } from '../../src/records/last-good.js';

/** One write of a key: a value (put) or undefined (delete). */
interface Write {
  revision: bigint;
  entry: KvEntry | undefined;
}

export class VersionedStore implements KeyHistory {
  revision = 1n;
  compacted = 0n;
  private readonly log = new Map<string, Write[]>();

  put(key: string, value: string): WatchEvent {
    const rev = ++this.revision;
    const now = this.current(key);
    const entry: KvEntry = {
      key,
      value: Buffer.from(value),
      createRevision: now?.createRevision ?? rev,
      modRevision: rev,
      version: (now?.version ?? 0n) + 1n,
      lease: '0',
    };
    this.writes(key).push({ revision: rev, entry });
    return { type: 'put', key, value: entry.value, createRevision: entry.createRevision, modRevision: rev };
  }

  /** Undefined when the key does not exist (etcd writes no revision then). */
  delete(key: string): WatchEvent | undefined {
    if (this.current(key) === undefined) return undefined;
    const rev = ++this.revision;
    this.writes(key).push({ revision: rev, entry: undefined });
    return { type: 'delete', key, modRevision: rev };
  }

  compact(revision: bigint): void {
    if (revision > this.compacted) this.compacted = revision;
  }

  list(): KvEntry[] {
    const out: KvEntry[] = [];
    for (const key of [...this.log.keys()].sort()) {
      const e = this.current(key);
      if (e !== undefined) out.push(e);
    }
    return out;
  }

  async getAt(key: string, revision: bigint): Promise<KeyAtRevision> {
    if (revision < this.compacted || revision > this.revision) return { compacted: true };
    return { compacted: false, entry: this.at(key, revision) };
  }

  async servesRevision(revision: bigint): Promise<boolean> {
    return revision >= this.compacted;
  }

  private current(key: string): KvEntry | undefined {
    return this.at(key, this.revision);
  }

  private at(key: string, revision: bigint): KvEntry | undefined {
    let found: KvEntry | undefined;
    for (const w of this.log.get(key) ?? []) if (w.revision <= revision) found = w.entry;
    return found;
  }

  private writes(key: string): Write[] {
    let w = this.log.get(key);
    if (w === undefined) this.log.set(key, (w = []));
    return w;
  }
}
