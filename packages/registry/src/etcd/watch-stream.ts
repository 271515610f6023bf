/**
 * One etcd watch on a gRPC stream of its own, opened anew by the mirror for each (re)start.
 *
 * Why not etcd3's Watcher (lib/watch.js):
 * - Its stream carries only the pool's metadata, so it cannot ask for `hasleader: true`. Without
 *   it a watch on a member that lost its leader stays open and silent (etcd serves it from its
 *   own, stale store). With it, etcd refuses the stream on a leaderless member and cancels open
 *   ones after 3 election timeouts without a leader (etcd's v3rpc monitorLeader), like clientv3's
 *   WithRequireLeader, which Kubernetes' apiserver uses for every watch.
 * - It cannot send a WatchProgressRequest (etcd 3.4); its answer (watch_id -1) even throws in
 *   etcd3's handler. We send one every PROGRESS_INTERVAL_MS: any answer shows the member and the
 *   path to it work, so a frozen member or a black-holed link is found in seconds, not after
 *   gRPC keepalive (15 s).
 * - It drops the cancel response's compact_revision: we classify compaction by that field.
 * - It resumes by itself from a header revision that may be ahead of events not yet sent.
 *
 * The answer to a progress request is a sign of life; its revision is not applied as progress: in
 * etcd before 3.4.25/3.5.8 it can run ahead of events still queued for the watcher (etcd #15220).
 * The mirror only confirms it later (Mirror.onProgressAnswer) for "known current".
 */
import type { IWatchRequest, IWatchResponse } from 'etcd3';
import { EtcdTimeoutError } from './errors.js';
import { isStaleTokenMessage } from './security.js';

/**
 * How often a progress request is sent once the watch exists. A stalled stream is found 3 to 4
 * intervals after it stopped answering (see tick()): within 3 s. Each request costs etcd one tiny
 * answer, no disk or raft work.
 */
export const PROGRESS_INTERVAL_MS = 500;
/** Intervals in a row without any answer after which the stream counts as stalled. */
export const STALLED_AFTER_INTERVALS = 3;
/**
 * A member that has not confirmed a new watch by then counts as stalled too, like a running
 * stream that stops answering: a member frozen while a watch is being created is left within the
 * same 3 s (the etcd call timeout, 5 s, made that case the slow one).
 */
export const CREATE_TIMEOUT_MS = (STALLED_AFTER_INTERVALS + 2) * PROGRESS_INTERVAL_MS;

/** Why a watch ended. Only `lost` may be resumed from the last applied revision. */
export type WatchEnd =
  | { kind: 'compacted'; compactRevision: bigint }
  | { kind: 'canceled'; reason: string }
  | { kind: 'lost'; err: Error };

/** The gRPC duplex stream of etcd's Watch RPC, as etcd3's generated client returns it. */
export interface WatchDuplex {
  write(req: IWatchRequest): boolean;
  cancel(): void;
  on(event: 'data', listener: (res: IWatchResponse) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: 'end', listener: () => void): this;
}

/**
 * A Watch stream on some member. `failed` reports that member as unusable; `staleToken` says
 * etcd refused the auth token the stream carries, so the next stream must authenticate again.
 */
export interface OpenedWatch {
  stream: WatchDuplex;
  failed(err: Error): void;
  staleToken(): void;
}

export type OpenWatchStream = () => Promise<OpenedWatch>;

export interface WatchRequest {
  start: Buffer;
  end: Buffer;
  startRevision: bigint;
}

export interface WatchStreamHandlers {
  /** etcd created the watch: events from startRevision on follow. */
  created(): void;
  /** Events, or a progress notification, of this watch. */
  response(res: IWatchResponse): void;
  /** etcd answered a progress request at this header revision (not ordered with events before etcd 3.4.25/3.5.8). */
  answered?(revision: bigint): void;
  /** Called once; nothing is called after it. */
  ended(end: WatchEnd): void;
}

/** A watch whose member stopped answering progress requests. Counts as a connectivity error. */
export class EtcdWatchStalledError extends EtcdTimeoutError {
  constructor(ms: number) {
    super('watch stream stalled (progress requests unanswered)', ms);
    this.name = 'EtcdWatchStalledError';
  }
}

/** What a response with `canceled` set means: compaction (by its compact_revision field) or a refusal. */
export function classifyCancel(res: Pick<IWatchResponse, 'compact_revision' | 'cancel_reason'>): WatchEnd {
  const compactRevision = BigInt(res.compact_revision || '0');
  if (compactRevision > 0n) return { kind: 'compacted', compactRevision };
  return { kind: 'canceled', reason: res.cancel_reason || 'no reason given' };
}

export class WatchStream {
  private stream: WatchDuplex | undefined;
  private opened: OpenedWatch | undefined;
  private done = false;
  private created = false;
  private heard = true;
  private misses = 0;
  private readonly createTimer: NodeJS.Timeout;
  private progressTimer: NodeJS.Timeout | undefined;

  constructor(
    open: OpenWatchStream,
    private readonly req: WatchRequest,
    private readonly handlers: WatchStreamHandlers,
    createTimeoutMs: number,
  ) {
    this.createTimer = setTimeout(
      () => this.lose(new EtcdTimeoutError('creating the watch', createTimeoutMs)),
      createTimeoutMs,
    );
    open().then(
      (opened) => this.attach(opened),
      (err: unknown) => this.finish({ kind: 'lost', err: err instanceof Error ? err : new Error(String(err)) }),
    );
  }

  /** Ends the watch without calling `ended`. */
  close(): void {
    if (this.done) return;
    this.done = true;
    this.stop();
  }

  private attach(opened: OpenedWatch): void {
    const { stream } = opened;
    if (this.done) {
      stream.on('error', () => undefined);
      stream.cancel();
      return;
    }
    this.stream = stream;
    this.opened = opened;
    stream.on('data', (res) => this.onData(res));
    // Listeners stay for the stream's life: an 'error' without one would throw.
    stream.on('error', (err) => this.lose(err));
    stream.on('end', () => this.lose(new Error('etcd ended the watch stream')));
    stream.write({
      create_request: {
        key: this.req.start,
        range_end: this.req.end,
        start_revision: this.req.startRevision.toString(),
        // Periodic notifications for this watcher (every 10 min by default, etcd's
        // --experimental-watch-progress-notify-interval): sent only while it is synced.
        progress_notify: true,
      },
    });
  }

  private onData(res: IWatchResponse): void {
    if (this.done) return;
    this.heard = true;
    if (res.canceled) {
      // etcd checks the token when a watch is created (3.4: "rpc error: code = Unauthenticated
      // desc = etcdserver: invalid auth token"): the member is fine, the next stream
      // authenticates again and resumes where this one would have started.
      if (res.cancel_reason && isStaleTokenMessage(res.cancel_reason)) {
        this.opened?.staleToken();
        return this.finish({ kind: 'lost', err: new Error(`etcd refused the watch's auth token (${res.cancel_reason}); authenticating again`) });
      }
      return this.finish(classifyCancel(res));
    }
    if (res.created) {
      if (this.created) return;
      this.created = true;
      clearTimeout(this.createTimer);
      this.progressTimer = setInterval(() => this.tick(), PROGRESS_INTERVAL_MS);
      this.progressTimer.unref();
      this.handlers.created();
      return;
    }
    if (String(res.watch_id) === '-1') {
      // The answer to a progress request: a sign of life, and a revision the mirror may trust later.
      if (res.header?.revision !== undefined) this.handlers.answered?.(BigInt(res.header.revision));
      return;
    }
    this.handlers.response(res);
  }

  /**
   * Counted in intervals, not wall time: after a long synchronous stretch (a big batch applied)
   * this timer can run before the answers waiting in the socket are read, so one silent interval
   * proves nothing.
   */
  private tick(): void {
    if (this.done) return;
    this.misses = this.heard ? 0 : this.misses + 1;
    this.heard = false;
    if (this.misses >= STALLED_AFTER_INTERVALS) {
      this.lose(new EtcdWatchStalledError(this.misses * PROGRESS_INTERVAL_MS));
      return;
    }
    this.stream?.write({ progress_request: {} });
  }

  /** The stream failed, ended or stalled: the member is reported to the pool, the watch may be resumed. */
  private lose(err: Error): void {
    if (this.done) return;
    this.opened?.failed(err);
    this.finish({ kind: 'lost', err });
  }

  private finish(end: WatchEnd): void {
    if (this.done) return;
    this.done = true;
    this.stop();
    this.handlers.ended(end);
  }

  private stop(): void {
    clearTimeout(this.createTimer);
    clearInterval(this.progressTimer);
    this.stream?.cancel();
  }
}
