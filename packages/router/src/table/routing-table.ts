import type { AppRecord, InstanceRecord, OverrideRecord, Route } from '@paas/registry';
import { AppPool } from './app-pool.js';
import { CertIndex } from './cert-index.js';
import { Backend, originOf } from './backend.js';
import { forwardKey } from './hash.js';
import { PathIndex } from './path-index.js';
import { RouteSlot } from './route-slot.js';

export type { RouteSlot } from './route-slot.js';
import { WildcardIndex } from './wildcard-index.js';

export { AppPool } from './app-pool.js';

export type Target = AppPool | MaintenanceTarget;

export interface MaintenanceTarget {
  readonly kind: 'maintenance';
  readonly status: number;
  readonly message: string;
}

/** `app` claims the route too but `winner` serves it. `host` is '' for a host-less route. */
export interface RouteConflict {
  host: string;
  path: string;
  app: string;
  winner: string;
}

/**
 * The routes, apps and instances one router serves, kept in indexes that answer lookup() in
 * time independent of the number of apps and change in time proportional to what changed.
 * Records may arrive in any order: an instance or override may name an app before its record.
 */
export class RoutingTable {
  /** The certificates of `certs/` records, by the host names they cover. */
  readonly certs = new CertIndex();
  /**
   * Every app's pool; an app's instances are found through its pool (AppPool.backend), not in a
   * table-wide map: one lookup among every app's instead of among every instance's, and no key
   * string per instance (README, Performance: cold start).
   */
  private readonly poolsByName = new Map<string, AppPool>();
  private readonly exactHosts = new Map<string, PathIndex>();
  private readonly wildcards = new WildcardIndex();
  private readonly hostless = new PathIndex();
  private readonly overrides = new Map<string, Target>();
  /** Slots claimed by more than one app, so conflicts() need not scan the whole table. */
  private readonly contested = new Set<RouteSlot>();
  private readonly healthChecked = new Set<AppPool>();
  /**
   * Draining backends, and backends with requests in flight: what the status report lists. Kept
   * as they change so that the report, written right after every applied change, does not scan
   * every backend (2.5-5 ms at 100k apps, on the path of the first request after the change).
   */
  private readonly draining = new Set<Backend>();
  private readonly busy = new Set<Backend>();
  /** Backends ejected or failing their check when last noted; pruned as they are read. */
  private readonly unhealthy = new Set<Backend>();
  private slotCount = 0;
  /** The pool poolOrCreate returned last, while it is in poolsByName. */
  private recentPool: AppPool | undefined = undefined;

  /** Returns the app's pool (the same object across updates). */
  setApp(name: string, record: AppRecord, createRevision: bigint): AppPool {
    const pool = this.poolOrCreate(name);
    this.releaseClaims(pool);
    pool.setRecord(record, createRevision);
    if (record.healthCheck !== undefined) this.healthChecked.add(pool);
    else this.healthChecked.delete(pool);
    for (const route of record.routes) this.claim(pool, route);
    pool.setClaims(pool.claims);
    return pool;
  }

  deleteApp(name: string): void {
    const pool = this.poolsByName.get(name);
    if (pool === undefined || pool.record === undefined) return;
    this.releaseClaims(pool);
    pool.setRecord(undefined, 0n);
    this.healthChecked.delete(pool);
    this.dropIfUnused(pool);
  }

  /** Returns the instance's Backend: the same object across updates unless its origin changed. */
  setInstance(app: string, id: string, record: InstanceRecord): Backend {
    const origin = originOf(record, app);
    const pool = this.poolOrCreate(app);
    let backend = pool.backend(id);
    if (backend !== undefined && backend.origin !== origin) {
      pool.removeBackend(backend);
      this.draining.delete(backend);
      backend = undefined;
    }
    if (backend === undefined) {
      backend = new Backend(pool.name, id, origin); // the pool's name: one string per app, not per instance
      pool.addBackend(backend);
    }
    backend.apply(record);
    if (backend.state === 'draining') this.draining.add(backend);
    else this.draining.delete(backend);
    pool.instancesChanged();
    return backend;
  }

  deleteInstance(app: string, id: string): void {
    const pool = this.poolsByName.get(app);
    const backend = pool?.backend(id);
    if (backend === undefined || pool === undefined) return;
    this.draining.delete(backend);
    pool.removeBackend(backend);
    pool.instancesChanged();
    this.dropIfUnused(pool);
  }

  setOverride(host: string, record: OverrideRecord): void {
    let target: Target;
    if ('maintenance' in record) {
      const { status, message } = record.maintenance;
      target = Object.freeze({ kind: 'maintenance', status, message });
    } else {
      const pool = this.poolOrCreate(record.app);
      pool.overrideRefs++;
      target = pool;
    }
    const old = this.overrides.get(host);
    this.overrides.set(host, target);
    if (old !== undefined) this.releaseOverride(old);
  }

  deleteOverride(host: string): void {
    const old = this.overrides.get(host);
    if (old === undefined) return;
    this.overrides.delete(host);
    this.releaseOverride(old);
  }

  /**
   * Where a request goes; undefined means 404. `host`: lower-case, no port, no trailing dot.
   * `url`: the raw request target; only the part before '?' is matched.
   */
  lookup(host: string, url: string): Target | undefined {
    if (this.overrides.size !== 0) {
      const override = this.overrides.get(host);
      if (override !== undefined) return override;
    }
    const exact = this.exactHosts.get(host);
    if (exact !== undefined) {
      const slot = exact.match(url);
      if (slot !== undefined) return slot.winner;
    }
    const wildcard = this.wildcards.match(host, url);
    if (wildcard !== undefined) return wildcard.winner;
    return this.hostless.match(url)?.winner;
  }

  /** The override record of exactly `host`, if any. */
  override(host: string): Target | undefined {
    return this.overrides.get(host);
  }

  /** Every override, by host. */
  overrideEntries(): IterableIterator<[string, Target]> {
    return this.overrides.entries();
  }

  /**
   * The routes a request for `host` may take, through the lookup indexes (exact host, each
   * wildcard suffix of it, host-less routes): no scan of the table. Most specific first.
   */
  *routesForHost(host: string): IterableIterator<RouteSlot> {
    const exact = this.exactHosts.get(host);
    if (exact !== undefined) yield* exact.slots();
    for (let i = host.indexOf('.'); i > 0; i = host.indexOf('.', i + 1)) {
      const paths = this.wildcards.paths(host.slice(i + 1));
      if (paths !== undefined) yield* paths.slots();
    }
    yield* this.hostless.slots();
  }

  /** Every route (the admin's unfiltered listing): exact hosts, wildcards, host-less. */
  *allRoutes(): IterableIterator<RouteSlot> {
    for (const paths of this.exactHosts.values()) yield* paths.slots();
    for (const paths of this.wildcards.all()) yield* paths.slots();
    yield* this.hostless.slots();
  }

  /** No app, instance or override. */
  isEmpty(): boolean {
    return this.poolsByName.size === 0 && this.overrides.size === 0;
  }

  /** Distinct (host, path) routes with an app serving them; overrides are not counted. */
  routeCount(): number {
    return this.slotCount;
  }

  /** Every losing claim, sorted by host, path and app so equal tables report alike. */
  conflicts(): RouteConflict[] {
    const out: RouteConflict[] = [];
    for (const slot of this.contested) {
      for (const loser of slot.losers()) {
        out.push({ host: slot.host, path: slot.path, app: loser.name, winner: slot.winner.name });
      }
    }
    return out.sort(compareConflicts);
  }

  pools(): IterableIterator<AppPool> {
    return this.poolsByName.values();
  }

  pool(name: string): AppPool | undefined {
    return this.poolsByName.get(name);
  }

  /** Apps whose record asks for an active health check. */
  healthCheckedPools(): IterableIterator<AppPool> {
    return this.healthChecked.values();
  }

  /** The instance `id` of `app`. */
  instance(app: string, id: string): Backend | undefined {
    return this.poolsByName.get(app)?.backend(id);
  }

  /** A request or WebSocket starts on `backend`. */
  acquire(backend: Backend): void {
    if (backend.inflight++ === 0) this.busy.add(backend);
  }

  /** ...and ends. Returns the backend's in-flight count left. */
  release(backend: Backend): number {
    const left = --backend.inflight;
    if (left === 0) this.busy.delete(backend);
    return left;
  }

  /** Requests and WebSockets open to this table's backends. */
  inflightTotal(): number {
    let n = 0;
    for (const b of this.busy) n += b.inflight;
    return n;
  }

  /** How many backends are ejected at `now` or failing their check. */
  unhealthyCount(now: number): number {
    let n = 0;
    for (const _ of this.unhealthyBackends(now)) n++;
    return n;
  }

  /** A backend was ejected or failed its health check: the status report lists it while it stays so. */
  noteUnhealthy(backend: Backend): void {
    this.unhealthy.add(backend);
  }

  /**
   * Backends of this table ejected at `now` or failing their check. Those that recovered (an
   * ejection simply runs out) or left the table are dropped from the set as they are met.
   */
  *unhealthyBackends(now: number): IterableIterator<Backend> {
    for (const b of this.unhealthy) {
      if ((b.checkHealthy && b.ejectedUntil <= now) || this.instance(b.app, b.id) !== b) this.unhealthy.delete(b);
      else yield b;
    }
  }

  /** Backends of this table that are draining or have requests in flight. */
  *reportedBackends(): IterableIterator<Backend> {
    yield* this.draining;
    for (const b of this.busy) {
      if (b.state !== 'draining' && this.instance(b.app, b.id) === b) yield b;
    }
  }

  private claim(pool: AppPool, route: Route): void {
    const host = route.host ?? '';
    const path = normalizePath(route.path);
    const paths = this.pathsOrCreate(host);
    const slot = paths.get(path);
    if (slot === undefined) {
      const created = new RouteSlot(host, path, forwardKey(path), pool);
      paths.add(created);
      this.slotCount++;
      pool.claims.push(created);
    } else if (!slot.claimedBy(pool)) {
      slot.add(pool);
      this.contested.add(slot);
      pool.claims.push(slot);
    }
  }

  private releaseClaims(pool: AppPool): void {
    for (const slot of pool.claims) {
      if (slot.remove(pool)) this.removeSlot(slot);
      if (!slot.contested) this.contested.delete(slot);
    }
    pool.claims = [];
  }

  private pathsOrCreate(host: string): PathIndex {
    if (host === '') return this.hostless;
    if (isWildcard(host)) return this.wildcards.pathsOrCreate(host.slice(2));
    let paths = this.exactHosts.get(host);
    if (paths === undefined) {
      paths = new PathIndex();
      this.exactHosts.set(host, paths);
    }
    return paths;
  }

  private removeSlot(slot: RouteSlot): void {
    this.slotCount--;
    const host = slot.host;
    if (host === '') {
      this.hostless.remove(slot);
    } else if (isWildcard(host)) {
      const suffix = host.slice(2);
      this.wildcards.paths(suffix)?.remove(slot);
      this.wildcards.dropIfEmpty(suffix);
    } else {
      const paths = this.exactHosts.get(host);
      paths?.remove(slot);
      if (paths?.size === 0) this.exactHosts.delete(host);
    }
  }

  private releaseOverride(target: Target): void {
    if (target.kind !== 'app') return;
    target.overrideRefs--;
    this.dropIfUnused(target);
  }

  private poolOrCreate(name: string): AppPool {
    // A list hands over an app's instances one after another (keys sorted): the pool asked for
    // last is most often the one asked for again, found without a lookup among every app's.
    const recent = this.recentPool;
    if (recent !== undefined && recent.name === name) return recent;
    let pool = this.poolsByName.get(name);
    if (pool === undefined) {
      pool = new AppPool(name);
      this.poolsByName.set(name, pool);
    }
    this.recentPool = pool;
    return pool;
  }

  private dropIfUnused(pool: AppPool): void {
    if (!pool.unused) return;
    this.poolsByName.delete(pool.name);
    if (this.recentPool === pool) this.recentPool = undefined;
  }
}

function isWildcard(host: string): boolean {
  return host.startsWith('*.');
}

/**
 * Missing means '/'. The registry rejects a trailing '/', but should one get here, '/api/' is
 * treated as '/api': prefixes only ever match whole segments.
 */
function normalizePath(path: string | undefined): string {
  let p = path ?? '/';
  while (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
  return p;
}

function compareConflicts(a: RouteConflict, b: RouteConflict): number {
  return compare(a.host, b.host) || compare(a.path, b.path) || compare(a.app, b.app);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
