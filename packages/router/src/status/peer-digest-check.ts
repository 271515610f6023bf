/**
 * Compares this router's table digest with its peers' status records at the same revision.
 * When a majority of the routers at that revision agree on another digest, this router lists
 * etcd again from scratch (without carrying over last good values, which only it may have seen)
 * and says why. Routers never watch routers/, so this reads it on a timer.
 */
import { parseRouterStatusRecord, type Etcd, type KeyLayout } from '@paas/registry';
import type { TableSync } from '../records/table-sync.js';

export interface DigestCheckLogger {
  warn(obj: object, msg: string): void;
}

export interface PeerDigestCheckOptions {
  etcd: Etcd;
  layout: KeyLayout;
  selfId: string;
  sync: TableSync;
  log: DigestCheckLogger;
  /** Lists etcd again; the caller's mirror.resync. */
  resync: (reason: string) => void;
  intervalMs: number;
  /** At most one re-list for a mismatch in this long. */
  minResyncIntervalMs: number;
  /** Called on every check that finds our digest is not the majority's (a metric: the alert). */
  onMismatch?: () => void;
}

export interface DigestVerdict {
  revision: bigint;
  ours: string;
  majority: string;
  agreeing: number;
  routersAtRevision: number;
}

/** The majority digest at `revision` among peers plus ourselves, when it is not ours. */
export function digestMismatch(ours: string, revision: bigint, peers: Array<{ revision: bigint; digest: string }>): DigestVerdict | undefined {
  const counts = new Map<string, number>([[ours, 1]]);
  let total = 1;
  for (const p of peers) {
    if (p.revision !== revision) continue;
    total++;
    counts.set(p.digest, (counts.get(p.digest) ?? 0) + 1);
  }
  for (const [digest, n] of counts) {
    if (digest !== ours && n * 2 > total) return { revision, ours, majority: digest, agreeing: n, routersAtRevision: total };
  }
  return undefined;
}

export class PeerDigestCheck {
  private timer: NodeJS.Timeout | undefined;
  private lastResync = 0;
  private running = false;

  constructor(private readonly opts: PeerDigestCheckOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.check(), this.opts.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  async check(): Promise<DigestVerdict | undefined> {
    if (this.running) return undefined;
    this.running = true;
    try {
      const { etcd, layout, selfId, sync } = this.opts;
      const { entries } = await etcd.listPrefix(layout.routersDir);
      const selfKey = layout.router(selfId);
      const peers: Array<{ revision: bigint; digest: string }> = [];
      for (const e of entries) {
        if (e.key === selfKey) continue;
        const rec = parseRouterStatusRecord(e.value);
        if (rec.ok) peers.push({ revision: BigInt(rec.value.revision), digest: rec.value.digest });
      }
      const verdict = digestMismatch(sync.digest(), sync.revision, peers);
      if (verdict) this.opts.onMismatch?.();
      if (verdict && Date.now() - this.lastResync >= this.opts.minResyncIntervalMs) {
        this.lastResync = Date.now();
        this.opts.log.warn(
          { revision: verdict.revision.toString(), ours: verdict.ours, majority: verdict.majority, agreeing: verdict.agreeing, routersAtRevision: verdict.routersAtRevision },
          'table digest differs from the majority of routers at the same revision; listing etcd again',
        );
        sync.dropCarryOverOnNextSnapshot();
        this.opts.resync('digest differs from the majority of routers');
      }
      return verdict;
    } catch {
      // etcd unreachable: the sync's own connection state already says so.
      return undefined;
    } finally {
      this.running = false;
    }
  }
}
