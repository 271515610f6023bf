/**
 * Feeds etcd's view (snapshots and per-revision events from the mirror) into records and the
 * routing table. A snapshot builds a new table and swaps it in with one assignment; a revision
 * mutates the live table in place, synchronously, so no request sees a transaction half-applied.
 */
import type { KeyLayout, KvEntry, MirrorHandlers, ParsedRecord, SnapshotBuilder, WatchEvent } from '@paas/registry';
import { parseEntry } from '@paas/registry';
import { RoutingTable } from '../table/routing-table.js';
import { RecordStore } from './record-store.js';

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

function applyToTable(table: RoutingTable, rec: ParsedRecord, createRevision: bigint): void {
  switch (rec.kind) {
    case 'app':
      table.setApp(rec.app, rec.value, createRevision);
      break;
    case 'instance':
      table.setInstance(rec.app, rec.id, rec.value);
      break;
    case 'override':
      table.setOverride(rec.host, rec.value);
      break;
  }
}

function removeFromTable(table: RoutingTable, rec: ParsedRecord): void {
  switch (rec.kind) {
    case 'app':
      table.deleteApp(rec.app);
      break;
    case 'instance':
      table.deleteInstance(rec.app, rec.id);
      break;
    case 'override':
      table.deleteOverride(rec.host);
      break;
  }
}

export class TableSync implements MirrorHandlers {
  table = new RoutingTable();
  records = new RecordStore();
  /** Every change in the watched range up to this revision is in the table; 0n before the first load. */
  revision = 0n;
  loaded = false;
  etcdConnected = false;
  etcdDownSince: Date | undefined = new Date();
  private carryOver = true;

  constructor(
    private readonly layout: KeyLayout,
    private readonly log: SyncLogger,
    private readonly events: SyncEvents,
  ) {}

  /** The next snapshot starts clean: rejected keys do not keep a last good value from before. */
  dropCarryOverOnNextSnapshot(): void {
    this.carryOver = false;
  }

  onSnapshot(entries: KvEntry[], revision: bigint): void {
    const builder = this.beginSnapshot();
    builder.page(entries, revision);
    builder.commit(revision);
  }

  /**
   * A full list, page by page: a new table and record store are built aside while the old
   * table keeps serving, and swapped in with one assignment on commit.
   */
  beginSnapshot(): SnapshotBuilder {
    let started = performance.now();
    let buildMs = 0;
    const previous = this.carryOver ? this.records : new RecordStore();
    let table: RoutingTable | undefined = new RoutingTable({ previous: this.table });
    let records: RecordStore | undefined = new RecordStore();
    let count = 0;
    return {
      page: (entries) => {
        if (table === undefined || records === undefined) return;
        const t0 = performance.now();
        count += entries.length;
        for (const e of entries) {
          const parsed = parseEntry(this.layout, e.key, e.value);
          if (parsed.ok) {
            records.accept(e.key, parsed.value, e.value, e.createRevision);
            applyToTable(table, parsed.value, e.createRevision);
            continue;
          }
          this.rejectKey(records, e.key, e.modRevision, parsed.error);
          const kept = previous.get(e.key);
          if (kept) {
            records.keep(e.key, kept);
            applyToTable(table, kept.record, kept.createRevision);
          }
        }
        buildMs += performance.now() - t0;
      },
      commit: (revision) => {
        if (table === undefined || records === undefined) return;
        this.carryOver = true;
        this.table = table;
        this.records = records;
        this.revision = revision;
        this.loaded = true;
        table = undefined;
        records = undefined;
        const listMs = performance.now() - started;
        this.log.info(
          { revision: revision.toString(), records: count, rejected: this.records.rejectedCount, ms: Math.round(listMs), buildMs: Math.round(buildMs) },
          'routing table loaded',
        );
        this.events.onApplied('snapshot', listMs);
        started = 0;
      },
      abandon: () => {
        table = undefined;
        records = undefined;
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
    const parsed = parseEntry(this.layout, key, value);
    if (!parsed.ok) {
      this.rejectKey(this.records, key, modRevision, parsed.error);
      return;
    }
    const old = this.records.get(key);
    this.records.accept(key, parsed.value, value, createRevision);
    // An app record that is rewritten keeps its create revision, so its route claims keep their rank.
    if (old && old.record.kind !== parsed.value.kind) removeFromTable(this.table, old.record);
    applyToTable(this.table, parsed.value, createRevision);
  }

  private applyDelete(key: string): void {
    const old = this.records.remove(key);
    if (old) removeFromTable(this.table, old.record);
  }

  private rejectKey(records: RecordStore, key: string, revision: bigint, error: string): void {
    records.reject(key, revision, error);
    this.log.warn({ key, revision: revision.toString(), error }, 'record rejected; keeping the last good value');
    this.events.onRejected(key, error);
  }
}
