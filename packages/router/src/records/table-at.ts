/**
 * The routing table a router builds from etcd at one revision, for looking back (`paas-deploy
 * table` and `paas-deploy diff`): the router's own TableSync is fed one list of the watched range
 * at that revision and walks etcd's history below it for the last good value of each rejected
 * key, so routes, conflicts, kept values, rejections and the digest are those a router listing at
 * that revision holds. What is not in etcd (health, ejections, requests in flight) is left out.
 *
 * Imported by the deployer through the package's `./table-at` export: it loads the table code and
 * nothing of the server (no fastify, no logger, no metrics).
 */
import type { Etcd, KeyLayout, KvEntry, ParseContext, RecordWarning, Rejected } from '@paas/registry';
import { DEFAULT_PARSE_CONTEXT } from '@paas/registry';
import { certCovers } from '../table/cert-index.js';
import type { AppPool, RouteSlot } from '../table/routing-table.js';
import { TableSync, type SyncEvents, type SyncLogger } from './table-sync.js';

/** The revision asked for is not in etcd's history: compacted away, or not written yet. */
export class RevisionNotServed extends Error {
  constructor(
    readonly reason: 'compacted' | 'future',
    readonly revision: bigint,
    readonly current: bigint,
    /** The oldest revision etcd still serves (compacted only). */
    readonly oldest: bigint | undefined,
  ) {
    super(
      reason === 'future'
        ? `revision ${revision} is in the future: etcd's current revision is ${current}`
        : `revision ${revision} is compacted: etcd keeps history from revision ${oldest} to ${current} (etcd keeps no history before its last compaction)`,
    );
    this.name = 'RevisionNotServed';
  }
}

export interface SnapshotInstance {
  id: string;
  /** The record's url (a tunnel instance: `tunnel://<id>`). */
  url: string;
  state: string;
  weight: number;
}

export interface SnapshotApp {
  name: string;
  /** False when only instances or an override name the app. */
  record: boolean;
  balance: string;
  /** The active check, defaults filled in; null without one. */
  healthCheck: { path: string; intervalMs: number; timeoutMs: number } | null;
  tls: { redirect: boolean; hsts: string | null; acme: boolean } | null;
  instances: SnapshotInstance[];
}

export interface SnapshotRoute {
  /** Exact host, `*.suffix`, or '' for a host-less route. */
  host: string;
  path: string;
  /** The app that serves it. */
  app: string;
  /** Apps that claim the same host and path and lose to `app` (the older record wins). */
  losers: string[];
}

export type SnapshotOverride = { host: string; maintenance: { status: number; message: string } } | { host: string; app: string };

/** A served certificate: facts only, never the key. */
export interface SnapshotCertificate {
  name: string;
  hosts: string[];
  notAfter: string;
  /** SHA-256 of the leaf's DER, lower-case hex. */
  fingerprint: string;
  source: string;
}

export interface RoutingSnapshot {
  /** The revision the table is built at. */
  revision: string;
  /** etcd's revision when it was read. */
  current: string;
  /** The table's digest, as routers report it in their status records. */
  digest: string;
  /** The request host the snapshot is limited to (the routes a request for it may take), if any. */
  host: string | null;
  /** Exact hosts, then wildcards, then host-less routes; by host, then path (for a host: most specific first). */
  routes: SnapshotRoute[];
  /** By name: the apps of the routes and overrides (every app without a host). */
  apps: SnapshotApp[];
  overrides: SnapshotOverride[];
  certificates: SnapshotCertificate[];
  /** Every rejected key, by key (a host does not limit these: a rejected record's hosts are unknown). */
  rejected: Rejected[];
  warnings: RecordWarning[];
}

export interface TableAtOptions {
  /** Default: the current revision. */
  revision?: bigint;
  /** Only the routes, override and certificates a request for this host may meet. */
  host?: string;
  /** The key ring and the clock certificates are judged with (default: no key ring, now). */
  context?: ParseContext;
  /** How long reading etcd's history for rejected keys may take (ms). */
  timeoutMs?: number;
}

const quiet: SyncLogger = { warn() {}, info() {}, error() {} };
const noEvents: SyncEvents = { onApplied() {}, onRejected() {}, onResync() {}, onConnection() {} };

export async function tableAt(etcd: Etcd, layout: KeyLayout, opts: TableAtOptions = {}): Promise<RoutingSnapshot> {
  const { start, end } = layout.watchedRange();
  const current = await etcd.currentRevision();
  const revision = opts.revision ?? current;
  if (revision > current) throw new RevisionNotServed('future', revision, current, undefined);
  // A key this client's role can read: the start of the watched range.
  const serves = (r: bigint) => etcd.servesRevision(r, start);
  const notServed = async () => new RevisionNotServed('compacted', revision, current, await oldestServed(serves, revision, current));
  if (!(await serves(revision))) throw await notServed();
  let entries: KvEntry[];
  try {
    ({ entries } = await etcd.list(start, end, { revision, boundaries: layout.watchedBoundaries() }));
  } catch (err) {
    // Compacted between the check and the list.
    if (!(await serves(revision))) throw await notServed();
    throw err;
  }
  const history = { getAt: (key: string, r: bigint) => etcd.getAt(key, r), servesRevision: serves };
  const sync = new TableSync(layout, quiet, noEvents, history, opts.context ?? DEFAULT_PARSE_CONTEXT);
  try {
    sync.onSnapshot(entries, revision);
    const timeoutMs = opts.timeoutMs ?? 30_000;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`could not read etcd's history of the rejected keys within ${timeoutMs} ms`)), timeoutMs);
    });
    await Promise.race([sync.whenListed(), late]).finally(() => clearTimeout(timer));
    return snapshot(sync, revision, current, opts.host);
  } finally {
    sync.close();
  }
}

/** The oldest revision etcd serves, in (compacted, current]: compaction drops every revision below one point. */
async function oldestServed(serves: (r: bigint) => Promise<boolean>, compacted: bigint, current: bigint): Promise<bigint> {
  let lo = compacted + 1n;
  let hi = current;
  while (lo < hi) {
    const mid = (lo + hi) / 2n;
    if (await serves(mid)) hi = mid;
    else lo = mid + 1n;
  }
  return lo;
}

function snapshot(sync: TableSync, revision: bigint, current: bigint, host: string | undefined): RoutingSnapshot {
  const table = sync.table;
  const slots = host !== undefined ? [...table.routesForHost(host)] : [...table.allRoutes()].sort(compareSlots);
  const routes = slots.map((s) => ({ host: s.host, path: s.path, app: s.winner.name, losers: s.losers().map((p) => p.name) }));
  const overrides: SnapshotOverride[] = [];
  for (const [h, target] of table.overrideEntries()) {
    if (host !== undefined && h !== host) continue;
    overrides.push(target.kind === 'maintenance' ? { host: h, maintenance: { status: target.status, message: target.message } } : { host: h, app: target.name });
  }
  overrides.sort((a, b) => compare(a.host, b.host));
  let pools: AppPool[];
  if (host === undefined) pools = [...table.pools()];
  else {
    const names = new Set([...routes.flatMap((r) => [r.app, ...r.losers]), ...overrides.flatMap((o) => ('app' in o ? [o.app] : []))]);
    pools = [...names].flatMap((n) => table.pool(n) ?? []);
  }
  const apps = pools.map(appOf).sort((a, b) => compare(a.name, b.name));
  const certificates = [...table.certs.all()]
    .filter((c) => host === undefined || certCovers(c, host))
    .map((c) => ({ name: c.name, hosts: [...c.hosts], notAfter: new Date(c.notAfter).toISOString(), fingerprint: c.fingerprint, source: c.source ?? 'etcd' }))
    .sort((a, b) => compare(a.name, b.name));
  return {
    revision: revision.toString(),
    current: current.toString(),
    digest: sync.digest(),
    host: host ?? null,
    routes,
    apps,
    overrides,
    certificates,
    rejected: sync.rejected().sort((a, b) => compare(a.key, b.key)),
    warnings: sync.warnings().sort((a, b) => compare(a.key, b.key)),
  };
}

function appOf(pool: AppPool): SnapshotApp {
  const r = pool.record;
  const hc = r?.healthCheck;
  return {
    name: pool.name,
    record: r !== undefined,
    balance: r?.balance ?? 'round-robin',
    healthCheck: hc === undefined ? null : { path: hc.path ?? '/healthz', intervalMs: hc.intervalMs ?? 2000, timeoutMs: hc.timeoutMs ?? 1000 },
    tls: r?.tls === undefined ? null : { redirect: r.tls.redirect ?? false, hsts: r.tls.hsts ?? null, acme: r.tls.acme ?? false },
    instances: pool.backends.map((b) => ({
      id: b.id,
      // A tunnel instance's origin is made unique per app (table/backend.ts originOf); its record says tunnel://<id>.
      url: b.origin.startsWith('tunnel://') ? `tunnel://${b.id}` : b.origin,
      state: b.state,
      weight: b.weight,
    })),
  };
}

/** Exact hosts, then wildcards, then host-less; by host, then path. */
function compareSlots(a: RouteSlot, b: RouteSlot): number {
  return hostRank(a.host) - hostRank(b.host) || compare(a.host, b.host) || compare(a.path, b.path);
}

function hostRank(host: string): number {
  return host === '' ? 2 : host.startsWith('*.') ? 1 : 0;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
