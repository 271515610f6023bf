/**
 * List-then-watch of one key range. A full list happens at start, after a compaction passed the
 * revision the mirror has applied, when etcd refuses the watch, and on resync(); a watch that is
 * merely lost (stream failed, member lost its leader, member stopped answering) is resumed from
 * the last revision applied, on a new stream, preferably on another member.
 *
 * Why resuming from lastRevision is safe: revisions are delivered whole and in order (events of
 * one revision are grouped before onRevision), and lastRevision moves only with what was
 * delivered, never with a response header, which may run ahead of events not yet sent. Why not
 * etcd3's own resume: it restarts from such a header revision (see watch-stream.ts).
 *
 * Re-lists after a compaction start after a random delay (jitteredDelay): a compaction that
 * leaves many routers behind must not send all their lists to etcd at the same moment.
 */
import type { IWatchResponse } from 'etcd3';
import { Backoff, jitteredDelay, Sleeper } from './backoff.js';
import { groupByRevision } from './convert.js';
import { errorMessage, isConnectivityError } from './errors.js';
import type { ListOptions } from './list.js';
import { describeAccessRefused } from './security.js';
import type { KvEntry, Mirror, MirrorHandlers, MirrorOptions, SnapshotBuilder } from './types.js';
import { CREATE_TIMEOUT_MS, WatchStream, type OpenWatchStream, type WatchEnd } from './watch-stream.js';

export const DEFAULT_START_TIMEOUT_MS = 10_000;
/** Re-lists after a compaction are spread over this long. */
export const RELIST_JITTER_MS = 2_000;

export interface MirrorDeps {
  endpoints: string[];
  callTimeoutMs: number;
  list(start: Buffer, end: Buffer, opts: ListOptions): Promise<{ entries: KvEntry[]; revision: bigint }>;
  openWatch: OpenWatchStream;
  /** Called once the mirror is closed, so the client stops tracking it. */
  onClosed(): void;
}

export class RangeMirror implements Mirror {
  private readonly start_: Buffer;
  private readonly end: Buffer;
  /** Bumped by every (re)sync and by close(): callbacks of an older generation are ignored. */
  private generation = 0;
  private current: WatchStream | undefined;
  /** The newest revision delivered (a snapshot's, or the last onRevision's). */
  private lastRevision = -1n;
  /** The last answer to a progress request, not yet confirmed by the next one (see onProgressAnswer). */
  private unconfirmedAnswer: bigint | undefined;
  private connected: boolean | undefined;
  private closed = false;
  private starting: Promise<void> | undefined;
  private readonly firstSnapshot = deferred();
  private lastListError: unknown;
  /** Paces lists while etcd fails; reset once a watch is created, i.e. everything works. */
  private readonly backoff = new Backoff();
  private readonly sleeper = new Sleeper();

  constructor(
    private readonly deps: MirrorDeps,
    private readonly opts: MirrorOptions,
    private readonly handlers: MirrorHandlers,
  ) {
    this.start_ = Buffer.from(opts.start);
    this.end = Buffer.from(opts.end);
  }

  /**
   * Resolves once the first snapshot was delivered. Rejects after startTimeoutMs naming the
   * endpoints and the last error, or at once when etcd refuses the credentials; the mirror keeps
   * trying in the background until close(), so a caller may also log the rejection and wait for
   * onSnapshot.
   */
  start(): Promise<void> {
    this.starting ??= this.startOnce();
    return this.starting;
  }

  resync(reason: string): void {
    if (this.closed || !this.starting) return;
    this.restart(reason, 0);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.generation++;
    this.sleeper.wakeAll();
    this.firstSnapshot.reject(new Error(`mirror of ${this.describeRange()} closed before its first snapshot`));
    this.dropWatcher();
    this.deps.onClosed();
  }

  private async startOnce(): Promise<void> {
    const timeoutMs = this.opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    void this.sync();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const cause = this.lastListError === undefined ? `no answer within ${timeoutMs} ms` : errorMessage(this.lastListError);
        reject(new Error(`could not list ${this.describeRange()} from ${this.describeEndpoints()} within ${timeoutMs} ms: ${cause}`));
      }, timeoutMs);
    });
    try {
      await Promise.race([this.firstSnapshot.promise, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Lists until it works (backing off while etcd is unreachable), delivers the snapshot, watches
   * on. `delayMs` first: a watch that keeps failing right after a good list must not turn into
   * a loop of full lists.
   */
  private async sync(delayMs = 0): Promise<void> {
    const generation = ++this.generation;
    this.dropWatcher();
    if (delayMs > 0) await this.sleeper.sleep(delayMs);
    while (this.isCurrent(generation)) {
      let listed: { entries: KvEntry[]; revision: bigint };
      const paged = this.handlers.beginSnapshot !== undefined;
      let builder: SnapshotBuilder | undefined;
      try {
        listed = await this.deps.list(this.start_, this.end, {
          pageSize: this.opts.pageSize,
          ...(this.opts.boundaries && { boundaries: this.opts.boundaries }),
          ...(this.opts.splits && { splits: this.opts.splits }),
          ...(paged && {
            onPage: (entries: KvEntry[], revision: bigint) => {
              // A newer sync (resync, close) took over: stop reading this one.
              if (!this.isCurrent(generation)) throw new Error('list superseded');
              builder ??= this.handlers.beginSnapshot!();
              builder.page(entries, revision);
            },
            onRestart: () => {
              builder?.abandon();
              builder = undefined;
            },
          }),
        });
      } catch (err) {
        builder?.abandon();
        if (!this.isCurrent(generation)) return;
        this.lastListError = err;
        // Waiting out the start timeout cannot fix a wrong password or a refused certificate.
        const refused = describeAccessRefused(err);
        if (refused) this.firstSnapshot.reject(new Error(`could not list ${this.describeRange()} from ${this.describeEndpoints()}: ${refused}`));
        if (isConnectivityError(err)) this.setConnected(false);
        this.guard(() => this.handlers.onError?.(err));
        await this.sleeper.sleep(this.backoff.next());
        continue;
      }
      if (!this.isCurrent(generation)) {
        builder?.abandon();
        return;
      }
      this.setConnected(true);
      this.lastRevision = listed.revision;
      if (paged) {
        // An empty range delivers no page.
        const done = builder ?? this.handlers.beginSnapshot!();
        this.guard(() => done.commit(listed.revision));
      } else {
        this.guard(() => this.handlers.onSnapshot(listed.entries, listed.revision));
      }
      this.firstSnapshot.resolve();
      if (this.isCurrent(generation)) this.watchFrom(listed.revision + 1n, generation);
      return;
    }
  }

  /**
   * etcd answers a progress request with its current revision R, on a channel of its own: before
   * 3.4.25/3.5.8 (etcd #15220) the answer can overtake events at or below R still queued for this
   * watch. So R is trusted only once the next answer has come (a progress interval later, by
   * which time events queued before R was read have been sent) and no event at or below R came
   * in between: then the state is known current up to R although nothing in the range changed.
   */
  private onProgressAnswer(revision: bigint, generation: number): void {
    if (!this.isCurrent(generation)) return;
    const previous = this.unconfirmedAnswer;
    this.unconfirmedAnswer = revision;
    if (previous !== undefined && previous >= this.lastRevision) this.guard(() => this.handlers.onCurrent?.(previous));
  }

  private watchFrom(startRevision: bigint, generation: number): void {
    this.unconfirmedAnswer = undefined;
    this.current = new WatchStream(
      this.deps.openWatch,
      { start: this.start_, end: this.end, startRevision },
      {
        created: () => {
          if (!this.isCurrent(generation)) return;
          this.backoff.reset();
          this.setConnected(true);
        },
        response: (res) => this.onWatchResponse(res, generation),
        answered: (revision) => this.onProgressAnswer(revision, generation),
        ended: (end) => this.onWatchEnded(end, startRevision, generation),
      },
      Math.min(this.deps.callTimeoutMs, CREATE_TIMEOUT_MS),
    );
  }

  private onWatchEnded(end: WatchEnd, startRevision: bigint, generation: number): void {
    if (!this.isCurrent(generation)) return;
    this.current = undefined;
    switch (end.kind) {
      case 'compacted':
        this.restart(
          `watch from revision ${startRevision} compacted (etcd compacted up to ${end.compactRevision})`,
          jitteredDelay(RELIST_JITTER_MS),
        );
        return;
      case 'canceled':
        this.restart(`watch refused by etcd: ${end.reason}`, this.backoff.next());
        return;
      case 'lost':
        if (isConnectivityError(end.err)) this.setConnected(false);
        this.guard(() => this.handlers.onError?.(new Error(`etcd watch lost, resuming after revision ${this.lastRevision}: ${errorMessage(end.err)}`)));
        void this.resume(this.backoff.next());
        return;
    }
  }

  /** A new watch from the revision after the last one delivered, after `delayMs`. */
  private async resume(delayMs: number): Promise<void> {
    const generation = ++this.generation;
    await this.sleeper.sleep(delayMs);
    if (this.isCurrent(generation)) this.watchFrom(this.lastRevision + 1n, generation);
  }

  private onWatchResponse(res: IWatchResponse, generation: number): void {
    if (!this.isCurrent(generation)) return;
    if (res.events.length === 0) {
      // Only an event-less response is a progress notification: one with events may carry a
      // header revision ahead of events still to come.
      const revision = BigInt(res.header.revision);
      if (revision >= this.lastRevision) this.guard(() => this.handlers.onProgress?.(revision));
      return;
    }
    for (const { revision, events } of groupByRevision(res.events)) {
      // An event the last progress answer claimed to be past: that answer ran ahead (etcd #15220).
      if (this.unconfirmedAnswer !== undefined && revision <= this.unconfirmedAnswer) this.unconfirmedAnswer = undefined;
      if (revision <= this.lastRevision) continue; // already in the snapshot or delivered
      this.lastRevision = revision;
      this.guard(() => this.handlers.onRevision(events, revision));
      if (!this.isCurrent(generation)) return; // a handler called resync() or close()
    }
  }

  /** The watch cannot be resumed: tell the handlers and list again (after `delayMs`). */
  private restart(reason: string, delayMs: number): void {
    if (this.closed) return;
    this.guard(() => this.handlers.onResync?.(reason));
    void this.sync(delayMs);
  }

  private dropWatcher(): void {
    this.current?.close();
    this.current = undefined;
  }

  private setConnected(connected: boolean): void {
    if (this.connected === connected) return;
    this.connected = connected;
    this.guard(() => this.handlers.onConnection?.(connected));
  }

  /** Runs a handler; a throw goes to onError and never reaches etcd3 or the event loop. */
  private guard(call: () => void): void {
    try {
      call();
    } catch (err) {
      try {
        this.handlers.onError?.(err);
      } catch {
        // onError itself threw: there is nobody left to tell.
      }
    }
  }

  private isCurrent(generation: number): boolean {
    return !this.closed && generation === this.generation;
  }

  private describeEndpoints(): string {
    return `etcd at ${this.deps.endpoints.join(', ')}`;
  }

  private describeRange(): string {
    return `[${this.opts.start}, ${this.opts.end})`;
  }
}

function deferred(): { promise: Promise<void>; resolve(): void; reject(err: Error): void } {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined); // a rejection nobody awaits (start() was never called) is fine
  return { promise, resolve, reject };
}
