/**
 * The router's report of what it has applied, in two sizes: whole for the admin `/status`, and
 * bounded for the record in etcd (`<prefix>/routers/<id>`). Every reader of that record refuses a
 * value over MAX_VALUE_BYTES, and a deployer that cannot read a router's record cannot confirm
 * anything through it: so however many records are rejected or conflicting, the record lists a
 * few of them with their counts, and the rendered value is measured and shrunk until it fits.
 */
import { MAX_VALUE_BYTES, type RecordWarning, type Rejected, type RouterLoad, type RouterStatusRecord, type UnhealthyInstance } from '@paas/registry';
import type { TableSync } from '../records/table-sync.js';
import { expiringSoonCount } from './certificates.js';
import type { RouteConflict, RoutingTable } from '../table/routing-table.js';

/** How many rejected records and warnings (the newest), conflicts and unhealthy instances the etcd record lists. */
export const LISTED_MAX = 20;
/** A listed key or error is cut to this many characters: an etcd key may be 1.5 MiB long. */
export const TEXT_MAX = 512;

/** What the record is made of, as the table holds it. */
export interface StatusInput {
  revision: string;
  digest: string;
  routes: number;
  rejected: Rejected[];
  conflicts: RouteConflict[];
  /** "<app>/<id>" -> in flight, for every draining instance. */
  draining: [string, number][];
  /** "<app>/<id>" -> in flight, for other instances with requests open. */
  busy: [string, number][];
  /** Served certificates expiring soon (status/certificates.ts): a count, never the list. */
  certificatesExpiringSoon?: number;
  /** Every change in the watched range up to this revision is known applied (>= revision). */
  currentRevision: string;
  /** Accepted records with unknown fields. */
  warnings: RecordWarning[];
  /** Instances ejected or failing their health check, sorted by instance. */
  unhealthy: UnhealthyInstance[];
  startedAt: string;
  updatedAt: string;
  /** https://HOST:PORT of this router's tunnel listener (agents learn the fleet from these). */
  tunnel?: string | undefined;
  /** The latest load sample (status/load.ts); none before the first. */
  load?: RouterLoad | undefined;
}

export function statusInput(sync: TableSync, startedAt: string, tunnel?: string, load?: RouterLoad): StatusInput {
  const draining: [string, number][] = [];
  const busy: [string, number][] = [];
  for (const b of sync.table.reportedBackends()) (b.state === 'draining' ? draining : busy).push([b.key, b.inflight]);
  return {
    revision: sync.revision.toString(),
    digest: sync.digest(),
    routes: sync.table.routeCount(),
    rejected: sync.rejected(),
    conflicts: sync.table.conflicts(),
    draining,
    busy,
    certificatesExpiringSoon: expiringSoonCount(sync.table.certs, Date.now()),
    currentRevision: sync.currentRevision.toString(),
    warnings: sync.warnings(),
    unhealthy: unhealthyInstances(sync.table, Date.now()),
    startedAt,
    updatedAt: new Date().toISOString(),
    tunnel,
    load,
  };
}

/** One entry per problem: an instance both ejected and failing its check has two. */
export function unhealthyInstances(table: RoutingTable, now: number): UnhealthyInstance[] {
  const out: UnhealthyInstance[] = [];
  for (const b of table.unhealthyBackends(now)) {
    if (!b.checkHealthy) out.push({ instance: b.key, problem: 'failing', reason: b.failingReason, since: new Date(b.failingSince).toISOString() });
    if (b.ejectedUntil > now) {
      out.push({ instance: b.key, problem: 'ejected', reason: b.ejectReason, since: new Date(b.ejectedSince).toISOString(), until: new Date(b.ejectedUntil).toISOString() });
    }
  }
  return out.sort((a, b) => (a.instance < b.instance ? -1 : a.instance > b.instance ? 1 : a.problem < b.problem ? -1 : 1));
}

/** The whole report, as /status shows it: every rejected record, conflict and busy instance. */
export function statusRecord(sync: TableSync, startedAt: string): RouterStatusRecord {
  const s = statusInput(sync, startedAt);
  return {
    revision: s.revision,
    digest: s.digest,
    routes: s.routes,
    rejected: s.rejected,
    rejectedCount: s.rejected.length,
    inflight: Object.fromEntries([...s.draining, ...s.busy]),
    conflicts: s.conflicts,
    conflictsCount: s.conflicts.length,
    ...(s.certificatesExpiringSoon !== undefined ? { certificatesExpiringSoon: s.certificatesExpiringSoon } : {}),
    currentRevision: s.currentRevision,
    warnings: s.warnings,
    warningsCount: s.warnings.length,
    unhealthy: s.unhealthy,
    unhealthyCount: s.unhealthy.length,
    startedAt: s.startedAt,
    updatedAt: s.updatedAt,
  };
}

/** The JSON value of the etcd record: see boundedStatusJson. */
export function statusRecordValue(sync: TableSync, startedAt: string, tunnel?: string, load?: RouterLoad): string {
  return boundedStatusJson(statusInput(sync, startedAt, tunnel, load));
}

/**
 * The record as JSON of at most `maxBytes` UTF-8 bytes. It lists the LISTED_MAX newest rejected
 * records and records with warnings (sorted by key), the first LISTED_MAX conflicts and unhealthy
 * instances, with their counts. When even that is too large, it gives up, in this order, the
 * in-flight counts of instances that are not draining, then halves the lists (rejected,
 * conflicts, warnings, unhealthy instances) down to none, then lists only as many draining
 * instances (by key) as fit; `inflightComplete: false` says that some instance is missing from
 * `inflight`, so a reader must not take a missing entry for 0. The draining instances come last
 * because the deployer's drain wait reads them. The rest (revision, digest, counts, times) is a
 * few hundred bytes.
 */
export function boundedStatusJson(s: StatusInput, maxBytes = MAX_VALUE_BYTES): string {
  let listed = LISTED_MAX;
  let withBusy = true;
  let drainingList = s.draining;
  let draining = drainingList.length;
  const rejected = newestByKey(s.rejected, LISTED_MAX).map(cutRejected);
  const conflicts = s.conflicts.slice(0, LISTED_MAX).map(cutConflict);
  const warnings = newestByKey(s.warnings, LISTED_MAX).map(cutWarning);
  const unhealthy = s.unhealthy.slice(0, LISTED_MAX).map(cutUnhealthy);
  const render = () => {
    const inflight: Record<string, number> = Object.create(null) as Record<string, number>;
    for (let i = 0; i < draining; i++) inflight[drainingList[i]![0]] = drainingList[i]![1];
    if (withBusy) for (const [key, n] of s.busy) inflight[key] = n;
    const complete = withBusy && draining === s.draining.length;
    const record: RouterStatusRecord = {
      revision: s.revision,
      digest: s.digest,
      routes: s.routes,
      rejected: listed === LISTED_MAX ? rejected : rejected.slice(0, listed),
      rejectedCount: s.rejected.length,
      inflight,
      ...(complete ? {} : { inflightComplete: false }),
      conflicts: listed === LISTED_MAX ? conflicts : conflicts.slice(0, listed),
      conflictsCount: s.conflicts.length,
      ...(s.certificatesExpiringSoon !== undefined ? { certificatesExpiringSoon: s.certificatesExpiringSoon } : {}),
      currentRevision: s.currentRevision,
      warnings: listed === LISTED_MAX ? warnings : warnings.slice(0, listed),
      warningsCount: s.warnings.length,
      unhealthy: listed === LISTED_MAX ? unhealthy : unhealthy.slice(0, listed),
      unhealthyCount: s.unhealthy.length,
      startedAt: s.startedAt,
      updatedAt: s.updatedAt,
      ...(s.tunnel === undefined ? {} : { tunnel: s.tunnel }),
      ...(s.load === undefined ? {} : { load: s.load }),
    };
    return JSON.stringify(record);
  };

  let json = render();
  if (fits(json, maxBytes)) return json;
  if (s.busy.length > 0) {
    withBusy = false;
    json = render();
    if (fits(json, maxBytes)) return json;
  }
  while (listed > 0) {
    listed = listed >> 1;
    json = render();
    if (fits(json, maxBytes)) return json;
  }
  // Only the draining instances are left to give up: the most of them (in key order) that fit.
  drainingList = [...s.draining].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  let lo = 0;
  let hi = drainingList.length - 1;
  while (lo < hi) {
    draining = (lo + hi + 1) >> 1;
    if (fits(render(), maxBytes)) lo = draining;
    else hi = draining - 1;
  }
  draining = lo;
  return render();
}

function fits(json: string, maxBytes: number): boolean {
  // Cheap first: a UTF-8 byte is at least one UTF-16 unit and at most three per unit.
  if (json.length * 3 <= maxBytes) return true;
  return json.length <= maxBytes && Buffer.byteLength(json) <= maxBytes;
}

/** The `n` entries with the highest revision (ties: lower key first), sorted by key; one pass. */
export function newestByKey<T extends { key: string; revision: string }>(all: T[], n: number): T[] {
  if (n <= 0) return [];
  const top: T[] = [];
  for (const r of all) {
    if (top.length === n && !newer(r, top[n - 1]!)) continue;
    // Insertion into a list of at most n, newest first; when full, the last one drops out.
    let i = top.length < n ? top.length : n - 1;
    while (i > 0 && newer(r, top[i - 1]!)) {
      top[i] = top[i - 1]!;
      i--;
    }
    top[i] = r;
  }
  return top.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** Revisions are decimal strings without leading zeros: the longer is the larger. */
function newer(a: { key: string; revision: string }, b: { key: string; revision: string }): boolean {
  if (a.revision.length !== b.revision.length) return a.revision.length > b.revision.length;
  if (a.revision !== b.revision) return a.revision > b.revision;
  return a.key < b.key;
}

function cut(text: string): string {
  return text.length > TEXT_MAX ? `${text.slice(0, TEXT_MAX - 1)}…` : text;
}

function cutRejected(r: Rejected): Rejected {
  return r.key.length > TEXT_MAX || r.error.length > TEXT_MAX ? { ...r, key: cut(r.key), error: cut(r.error) } : r;
}

function cutWarning(w: RecordWarning): RecordWarning {
  const fields = w.unknownFields.length > LISTED_MAX ? [...w.unknownFields.slice(0, LISTED_MAX), `… ${w.unknownFields.length - LISTED_MAX} more`] : w.unknownFields;
  return { key: cut(w.key), revision: w.revision, unknownFields: fields.map(cut) };
}

function cutUnhealthy(u: UnhealthyInstance): UnhealthyInstance {
  return u.reason.length > TEXT_MAX ? { ...u, reason: cut(u.reason) } : u;
}

function cutConflict(c: RouteConflict): RouteConflict {
  return { host: cut(c.host), path: cut(c.path), app: c.app, winner: c.winner };
}
