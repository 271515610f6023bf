/**
 * Feeds etcd's view (full lists and per-revision events from the mirror) into the routing table,
 * which is the only copy of the accepted records: each table object carries its record's stamp
 * (hash and last list, see table/record-stamp.ts), and the digest is the sum of those hashes.
 * How each kind of record enters the table is its adapter's business (table-adapters.ts).
 *
 * A revision mutates the live table in place, synchronously, so no request sees a transaction
 * half-applied. A re-list is a diff against the table: a listed record whose hash and create
 * revision match its stamp is unchanged and is not even parsed; the changed ones are parsed as
 * the pages come and applied, with the deletion of whatever the list did not contain, in one
 * synchronous step at the end. So a re-list of 100k unchanged apps allocates next to nothing
 * and never holds a second table. Before the first load nothing is served, so records go into
 * the table as their pages arrive.
 *
 * A key whose current value is rejected keeps its last good value by one rule for every router
 * (last-good.ts): the newest valid version of its incarnation, read from etcd's history when the
 * router did not see it itself, and nothing once that history is compacted. A list whose
 * rejected keys need such reads commits when they are done; revisions arriving meanwhile wait.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { KeyLayout, KeyRef, KvEntry, MirrorHandlers, ParseContext, ParsedRecord, RecordRef, RecordWarning, Rejected, SnapshotBuilder, WatchEvent } from '@paas/registry';
import { DEFAULT_PARSE_CONTEXT, expiredError, parseRecord } from '@paas/registry';
import type { RecordStamp } from '../table/record-stamp.js';
import { RoutingTable } from '../table/routing-table.js';
import { CertExpiryTimer } from './cert-expiry.js';
import { findLastGood, highestCompacted, type KeyHistory, type KnownLapse, type LastGood, type RejectedVersion } from './last-good.js';
import { DigestSum, hashRecord, type RecordHash } from './record-digest.js';
import { tableAdapters, type AnyTableAdapter, type CertStamp } from './table-adapters.js';

export interface SyncLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface SyncEvents {
  /** After every applied snapshot or revision (a kept value dropped counts as a revision). */
  onApplied(kind: 'snapshot' | 'revision' | 'progress', durationMs: number): void;
  onRejected(key: string, error: string): void;
  onResync(reason: string): void;
  onConnection(connected: boolean): void;
}

/** A parsed record waiting to go into the table, with what its stamp will say. */
interface Change {
  /** Where the record goes: its kind's adapter. */
  adapter: AnyTableAdapter;
  record: ParsedRecord;
  createRevision: bigint;
  modRevision: bigint;
  hashHi: number;
  hashLo: number;
  /** The stamp of the record it replaces. */
  old: RecordStamp | undefined;
}

/** A key whose current value is rejected, and whether the table holds an earlier value for it. */
interface Lapse extends KnownLapse {
  key: string;
  error: string;
}

/** A listed key whose rejected value this router has not judged: its last good value is looked up before the list commits. */
interface Recovery {
  ref: RecordRef;
  version: RejectedVersion;
  error: string;
  known: KnownLapse | undefined;
}

/** Revisions (events) or progress notices (no events) that arrived while a list was recovering. */
interface Held {
  events: WatchEvent[] | undefined;
  revision: bigint;
}

/** Reads of etcd's history in flight at once while a list recovers last good values. */
const RECOVERY_CONCURRENCY = 8;
const RETRY_MAX_MS = 5000;
/** While a list is being read, certificate expiry waits this long and looks again. */
const EXPIRY_RETRY_MS = 100;

export class TableSync implements MirrorHandlers {
  readonly table = new RoutingTable();
  /** Every change in the watched range up to this revision is in the table; 0n before the first load. */
  revision = 0n;
  /**
   * Known to have every change in the watched range up to this revision: the applied revision,
   * or further when etcd's answer to a progress request confirms nothing else came (mirror.ts).
   */
  private current = 0n;
  /** When etcd last sent a list, an event, a progress notice or a progress answer (ms epoch; 0: never). */
  lastNoticeAt = 0;
  loaded = false;
  etcdConnected = false;
  etcdDownSince: Date | undefined = new Date();
  private readonly sum = new DigestSum();
  /** By record kind (a Map: one lookup per listed key, where a keyed property load would go megamorphic). */
  private readonly adapters: Map<string, AnyTableAdapter>;
  private lapses = new Map<string, Lapse>();
  /** Accepted records with fields the schema does not know, by key. */
  private warned = new Map<string, RecordWarning>();
  /** Full lists begun so far; the current one's number is what it marks on the stamps it sees. */
  private lists = 0;
  /** A list is being read or recovered: its rejected keys are not in `lapses` yet. */
  private listing = false;
  private held: Held[] | undefined;
  private carryOver = true;
  private checking = false;
  private checkTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly hash: RecordHash = { hashHi: 0, hashLo: 0 };
  private markLoaded!: () => void;
  private readonly loadedOnce = new Promise<void>((resolve) => (this.markLoaded = resolve));
  private listed: Promise<void> = Promise.resolve();
  private readonly expiry: CertExpiryTimer;
  /** Keys whose served certificate expired, still to be walked back (walkExpired): the version that expired. */
  private readonly expired = new Map<string, { ref: KeyRef; createRevision: bigint; modRevision: bigint }>();
  private walking = false;

  constructor(
    private readonly layout: KeyLayout,
    private readonly log: SyncLogger,
    private readonly events: SyncEvents,
    private readonly history: KeyHistory,
    /** The key ring certificates' keys are decrypted with, and the clock their expiry is read from. */
    private readonly context: ParseContext = DEFAULT_PARSE_CONTEXT,
  ) {
    this.expiry = new CertExpiryTimer(() => context.now(), () => this.expireCertificates());
    const adapters = tableAdapters(this.table, { certServed: (notAfter) => this.expiry.served(notAfter) });
    this.adapters = new Map(Object.entries(adapters as Record<string, AnyTableAdapter>));
  }

  /** 16 hex digits: the sum of the accepted records' hashes (see record-digest.ts). */
  digest(): string {
    return this.sum.digest();
  }

  rejected(): Rejected[] {
    const out: Rejected[] = [];
    for (const l of this.lapses.values()) {
      out.push({ key: l.key, revision: l.revision.toString(), error: l.error, kept: l.kept ? (l.firstBad - 1n).toString() : null });
    }
    return out;
  }

  get rejectedCount(): number {
    return this.lapses.size;
  }

  get currentRevision(): bigint {
    return this.current > this.revision ? this.current : this.revision;
  }

  /** Accepted records whose current value has unknown fields. */
  warnings(): RecordWarning[] {
    return [...this.warned.values()];
  }

  get warningsCount(): number {
    return this.warned.size;
  }

  /** Resolves once the first list is in the table (its last good values recovered too). */
  whenLoaded(): Promise<void> {
    return this.loadedOnce;
  }

  /** Resolves once the latest list begun is in the table (a list given up never is). */
  whenListed(): Promise<void> {
    return this.listed;
  }

  /**
   * The next list judges every rejected key from etcd's history, as a router starting now
   * would, instead of trusting what this router concluded before.
   */
  dropCarryOverOnNextSnapshot(): void {
    this.carryOver = false;
  }

  /** Checks every `intervalMs` that etcd still has the history of each kept value (checkKeptHistory). */
  startHistoryCheck(intervalMs: number): void {
    this.checkTimer = setInterval(() => {
      this.checkKeptHistory().catch((err: unknown) => this.log.warn({ err }, 'could not check the history of kept values'));
    }, intervalMs);
    this.checkTimer.unref();
  }

  /** Stops the history check and any recovery still retrying. */
  close(): void {
    this.closed = true;
    clearInterval(this.checkTimer);
    this.expiry.close();
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
    // This list covers whatever an earlier one still recovering was holding back.
    this.held = undefined;
    this.listing = true;
    let pending: Change[] | undefined = this.loaded ? [] : undefined;
    // A first list into an empty table finds no stamps: skip looking (a list given up half-way
    // leaves records behind, so this is about the table, not about `loaded`).
    const empty = this.table.isEmpty();
    const lapses = new Map<string, Lapse>();
    const warned = new Map<string, RecordWarning>();
    const recoveries: Recovery[] = [];
    let listed!: () => void;
    this.listed = new Promise<void>((resolve) => (listed = resolve));
    let active = true;
    let count = 0;
    let changed = 0;

    const finish = (revision: bigint, recovered: LastGood[]) => {
      const applyStarted = performance.now();
      if (pending !== undefined) for (const change of pending) this.apply(change, mark);
      pending = undefined;
      for (let i = 0; i < recoveries.length; i++) {
        if (this.settle(recoveries[i]!, recovered[i]!, mark, lapses)) changed++;
      }
      const deleted = this.deleteUnlisted(mark);
      this.lapses = lapses;
      this.warned = warned;
      this.carryOver = true;
      this.revision = revision;
      this.lastNoticeAt = Date.now();
      this.loaded = true;
      this.listing = false;
      const ms = performance.now() - started;
      this.log.info(
        { revision: revision.toString(), records: count, changed, deleted, rejected: lapses.size, recovered: recoveries.length, ms: Math.round(ms), applyMs: Math.round(performance.now() - applyStarted) },
        'routing table loaded',
      );
      this.events.onApplied('snapshot', ms);
      this.markLoaded();
      listed();
    };

    return {
      page: (entries) => {
        if (!active) return;
        count += entries.length;
        const h = this.hash;
        for (const e of entries) {
          const ref = this.layout.parse(e.key);
          if (!ref.ok) {
            this.reject(lapses, { key: e.key, revision: e.modRevision, createRevision: 0n, error: ref.error, firstBad: e.modRevision, kept: false });
            continue;
          }
          hashRecord(e.key, e.value, h);
          const adapter = this.adapters.get(ref.ref.kind);
          const stamp = empty || adapter === undefined ? undefined : adapter.stamp(ref.ref);
          if (stamp !== undefined && stamp.hashHi === h.hashHi && stamp.hashLo === h.hashLo && adapter!.sameCreation(stamp, e.createRevision)) {
            stamp.listed = mark;
            // Unchanged, so not parsed again: its warnings, if any, stand.
            if (this.warned.size !== 0) {
              const w = this.warned.get(e.key);
              if (w !== undefined) warned.set(e.key, w);
            }
            continue;
          }
          const parsed = parseRecord(ref.ref, e.value, this.context);
          if (!parsed.ok) {
            // The first version of an incarnation has nothing before it: no history to read.
            if (adapter === undefined || e.version <= 1n) {
              this.reject(lapses, { key: e.key, revision: e.modRevision, createRevision: e.createRevision, error: parsed.error, firstBad: e.modRevision, kept: false });
              continue;
            }
            const prev = carryOver ? this.lapses.get(e.key) : undefined;
            const known = prev !== undefined && prev.createRevision === e.createRevision && (!prev.kept || stamp !== undefined) ? prev : undefined;
            if (known !== undefined && known.revision === e.modRevision) {
              // Judged before and unchanged since: that answer stands.
              if (known.kept) stamp!.listed = mark;
              this.reject(lapses, { ...known, key: e.key, error: parsed.error });
              continue;
            }
            const version = { key: e.key, createRevision: e.createRevision, modRevision: e.modRevision, version: e.version };
            recoveries.push({ ref: ref.ref as RecordRef, version, error: parsed.error, known });
            continue;
          }
          changed++;
          if (parsed.unknown !== undefined) this.warn(warned, e.key, e.modRevision, parsed.unknown);
          const change: Change = { adapter: adapter!, record: parsed.value, createRevision: e.createRevision, modRevision: e.modRevision, hashHi: h.hashHi, hashLo: h.hashLo, old: stamp };
          if (pending !== undefined) pending.push(change);
          else this.apply(change, mark);
        }
      },
      commit: (revision) => {
        if (!active) return;
        active = false;
        if (recoveries.length === 0) return finish(revision, []);
        // Revisions the watch delivers from now on are applied after this list.
        this.held = [];
        void this.recover(recoveries, mark).then((recovered) => {
          if (recovered === undefined || mark !== this.lists) return;
          finish(revision, recovered);
          const held = this.held ?? [];
          this.held = undefined;
          for (const h of held) {
            if (h.events !== undefined) this.onRevision(h.events, h.revision);
            else this.onProgress(h.revision);
          }
        });
      },
      abandon: () => {
        active = false;
        pending = undefined;
        if (mark === this.lists) this.listing = false;
      },
    };
  }

  onRevision(events: WatchEvent[], revision: bigint): void {
    this.lastNoticeAt = Date.now();
    if (this.held !== undefined) {
      this.held.push({ events, revision });
      return;
    }
    const started = performance.now();
    for (const ev of events) {
      if (ev.type === 'put') this.applyPut(ev.key, ev.value, ev.createRevision, ev.modRevision);
      else this.applyDelete(ev.key);
    }
    this.revision = revision;
    this.events.onApplied('revision', performance.now() - started);
  }

  onProgress(revision: bigint): void {
    this.lastNoticeAt = Date.now();
    if (this.held !== undefined) {
      this.held.push({ events: undefined, revision });
      return;
    }
    if (revision > this.revision) {
      this.revision = revision;
      this.events.onApplied('progress', 0);
    }
  }

  onCurrent(revision: bigint): void {
    this.lastNoticeAt = Date.now();
    // While a list is read or recovered, the table is not what that revision holds.
    if (this.held !== undefined || this.listing) return;
    if (revision > this.current) this.current = revision;
  }

  onResync(reason: string): void {
    this.log.warn({ reason }, 'listing etcd again');
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

  /**
   * Drops every kept value whose history etcd has compacted since (the value as of firstBad - 1
   * is no longer readable), so this router holds what one starting now would. Each drop is a
   * deletion; all of them happen in one synchronous step. Resolves to the number dropped.
   */
  async checkKeptHistory(): Promise<number> {
    if (this.listing || this.checking) return 0;
    const at = new Set<bigint>();
    for (const l of this.lapses.values()) if (l.kept) at.add(l.firstBad - 1n);
    if (at.size === 0) return 0;
    this.checking = true;
    try {
      const ceiling = await highestCompacted(this.history, [...at].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
      // A list that began meanwhile judges its keys itself.
      if (ceiling === undefined || this.listing) return 0;
      const started = performance.now();
      let dropped = 0;
      for (const l of this.lapses.values()) {
        if (!l.kept || l.firstBad - 1n > ceiling) continue;
        const ref = this.layout.parse(l.key);
        if (ref.ok) this.removeRecord(ref.ref);
        l.kept = false;
        dropped++;
        this.log.warn({ key: l.key, keptAt: (l.firstBad - 1n).toString() }, 'kept value dropped: etcd compacted the history it was read from');
      }
      if (dropped > 0) this.events.onApplied('revision', performance.now() - started);
      return dropped;
    } finally {
      this.checking = false;
    }
  }

  /**
   * Takes every served certificate whose notAfter has passed out of the table, in one step: its
   * key becomes rejected (expired), holding nothing for the moment. Then, as a router listing now
   * would, it looks in etcd's history for the newest earlier version of the key that is valid
   * now (walkExpired), usually none. Runs on the expiry timer.
   */
  expireCertificates(): void {
    if (this.closed) return;
    const now = this.context.now();
    if (this.listing) return this.expiry.arm(now + EXPIRY_RETRY_MS);
    const started = performance.now();
    const due = [];
    let next = Infinity;
    for (const cert of this.table.certs.all()) {
      if (cert.notAfter <= now) due.push(cert);
      else if (cert.notAfter < next) next = cert.notAfter;
    }
    const adapter = this.adapters.get('cert')!;
    for (const cert of due) {
      const ref: KeyRef = { kind: 'cert', name: cert.name };
      const key = this.layout.cert(cert.name);
      const modRevision = (adapter.stamp(ref) as CertStamp | undefined)?.modRevision ?? 0n;
      this.removeRecord(ref);
      const lapse = this.lapses.get(key);
      if (lapse !== undefined) {
        lapse.kept = false;
        this.log.warn({ key, revision: lapse.revision.toString(), error: lapse.error, notAfter: new Date(cert.notAfter).toISOString() }, 'kept certificate expired; looking for an earlier version valid now');
      } else {
        this.reject(this.lapses, { key, revision: modRevision, createRevision: cert.createRevision, error: expiredError(cert.notAfter).error, firstBad: modRevision, kept: false });
      }
      this.expired.set(key, { ref, createRevision: cert.createRevision, modRevision });
    }
    this.expiry.arm(next);
    if (due.length > 0) this.events.onApplied('revision', performance.now() - started);
    void this.walkExpired();
  }

  /**
   * For each key whose served certificate expired: the walk of last-good.ts from that version,
   * judging each earlier version with the clock of now, and the version found (if any) put back
   * as the key's kept value. Every version after the expired one is invalid now (rejected when
   * it came, or expired itself), so this is what a router listing now finds walking from the
   * current version. A result is dropped when the key changed meanwhile (a valid version, a
   * delete, a new incarnation); a list begun meanwhile defers the walk until it is in.
   */
  private async walkExpired(): Promise<void> {
    if (this.walking) return;
    this.walking = true;
    try {
      for (let attempt = 0; this.expired.size > 0 && !this.closed; ) {
        if (this.listing) return this.expiry.arm(this.context.now() + EXPIRY_RETRY_MS);
        const [key, at] = this.expired.entries().next().value!;
        const parse = (value: Buffer) => {
          const p = parseRecord(at.ref, value, this.context);
          return p.ok ? p.value : undefined;
        };
        let found: LastGood;
        try {
          found = await findLastGood(this.history, { key, createRevision: at.createRevision, modRevision: at.modRevision, version: undefined }, parse);
          attempt = 0;
        } catch (err) {
          this.log.warn({ key, err }, 'could not read the history of an expired certificate; retrying');
          await sleep(Math.min(RETRY_MAX_MS, 100 * 2 ** attempt++), undefined, { ref: false });
          continue;
        }
        if (this.listing || this.closed) continue;
        this.expired.delete(key);
        const lapse = this.lapses.get(key);
        if (found.found !== 'entry' || lapse === undefined || lapse.createRevision !== at.createRevision || lapse.kept) continue;
        const adapter = this.adapters.get(at.ref.kind)!;
        const started = performance.now();
        const h = this.hash;
        hashRecord(key, found.entry.value, h);
        this.apply({ adapter, record: found.record, createRevision: found.entry.createRevision, modRevision: found.entry.modRevision, hashHi: h.hashHi, hashLo: h.hashLo, old: adapter.stamp(at.ref) }, this.lists);
        lapse.kept = true;
        lapse.firstBad = found.firstBad;
        this.log.warn({ key, keptAt: (found.firstBad - 1n).toString() }, 'certificate expired; keeping an earlier version valid now');
        this.events.onApplied('revision', performance.now() - started);
      }
    } finally {
      this.walking = false;
    }
  }

  private applyPut(key: string, value: Buffer, createRevision: bigint, modRevision: bigint): void {
    const ref = this.layout.parse(key);
    if (!ref.ok) return this.reject(this.lapses, { key, revision: modRevision, createRevision: 0n, error: ref.error, firstBad: modRevision, kept: false });
    const adapter = this.adapters.get(ref.ref.kind);
    const parsed = parseRecord(ref.ref, value, this.context);
    if (!parsed.ok) {
      // The first rejected version after a good one starts a lapse; later ones keep its answer.
      const prev = this.lapses.get(key);
      const same = prev !== undefined && prev.createRevision === createRevision;
      const kept = same ? prev.kept : adapter?.stamp(ref.ref) !== undefined;
      return this.reject(this.lapses, { key, revision: modRevision, createRevision, error: parsed.error, firstBad: same ? prev.firstBad : modRevision, kept });
    }
    if (this.lapses.size !== 0) this.lapses.delete(key);
    if (parsed.unknown !== undefined) this.warn(this.warned, key, modRevision, parsed.unknown);
    else if (this.warned.size !== 0) this.warned.delete(key);
    hashRecord(key, value, this.hash);
    const h = this.hash;
    this.apply({ adapter: adapter!, record: parsed.value, createRevision, modRevision, hashHi: h.hashHi, hashLo: h.hashLo, old: adapter!.stamp(ref.ref) }, this.lists);
  }

  private applyDelete(key: string): void {
    if (this.lapses.size !== 0) this.lapses.delete(key);
    if (this.warned.size !== 0) this.warned.delete(key);
    const ref = this.layout.parse(key);
    if (ref.ok) this.removeRecord(ref.ref);
  }

  /** Takes the record the table holds for `ref`, if any, out of the table and the digest. */
  private removeRecord(ref: KeyRef): void {
    const adapter = this.adapters.get(ref.kind);
    const stamp = adapter?.stamp(ref);
    if (stamp === undefined) return;
    this.sum.subtract(stamp);
    adapter!.delete(ref);
  }

  /** Puts one accepted record into the table and the digest, replacing the key's earlier record. */
  private apply(change: Change, mark: number): void {
    const old = change.old;
    if (old !== undefined) this.sum.subtract(old);
    const stamp = change.adapter.set(change.record, change.createRevision, old, change.modRevision);
    stamp.hashHi = change.hashHi;
    stamp.hashLo = change.hashLo;
    stamp.listed = mark;
    this.sum.add(stamp);
  }

  /** Puts a recovered key's answer into the table and `lapses`; true when the table changed. */
  private settle(r: Recovery, found: LastGood, mark: number, lapses: Map<string, Lapse>): boolean {
    const key = r.version.key;
    const adapter = this.adapters.get(r.ref.kind)!;
    const base = { key, revision: r.version.modRevision, createRevision: r.version.createRevision, error: r.error };
    if (found.found === 'none') {
      this.reject(lapses, { ...base, firstBad: found.firstBad, kept: false });
      return false;
    }
    const stamp = adapter.stamp(r.ref);
    if (found.found === 'known') {
      const kept = found.known.kept && stamp !== undefined;
      if (kept) stamp.listed = mark;
      this.reject(lapses, { ...base, firstBad: found.known.firstBad, kept });
      return false;
    }
    this.reject(lapses, { ...base, firstBad: found.firstBad, kept: true });
    const h = this.hash;
    hashRecord(key, found.entry.value, h);
    if (stamp !== undefined && stamp.hashHi === h.hashHi && stamp.hashLo === h.hashLo && adapter.sameCreation(stamp, found.entry.createRevision)) {
      stamp.listed = mark;
      return false;
    }
    this.apply({ adapter, record: found.record, createRevision: found.entry.createRevision, modRevision: found.entry.modRevision, hashHi: h.hashHi, hashLo: h.hashLo, old: stamp }, mark);
    return true;
  }

  /** Looks up the last good value of each recovery; undefined when a newer list took over. */
  private async recover(recoveries: Recovery[], mark: number): Promise<LastGood[] | undefined> {
    const out: LastGood[] = [];
    let next = 0;
    const current = () => mark === this.lists && !this.closed;
    const worker = async () => {
      while (next < recoveries.length && current()) {
        const i = next++;
        const r = recoveries[i]!;
        const parse = (value: Buffer) => {
          const p = parseRecord(r.ref, value, this.context);
          return p.ok ? p.value : undefined;
        };
        for (let attempt = 0; current(); attempt++) {
          try {
            out[i] = await findLastGood(this.history, r.version, parse, r.known);
            break;
          } catch (err) {
            this.log.warn({ key: r.version.key, err }, 'could not read the history of a rejected key; retrying');
            await sleep(Math.min(RETRY_MAX_MS, 100 * 2 ** attempt), undefined, { ref: false });
          }
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(RECOVERY_CONCURRENCY, recoveries.length) }, worker));
    return current() ? out : undefined;
  }

  /** After list `mark`: every record it did not see is gone from etcd (or rejected with nothing kept). */
  private deleteUnlisted(mark: number): number {
    let deleted = 0;
    const gone = (stamp: RecordStamp) => {
      this.sum.subtract(stamp);
      deleted++;
    };
    for (const adapter of this.adapters.values()) adapter.sweep(mark, gone);
    return deleted;
  }

  private warn(into: Map<string, RecordWarning>, key: string, revision: bigint, unknownFields: string[]): void {
    const warning = { key, revision: revision.toString(), unknownFields };
    into.set(key, warning);
    this.log.warn(warning, `record accepted with unknown fields (ignored): ${unknownFields.join(', ')}`);
  }

  private reject(into: Map<string, Lapse>, lapse: Lapse): void {
    into.set(lapse.key, lapse);
    // A rejected value's fields are not the ones in the table (if any): its warnings no longer apply.
    if (into === this.lapses && this.warned.size !== 0) this.warned.delete(lapse.key);
    const revision = lapse.revision.toString();
    if (lapse.kept) this.log.warn({ key: lapse.key, revision, error: lapse.error, keptAt: (lapse.firstBad - 1n).toString() }, 'record rejected; keeping the last good value');
    else this.log.warn({ key: lapse.key, revision, error: lapse.error }, 'record rejected; the key has no value');
    this.events.onRejected(lapse.key, lapse.error);
  }
}
