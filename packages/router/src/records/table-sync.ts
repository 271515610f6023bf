/**
 * Feeds etcd's view (full lists and per-revision events from the mirror) into the routing table,
 * which is the only copy of the accepted records: each table object carries its record's stamp
 * (hash and last list, see table/record-stamp.ts), and the digest is the sum of those hashes.
 *
 * A revision mutates the live table in place, synchronously, so no request sees a transaction
 * half-applied. A re-list is a diff against the table: a listed record whose hash and create
 * revision match its stamp is unchanged and is not even parsed; the changed ones are parsed as
 * the pages come and applied, with the deletion of whatever the list did not contain, in one
 * synchronous step at the end. So a re-list of 100k unchanged apps allocates next to nothing
 * and never holds a second table. Before the first load nothing is served, so records go into
 * the table as their pages arrive.
 */
import type { KeyLayout, KeyRef, KvEntry, MirrorHandlers, ParsedRecord, Rejected, SnapshotBuilder, WatchEvent } from '@paas/registry';
import { parseRecord } from '@paas/registry';
import { backendKey } from '../table/backend.js';
import type { RecordStamp } from '../table/record-stamp.js';
import { AppPool, RoutingTable } from '../table/routing-table.js';
import { DigestSum, hashRecord, type RecordHash } from './record-digest.js';

export interface SyncLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface SyncEvents {
  /** After every applied snapshot or revision. */
  onApplied(kind: 'snapshot' | 'revision' | 'progress', durationMs: number): void;
  onRejected(key: string, error: string): void;
  onResync(reason: string): void;
  onConnection(connected: boolean): void;
}

/** A parsed record waiting to go into the table, with what its stamp will say. */
interface Change {
  record: ParsedRecord;
  createRevision: bigint;
  hashHi: number;
  hashLo: number;
  /** The stamp of the record it replaces. */
  old: RecordStamp | undefined;
}

/** An app deleted and put again with the same value has a new create revision, which ranks its routes. */
function sameCreation(stamp: RecordStamp, createRevision: bigint): boolean {
  return !(stamp instanceof AppPool) || stamp.createRevision === createRevision;
}

export class TableSync implements MirrorHandlers {
  readonly table = new RoutingTable();
  /** Every change in the watched range up to this revision is in the table; 0n before the first load. */
  revision = 0n;
  loaded = false;
  etcdConnected = false;
  etcdDownSince: Date | undefined = new Date();
  private readonly sum = new DigestSum();
  private rejectedByKey = new Map<string, Rejected>();
  /** Overrides map a host to a shared target, so their stamps live here. */
  private readonly overrideStamps = new Map<string, RecordStamp>();
  /** Full lists begun so far; the current one's number is what it marks on the stamps it sees. */
  private lists = 0;
  private carryOver = true;
  private readonly hash: RecordHash = { hashHi: 0, hashLo: 0 };

  constructor(
    private readonly layout: KeyLayout,
    private readonly log: SyncLogger,
    private readonly events: SyncEvents,
  ) {}

  /** 16 hex digits: the sum of the accepted records' hashes (see record-digest.ts). */
  digest(): string {
    return this.sum.digest();
  }

  rejected(): Rejected[] {
    return [...this.rejectedByKey.values()];
  }

  get rejectedCount(): number {
    return this.rejectedByKey.size;
  }

  /** The next list starts clean: rejected keys do not keep a last good value from before. */
  dropCarryOverOnNextSnapshot(): void {
    this.carryOver = false;
  }

  onSnapshot(entries: KvEntry[], revision: bigint): void {
    const builder = this.beginSnapshot();
    builder.page(entries, revision);
    builder.commit(revision);
  }

  beginSnapshot(): SnapshotBuilder {
    const started = performance.now();
    const mark = ++this.lists;
    const carryOver = this.carryOver;
    let pending: Change[] | undefined = this.loaded ? [] : undefined;
    // A first list into an empty table finds no stamps: skip looking (a list given up half-way
    // leaves records behind, so this is about the table, not about `loaded`).
    const empty = this.table.isEmpty();
    const rejected = new Map<string, Rejected>();
    let active = true;
    let count = 0;
    let changed = 0;
    return {
      page: (entries) => {
        if (!active) return;
        count += entries.length;
        const h = this.hash;
        for (const e of entries) {
          const ref = this.layout.parse(e.key);
          if (!ref.ok) {
            this.reject(rejected, e.key, e.modRevision, ref.error);
            continue;
          }
          hashRecord(e.key, e.value, h);
          const stamp = empty ? undefined : this.stampOf(ref.ref);
          if (stamp !== undefined && stamp.hashHi === h.hashHi && stamp.hashLo === h.hashLo && sameCreation(stamp, e.createRevision)) {
            stamp.listed = mark;
            continue;
          }
          const parsed = parseRecord(ref.ref, e.value);
          if (!parsed.ok) {
            this.reject(rejected, e.key, e.modRevision, parsed.error);
            if (stamp !== undefined && carryOver) stamp.listed = mark;
            continue;
          }
          changed++;
          const change: Change = { record: parsed.value, createRevision: e.createRevision, hashHi: h.hashHi, hashLo: h.hashLo, old: stamp };
          if (pending !== undefined) pending.push(change);
          else this.apply(change, mark);
        }
      },
      commit: (revision) => {
        if (!active) return;
        active = false;
        const applyStarted = performance.now();
        if (pending !== undefined) for (const change of pending) this.apply(change, mark);
        pending = undefined;
        const deleted = this.deleteUnlisted(mark);
        this.rejectedByKey = rejected;
        this.carryOver = true;
        this.revision = revision;
        this.loaded = true;
        const ms = performance.now() - started;
        this.log.info(
          { revision: revision.toString(), records: count, changed, deleted, rejected: rejected.size, ms: Math.round(ms), applyMs: Math.round(performance.now() - applyStarted) },
          'routing table loaded',
        );
        this.events.onApplied('snapshot', ms);
      },
      abandon: () => {
        active = false;
        pending = undefined;
      },
    };
  }

  onRevision(events: WatchEvent[], revision: bigint): void {
    const started = performance.now();
    for (const ev of events) {
      if (ev.type === 'put') this.applyPut(ev.key, ev.value, ev.createRevision, ev.modRevision);
      else this.applyDelete(ev.key);
    }
    this.revision = revision;
    this.events.onApplied('revision', performance.now() - started);
  }

  onProgress(revision: bigint): void {
    if (revision > this.revision) {
      this.revision = revision;
      this.events.onApplied('progress', 0);
    }
  }

  onResync(reason: string): void {
    this.log.warn({ reason }, 'etcd watch lost; listing again');
    this.events.onResync(reason);
  }

  onConnection(connected: boolean): void {
    if (connected === this.etcdConnected) return;
    this.etcdConnected = connected;
    this.etcdDownSince = connected ? undefined : new Date();
    if (connected) this.log.info({}, 'etcd reachable');
    else this.log.warn({}, 'etcd unreachable; serving the last table');
    this.events.onConnection(connected);
  }

  onError(err: unknown): void {
    this.log.error({ err }, 'etcd sync error');
  }

  private applyPut(key: string, value: Buffer, createRevision: bigint, modRevision: bigint): void {
    const ref = this.layout.parse(key);
    if (!ref.ok) return this.reject(this.rejectedByKey, key, modRevision, ref.error);
    const parsed = parseRecord(ref.ref, value);
    if (!parsed.ok) return this.reject(this.rejectedByKey, key, modRevision, parsed.error);
    if (this.rejectedByKey.size !== 0) this.rejectedByKey.delete(key);
    hashRecord(key, value, this.hash);
    const h = this.hash;
    this.apply({ record: parsed.value, createRevision, hashHi: h.hashHi, hashLo: h.hashLo, old: this.stampOf(ref.ref) }, this.lists);
  }

  private applyDelete(key: string): void {
    if (this.rejectedByKey.size !== 0) this.rejectedByKey.delete(key);
    const ref = this.layout.parse(key);
    if (!ref.ok) return;
    const r = ref.ref;
    const stamp = this.stampOf(r);
    if (stamp === undefined) return;
    this.sum.subtract(stamp);
    switch (r.kind) {
      case 'app':
        this.table.deleteApp(r.app);
        break;
      case 'instance':
        this.table.deleteInstance(r.app, r.id);
        break;
      case 'override':
        this.overrideStamps.delete(r.host);
        this.table.deleteOverride(r.host);
        break;
    }
  }

  /** Puts one accepted record into the table and the digest, replacing the key's earlier record. */
  private apply(change: Change, mark: number): void {
    const rec = change.record;
    const old = change.old;
    if (old !== undefined) this.sum.subtract(old);
    let stamp: RecordStamp;
    switch (rec.kind) {
      case 'app':
        stamp = this.table.setApp(rec.app, rec.value, change.createRevision);
        break;
      case 'instance':
        stamp = this.table.setInstance(rec.app, rec.id, rec.value);
        break;
      case 'override':
        this.table.setOverride(rec.host, rec.value);
        stamp = old ?? { hashHi: 0, hashLo: 0, listed: 0 };
        this.overrideStamps.set(rec.host, stamp);
        break;
    }
    stamp.hashHi = change.hashHi;
    stamp.hashLo = change.hashLo;
    stamp.listed = mark;
    this.sum.add(stamp);
  }

  /** After list `mark`: every record it did not see is gone from etcd (or rejected without carry-over). */
  private deleteUnlisted(mark: number): number {
    let deleted = 0;
    const table = this.table;
    for (const pool of table.pools()) {
      if (pool.record !== undefined && pool.listed !== mark) {
        this.sum.subtract(pool);
        table.deleteApp(pool.name);
        deleted++;
      }
    }
    for (const backend of table.backends()) {
      if (backend.listed !== mark) {
        this.sum.subtract(backend);
        table.deleteInstance(backend.app, backend.id);
        deleted++;
      }
    }
    for (const [host, stamp] of this.overrideStamps) {
      if (stamp.listed !== mark) {
        this.sum.subtract(stamp);
        this.overrideStamps.delete(host);
        table.deleteOverride(host);
        deleted++;
      }
    }
    return deleted;
  }

  /** The stamp of the record the table holds for this key, if it holds one. */
  private stampOf(ref: KeyRef): RecordStamp | undefined {
    switch (ref.kind) {
      case 'app': {
        const pool = this.table.pool(ref.app);
        return pool?.record !== undefined ? pool : undefined;
      }
      case 'instance':
        return this.table.backend(backendKey(ref.app, ref.id));
      case 'override':
        return this.overrideStamps.get(ref.host);
      default:
        return undefined;
    }
  }

  private reject(into: Map<string, Rejected>, key: string, revision: bigint, error: string): void {
    into.set(key, { key, revision: revision.toString(), error });
    this.log.warn({ key, revision: revision.toString(), error }, 'record rejected; keeping the last good value');
    this.events.onRejected(key, error);
  }
}
