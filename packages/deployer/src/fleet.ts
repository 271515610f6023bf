/**
 * A live view of the routers' status records (`<prefix>/routers/<id>`, each on its router's lease),
 * kept by a list-then-watch mirror: routers appear, advance and disappear as etcd says, with no polling.
 */
import {
  parseRouterStatusRecord,
  prefixEnd,
  type Etcd,
  type KeyLayout,
  type KvEntry,
  type Mirror,
  type RouterStatusRecord,
  type WatchEvent,
} from '@paas/registry';

export interface RouterView {
  id: string;
  key: string;
  /** The parsed record, or undefined when it is not a valid status record (see `error`). */
  status: RouterStatusRecord | undefined;
  error: string | undefined;
  /** The revision the router says it has applied; -1 when its record is unreadable. */
  revision: bigint;
  /** etcd revision of the status record itself. */
  modRevision: bigint;
  /** When this process last saw the record change (performance.now()). */
  seenAt: number;
}

export function routerView(key: string, id: string, value: Buffer | string, modRevision: bigint, seenAt: number): RouterView {
  const parsed = parseRouterStatusRecord(value);
  if (!parsed.ok) return { id, key, status: undefined, error: parsed.error, revision: -1n, modRevision, seenAt };
  return { id, key, status: parsed.value, error: undefined, revision: BigInt(parsed.value.revision), modRevision, seenAt };
}

export class RouterFleet {
  private routers = new Map<string, RouterView>();
  private readonly listeners = new Set<() => void>();
  private mirror: Mirror | undefined;
  /** False while the mirror has lost etcd. */
  connected = true;
  lastError: string | undefined;

  private constructor(private readonly layout: KeyLayout) {}

  /** Starts watching; resolves once the first list of routers is in. */
  static async open(etcd: Etcd, layout: KeyLayout, opts: { startTimeoutMs?: number } = {}): Promise<RouterFleet> {
    const fleet = new RouterFleet(layout);
    const dir = layout.routersDir;
    fleet.mirror = etcd.mirror(
      { start: dir, end: prefixEnd(dir), startTimeoutMs: opts.startTimeoutMs ?? 10_000 },
      {
        onSnapshot: (entries) => fleet.onSnapshot(entries),
        onRevision: (events) => fleet.onEvents(events),
        onConnection: (connected) => {
          fleet.connected = connected;
          fleet.changed();
        },
        onError: (err) => {
          fleet.lastError = err instanceof Error ? err.message : String(err);
        },
      },
    );
    try {
      await fleet.mirror.start();
    } catch (err) {
      await fleet.mirror.close().catch(() => {});
      throw err;
    }
    return fleet;
  }

  /** The live routers, by id. */
  list(): RouterView[] {
    return [...this.routers.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  get(id: string): RouterView | undefined {
    return this.routers.get(id);
  }

  /** Calls `fn` after every change; returns the unsubscribe function. */
  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  async close(): Promise<void> {
    this.listeners.clear();
    await this.mirror?.close();
  }

  private idOf(key: string): string | undefined {
    const id = key.slice(this.layout.routersDir.length);
    return id && !id.includes('/') ? id : undefined;
  }

  private onSnapshot(entries: KvEntry[]): void {
    const now = performance.now();
    const next = new Map<string, RouterView>();
    for (const e of entries) {
      const id = this.idOf(e.key);
      if (!id) continue;
      const prev = this.routers.get(id);
      const seenAt = prev && prev.modRevision === e.modRevision ? prev.seenAt : now;
      next.set(id, routerView(e.key, id, e.value, e.modRevision, seenAt));
    }
    this.routers = next;
    this.changed();
  }

  private onEvents(events: WatchEvent[]): void {
    const now = performance.now();
    for (const ev of events) {
      const id = this.idOf(ev.key);
      if (!id) continue;
      if (ev.type === 'delete') this.routers.delete(id);
      else this.routers.set(id, routerView(ev.key, id, ev.value, ev.modRevision, now));
    }
    this.changed();
  }

  private changed(): void {
    for (const fn of [...this.listeners]) fn();
  }
}
