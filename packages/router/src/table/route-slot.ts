import type { AppPool } from './app-pool.js';

/**
 * One (host, path) pair and the apps that claim it. The app whose record was created first
 * (lowest etcd create revision) serves it; the others wait in order and take over when it lets go.
 */
export class RouteSlot {
  /** The route's host as written: an exact host, `*.suffix`, or '' for a host-less route. */
  readonly host: string;
  readonly path: string;
  /** Hash key of `path`, see PathIndex. */
  readonly key: number;
  winner: AppPool;
  /** Next slot with the same hash key in its PathIndex. */
  next: RouteSlot | undefined = undefined;
  /** The other claimants, best first; allocated only when a second app claims the slot. */
  private waiting: AppPool[] | undefined = undefined;

  constructor(host: string, path: string, key: number, first: AppPool) {
    this.host = host;
    this.path = path;
    this.key = key;
    this.winner = first;
  }

  get contested(): boolean {
    return this.waiting !== undefined;
  }

  /** Claimants that lost to the winner, best first. */
  losers(): readonly AppPool[] {
    return this.waiting ?? [];
  }

  claimedBy(pool: AppPool): boolean {
    return this.winner === pool || (this.waiting?.includes(pool) ?? false);
  }

  add(pool: AppPool): void {
    const waiting = (this.waiting ??= []);
    if (ranksBefore(pool, this.winner)) {
      waiting.unshift(this.winner);
      this.winner = pool;
      return;
    }
    let i = waiting.length;
    while (i > 0 && ranksBefore(pool, waiting[i - 1]!)) i--;
    waiting.splice(i, 0, pool);
  }

  /** Returns true when no app claims the slot any more. */
  remove(pool: AppPool): boolean {
    const waiting = this.waiting;
    if (pool === this.winner) {
      const next = waiting?.shift();
      if (next === undefined) return true;
      this.winner = next;
    } else if (waiting !== undefined) {
      const i = waiting.indexOf(pool);
      if (i >= 0) waiting.splice(i, 1);
    }
    if (waiting?.length === 0) this.waiting = undefined;
    return false;
  }
}

/** Lower create revision first; the name settles apps created in one etcd transaction. */
function ranksBefore(a: AppPool, b: AppPool): boolean {
  return a.createRevision < b.createRevision || (a.createRevision === b.createRevision && a.name < b.name);
}
