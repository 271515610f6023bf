/**
 * List-then-watch of one key range, with a full resync whenever the watch cannot be trusted.
 *
 * What etcd3 does that shapes this code (lib/watch.js):
 * - A watcher cancelled by etcd (compaction past its start revision) only emits 'error' and is
 *   dropped from etcd3's watch manager; nothing resumes it. An 'error' with no listener throws.
 * - When the shared watch stream fails, etcd3 emits 'disconnected' and later re-creates every
 *   watcher from (last response header revision + 1). A response that carried events may have a
 *   header revision ahead of events not yet sent, so that resume can skip events. We never let
 *   it: on 'disconnected' the watcher is dropped at once and the range is listed again.
 * - A throw inside a 'data' listener is re-thrown by etcd3 in setImmediate: an uncaught
 *   exception. Every handler call here is guarded.
 */
import type { IWatchResponse, WatchBuilder, Watcher } from 'etcd3';
import { Backoff, Sleeper } from './backoff.js';
import { groupByRevision } from './convert.js';
import { EtcdTimeoutError, errorMessage, isConnectivityError } from './errors.js';
import type { ListOptions } from './list.js';
import type { KvEntry, Mirror, MirrorHandlers, MirrorOptions, SnapshotBuilder } from './types.js';

export const DEFAULT_START_TIMEOUT_MS = 10_000;

export interface MirrorDeps {
  endpoints: string[];
  callTimeoutMs: number;
  list(start: Buffer, end: Buffer, opts: ListOptions): Promise<{ entries: KvEntry[]; revision: bigint }>;
  watch(): WatchBuilder;
  /** Called once the mirror is closed, so the client stops tracking it. */
  onClosed(): void;
}

export class RangeMirror implements Mirror {
  private readonly start_: Buffer;
  private readonly end: Buffer;
  /** Bumped by every (re)sync and by close(): callbacks of an older generation are ignored. */
  private generation = 0;
  private current: { watcher: Watcher; dropped: boolean } | undefined;
  /** The newest revision delivered (a snapshot's, or the last onRevision's). */
  private lastRevision = -1n;
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
   * endpoints and the last error; the mirror keeps trying in the background until close(), so a
   * caller may also log the rejection and wait for onSnapshot.
   */
  start(): Promise<void> {
    this.starting ??= this.startOnce();
    return this.starting;
  }

  resync(reason: string): void {
    if (this.closed || !this.starting) return;
    this.restart(reason, undefined, 0);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.generation++;
    this.sleeper.wakeAll();
    this.firstSnapshot.reject(new Error(`mirror of ${this.describeRange()} closed before its first snapshot`));
    const dropping = this.dropWatcher();
    this.deps.onClosed();
    await dropping;
  }

  private async startOnce(): Promise<void> {
    const timeoutMs = this.opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    void this.sync();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const cause = this.lastListError === undefined ? `no answer within ${timeoutMs} ms` : errorMessage(this.lastListError);
        const where = `etcd at ${this.deps.endpoints.join(', ')}`;
        reject(new Error(`could not list ${this.describeRange()} from ${where} within ${timeoutMs} ms: ${cause}`));
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
    void this.dropWatcher();
    if (delayMs > 0) await this.sleeper.sleep(delayMs);
    while (this.isCurrent(generation)) {
      let listed: { entries: KvEntry[]; revision: bigint };
      const paged = this.handlers.beginSnapshot !== undefined;
      let builder: SnapshotBuilder | undefined;
      try {
        listed = await this.deps.list(this.start_, this.end, {
          pageSize: this.opts.pageSize,
          ...(this.opts.boundaries && { boundaries: this.opts.boundaries }),
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

  private watchFrom(startRevision: bigint, generation: number): void {
    // watcher() attaches synchronously, so our listeners exist before etcd3 can emit anything;
    // create() resolves on 'connected' and an 'error' right behind it would find no listener.
    const watcher = this.deps
      .watch()
      .inRange({ start: this.start_, end: this.end })
      .startRevision(startRevision.toString())
      .watcher();
    const current = { watcher, dropped: false };
    this.current = current;
    let created = false;
    const lost = (reason: string, err: unknown) => {
      clearTimeout(notCreated);
      if (this.isCurrent(generation)) this.restart(reason, err, created ? 0 : this.backoff.next());
    };
    const timeoutMs = this.deps.callTimeoutMs;
    const notCreated = setTimeout(
      () => lost(`watch not created within ${timeoutMs} ms`, new EtcdTimeoutError('creating the watch', timeoutMs)),
      timeoutMs,
    );
    watcher.once('connected', () => {
      created = true;
      clearTimeout(notCreated);
      this.backoff.reset();
    });
    watcher.on('data', (res) => this.onWatchResponse(res, generation));
    // etcd3 has already dropped a watcher that emits 'error' or 'end': never cancel it again.
    watcher.on('error', (err) => {
      current.dropped = true;
      lost(`watch cancelled by etcd (compacted or refused): ${errorMessage(err)}`, err);
    });
    watcher.on('end', () => {
      current.dropped = true;
      lost('watch ended', undefined);
    });
    watcher.on('disconnected', (err) => lost(`watch stream lost: ${errorMessage(err)}`, err));
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
      if (revision <= this.lastRevision) continue; // already in the snapshot or delivered
      this.lastRevision = revision;
      this.guard(() => this.handlers.onRevision(events, revision));
      if (!this.isCurrent(generation)) return; // a handler called resync() or close()
    }
  }

  /** The watch cannot be trusted any more: tell the handlers and list again (after `delayMs`). */
  private restart(reason: string, err: unknown, delayMs: number): void {
    if (this.closed) return;
    if (err !== undefined && isConnectivityError(err)) this.setConnected(false);
    this.guard(() => this.handlers.onResync?.(reason));
    void this.sync(delayMs);
  }

  /**
   * Cancels the current watcher unless etcd3 already dropped it. Not awaited by resyncs: etcd3's
   * cancel() waits for a 'connected' or 'end' that a broken stream may never send.
   */
  private async dropWatcher(): Promise<void> {
    const current = this.current;
    this.current = undefined;
    if (!current || current.dropped) return;
    current.dropped = true;
    // Listeners stay attached: an 'error' on an emitter without one would throw.
    const cancelled = current.watcher.cancel().catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([cancelled, new Promise((resolve) => (timer = setTimeout(resolve, this.deps.callTimeoutMs)))]);
    clearTimeout(timer);
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
