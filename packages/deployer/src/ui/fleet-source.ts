/**
 * The fleet page's one etcd watch: a list-then-watch mirror of the whole prefix, shared by every
 * browser. Each change marks the view stale; the view is rebuilt from the mirrored records at
 * most once per COALESCE_MS (a burst of etcd events, such as a redeploy of many instances or
 * every router rewriting its status record, becomes one rebuild), and subscribers get the new
 * view only when it differs from the last one.
 */
import { prefixEnd, type Etcd, type KeyLayout, type KvEntry, type Mirror, type WatchEvent } from '@paas/registry';
import { certSummaries } from '../cert.js';
import { overrideLines } from '../maintenance.js';
import { statusOf, type StatusEntry } from '../status.js';
import { tunnelTokensOf, type ListedToken } from '../tunnel-tokens.js';
import { fleetView, type FleetView } from './fleet-view.js';

/** How long changes are gathered before the view is rebuilt and pushed. */
const COALESCE_MS = 150;

export interface FleetSnapshot {
  view: FleetView;
  /** The view as JSON, built once and sent to every browser. */
  json: string;
}

export class FleetSource {
  private readonly entries = new Map<string, StatusEntry>();
  private revision = 0n;
  private connected = true;
  private mirror: Mirror | undefined;
  private latest: FleetSnapshot | undefined;
  private timer: NodeJS.Timeout | undefined;
  private building: Promise<void> | undefined;
  private stale = false;
  private closed = false;
  private readonly listeners = new Set<(s: FleetSnapshot) => void>();
  /** Errors are told once open (a failed start says it all) and once each until a view is built again. */
  private started = false;
  private lastTold: string | undefined;

  private constructor(
    private readonly etcd: Etcd,
    private readonly layout: KeyLayout,
    private readonly tell: (err: unknown) => void,
  ) {}

  private onError(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    if (!this.started || message === this.lastTold) return;
    this.lastTold = message;
    this.tell(err);
  }

  /**
   * Lists the prefix and starts watching it; resolves once the first view is built. `onError`
   * hears what the watch recovers from by itself (etcd lost, a failed list).
   */
  static async open(etcd: Etcd, layout: KeyLayout, opts: { startTimeoutMs?: number; onError?: (err: unknown) => void } = {}): Promise<FleetSource> {
    const source = new FleetSource(etcd, layout, opts.onError ?? (() => {}));
    const dir = `${layout.prefix}/`;
    source.mirror = etcd.mirror(
      { start: dir, end: prefixEnd(dir), startTimeoutMs: opts.startTimeoutMs ?? 10_000 },
      {
        onSnapshot: (entries, revision) => source.onSnapshot(entries, revision),
        onRevision: (events, revision) => source.onEvents(events, revision),
        onConnection: (connected) => {
          source.connected = connected;
          source.changed();
        },
        onError: (err) => source.onError(err),
      },
    );
    try {
      await source.mirror.start();
      await source.build();
      source.started = true;
    } catch (err) {
      await source.close();
      throw err;
    }
    return source;
  }

  /** The newest view (built at open, so always there). */
  snapshot(): FleetSnapshot {
    return this.latest!;
  }

  /** Calls `fn` with every new view; returns the unsubscribe function. */
  subscribe(fn: (s: FleetSnapshot) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.listeners.clear();
    await this.mirror?.close().catch(() => {});
    await this.building;
  }

  private onSnapshot(entries: KvEntry[], revision: bigint): void {
    this.entries.clear();
    for (const e of entries) this.entries.set(e.key, e);
    this.revision = revision;
    this.changed();
  }

  private onEvents(events: WatchEvent[], revision: bigint): void {
    for (const ev of events) {
      if (ev.type === 'delete') this.entries.delete(ev.key);
      else this.entries.set(ev.key, ev);
    }
    this.revision = revision;
    this.changed();
  }

  /** Marks the view stale; the first change of a quiet period schedules the rebuild. */
  private changed(): void {
    this.stale = true;
    if (this.timer !== undefined || this.building !== undefined || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.rebuild();
    }, COALESCE_MS);
  }

  private rebuild(): Promise<void> {
    this.stale = false;
    this.building = this.build()
      .catch((err: unknown) => this.onError(err))
      .finally(() => {
        this.building = undefined;
        if (this.stale) this.changed();
      });
    return this.building;
  }

  private async build(): Promise<void> {
    const revision = this.revision;
    const entries = [...this.entries.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const status = statusOf(entries, revision, this.layout);
    // A watch event does not carry the lease, so an override's time left is asked of etcd (they
    // are few); while etcd is away the last answer stands.
    let overrides = this.latest?.view.overrides ?? [];
    if (this.connected) {
      try {
        overrides = await overrideLines(this.etcd, this.layout, (await this.etcd.listPrefix(this.layout.overridesDir)).entries);
      } catch (err) {
        this.onError(err);
      }
    }
    const certs = certSummaries(within(entries, this.layout.certsDir), within(entries, this.layout.acmeStatesDir), this.layout);
    const tokenEntries = new Map<string, StatusEntry[]>();
    for (const e of within(entries, this.layout.tunnelTokensDir)) {
      const app = e.key.slice(this.layout.tunnelTokensDir.length).split('/')[0]!;
      const list = tokenEntries.get(app);
      if (list) list.push(e);
      else tokenEntries.set(app, [e]);
    }
    const tokens = new Map<string, ListedToken[]>([...tokenEntries].map(([app, list]) => [app, tunnelTokensOf(this.layout.tunnelTokensOf(app), list)]));
    const view = fleetView({ status: { ...status, overrides }, endpoints: [...this.etcd.endpoints], etcdConnected: this.connected, certs, tunnelTokens: tokens });
    const json = JSON.stringify(view);
    if (this.closed || json === this.latest?.json) return;
    this.latest = { view, json };
    this.lastTold = undefined;
    for (const fn of [...this.listeners]) fn(this.latest);
  }
}

/** The entries under `dir`, from a list sorted by key. */
function within<T extends { key: string }>(sorted: T[], dir: string): T[] {
  return sorted.filter((e) => e.key.startsWith(dir));
}
