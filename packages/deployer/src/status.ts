/**
 * status: the fleet in one screen. Everything is read in one list of the prefix at one revision:
 * routers (applied revision, lag, digest, marking a digest that differs from its peers at the same
 * revision), apps with their instances (state, release, in-flight summed over routers) and locks.
 */
import {
  parseAppRecord,
  parseInstanceRecord,
  parseRouterStatusRecord,
  TUNNEL_SCHEME,
  prefixEnd,
  type AppRecord,
  type Etcd,
  type KeyLayout,
  type KvEntry,
  type RecordWarning,
  type Rejected,
  type RouterLoad,
  type RouterStatusRecord,
  type UnhealthyInstance,
} from '@paas/registry';
import { healthPathOf } from './apps.js';
import { describeHolder } from './lock.js';
import { overrideLines, type OverrideLine } from './maintenance.js';
import { table } from './table.js';

export interface RouterStatusLine {
  /** The router's own load, as it last sampled it (none from a router that does not publish it). */
  load: RouterLoad | undefined;
  id: string;
  revision: bigint | undefined;
  /** Up to this revision the router is known to have every routing change (its currentRevision, else its revision). */
  current: bigint | undefined;
  /**
   * 0 when the router is known current past the newest routing change in etcd; otherwise the
   * revisions from its current revision to etcd's. Writes outside the routing records (routers'
   * status records, locks) do not count.
   */
  lag: bigint | undefined;
  /**
   * The router has not applied a record still present under apps/, instances/ or overrides/
   * (a lower bound: deletions are not visible in a listing).
   */
  missingChanges: boolean;
  digest: string | undefined;
  /** Its digest differs from the majority of routers at the same revision. */
  digestMismatch: boolean;
  routes: number | undefined;
  /** How many records the router rejects (its record lists only the newest few). */
  rejected: number;
  /** The rejected records its status record lists (the newest, at most 20). */
  rejectedList: Rejected[];
  /** How many route conflicts it reports. */
  conflicts: number;
  conflictList: RouteConflictLine[];
  /** Its record was too full to list every instance in flight. */
  inflightCut: boolean;
  /** How many accepted records it reports with unknown fields, and the listed ones. */
  warnings: number;
  warningList: RecordWarning[];
  /** Instances it has ejected or whose health check fails (listed: at most 20). */
  unhealthy: number;
  unhealthyList: UnhealthyInstance[];
  /** When the router last wrote its record (ISO), as it says. */
  updatedAt: string | undefined;
  error: string | undefined;
}

/** A route claimed by two apps, as a router's record lists it. */
export type RouteConflictLine = NonNullable<RouterStatusRecord['conflicts']>[number];

export interface InstanceStatusLine {
  id: string;
  state: string | undefined;
  release: string | undefined;
  url: string | undefined;
  /** Requests in flight summed over routers; undefined when no router reports it. */
  inflight: number | undefined;
  /** Some router's record was too full to list this instance: `inflight` is a lower bound. */
  inflightPartial: boolean;
  /**
   * Per router with a readable record: its requests in flight to the instance; undefined when its
   * record was too full to list it (a router that lists none and is complete has 0).
   */
  inflightByRouter: { router: string; inflight: number | undefined }[];
  /** Per router: "ejected" or "failing" with the reason, for routers that report a problem. */
  health: { router: string; problem: string; reason: string; since: string }[];
  unknownFields: string[];
  error: string | undefined;
  /** A tunnel:// instance: the routers holding a session from its agent (tunnels/<app>/<id>/<router-id>). */
  tunnelRouters?: string[];
}

export interface AppStatus {
  name: string;
  record: AppRecord | undefined;
  /** Why the record is invalid, or that there is none. */
  error: string | undefined;
  /** Fields of the app record the schema does not know (ignored by routers). */
  unknownFields: string[];
  instances: InstanceStatusLine[];
  lock: string | undefined;
}

export interface FleetStatus {
  prefix: string;
  endpoints: string[];
  revision: bigint;
  newestChange: bigint;
  routers: RouterStatusLine[];
  apps: AppStatus[];
  /** overrides/ records (maintenance or an app), with the time a leased one has left. */
  overrides: OverrideLine[];
}

export async function collectStatus(etcd: Etcd, layout: KeyLayout, only?: string): Promise<FleetStatus> {
  const dir = `${layout.prefix}/`;
  const { entries, revision } = await etcd.list(dir, prefixEnd(dir));
  // Every override is listed, as `status <app>` lists every router: they are few and fleet-wide.
  const overrides = await overrideLines(etcd, layout, entries);
  return { ...statusOf(entries, revision, layout, only), endpoints: [...etcd.endpoints], overrides };
}

/** A record of the prefix as status reads it: a listed entry, or one a watch delivered. */
export type StatusEntry = Pick<KvEntry, 'key' | 'value' | 'modRevision'>;

/**
 * The fleet as the records under the prefix at `revision` say (every key of the prefix, in key
 * order), without the overrides (their leases are asked of etcd: see overrideLines).
 */
export function statusOf(entries: StatusEntry[], revision: bigint, layout: KeyLayout, only?: string): Omit<FleetStatus, 'endpoints' | 'overrides'> {
  const routersRaw: StatusEntry[] = [];
  const appsRaw = new Map<string, StatusEntry>();
  const instancesRaw = new Map<string, { id: string; entry: StatusEntry }[]>();
  const locks = new Map<string, StatusEntry>();
  /** "<app>/<id>" -> routers holding a tunnel session from its agent. */
  const tunnels = new Map<string, string[]>();
  const watched = layout.watchedRange();
  let newestChange = 0n;
  for (const e of entries) {
    if (e.key >= watched.start && e.key < watched.end && e.modRevision > newestChange) newestChange = e.modRevision;
    if (e.key.startsWith(layout.routersDir)) routersRaw.push(e);
    else if (e.key.startsWith(layout.tunnelsDir)) {
      const rest = e.key.slice(layout.tunnelsDir.length);
      const cut = rest.lastIndexOf('/');
      if (cut > 0) tunnels.set(rest.slice(0, cut), [...(tunnels.get(rest.slice(0, cut)) ?? []), rest.slice(cut + 1)]);
    } else if (e.key.startsWith(layout.rolloutsDir)) locks.set(e.key.slice(layout.rolloutsDir.length), e);
    else if (e.key.startsWith(layout.appsDir)) appsRaw.set(e.key.slice(layout.appsDir.length), e);
    else if (e.key.startsWith(layout.instancesDir)) {
      const rest = e.key.slice(layout.instancesDir.length);
      const slash = rest.indexOf('/');
      const app = slash < 0 ? rest : rest.slice(0, slash);
      const id = slash < 0 ? '' : rest.slice(slash + 1);
      const list = instancesRaw.get(app) ?? [];
      list.push({ id, entry: e });
      instancesRaw.set(app, list);
    }
  }

  const parsedRouters = routersRaw.map((e) => {
    const id = e.key.slice(layout.routersDir.length);
    const p = parseRouterStatusRecord(e.value);
    return { id, status: p.ok ? p.value : undefined, error: p.ok ? undefined : p.error };
  });
  const mismatched = digestOutliers(parsedRouters.flatMap((r) => (r.status ? [{ id: r.id, revision: r.status.revision, digest: r.status.digest }] : [])));
  const routers: RouterStatusLine[] = parsedRouters.map((r) => {
    const rev = r.status ? BigInt(r.status.revision) : undefined;
    const current = r.status ? BigInt(r.status.currentRevision ?? r.status.revision) : undefined;
    return {
      id: r.id,
      revision: rev,
      current,
      lag: current === undefined ? undefined : current >= newestChange ? 0n : revision - current,
      missingChanges: rev === undefined || rev < newestChange,
      digest: r.status?.digest,
      digestMismatch: mismatched.has(r.id),
      routes: r.status?.routes,
      rejected: r.status?.rejectedCount ?? r.status?.rejected.length ?? 0,
      rejectedList: r.status?.rejected ?? [],
      conflicts: r.status?.conflictsCount ?? r.status?.conflicts?.length ?? 0,
      conflictList: r.status?.conflicts ?? [],
      inflightCut: r.status?.inflightComplete === false,
      warnings: r.status?.warningsCount ?? r.status?.warnings?.length ?? 0,
      warningList: r.status?.warnings ?? [],
      unhealthy: r.status?.unhealthyCount ?? r.status?.unhealthy?.length ?? 0,
      unhealthyList: r.status?.unhealthy ?? [],
      load: r.status?.load,
      updatedAt: r.status?.updatedAt,
      error: r.error,
    };
  });

  const names = new Set([...appsRaw.keys(), ...instancesRaw.keys()]);
  const apps: AppStatus[] = [];
  for (const name of [...names].sort()) {
    if (only !== undefined && name !== only) continue;
    const appEntry = appsRaw.get(name);
    const parsedApp = appEntry ? parseAppRecord(appEntry.value) : undefined;
    const instances = (instancesRaw.get(name) ?? [])
      .map(({ id, entry }): InstanceStatusLine => {
        const p = parseInstanceRecord(entry.value);
        let inflight: number | undefined;
        let inflightPartial = false;
        const health: InstanceStatusLine['health'] = [];
        const inflightByRouter: InstanceStatusLine['inflightByRouter'] = [];
        for (const r of parsedRouters) {
          for (const u of r.status?.unhealthy ?? []) if (u.instance === `${name}/${id}`) health.push({ router: r.id, problem: u.problem, reason: u.reason, since: u.since });
          if (r.status === undefined) continue;
          const n = r.status.inflight[`${name}/${id}`];
          if (n !== undefined) inflight = (inflight ?? 0) + n;
          else if (r.status.inflightComplete === false) inflightPartial = true;
          inflightByRouter.push({ router: r.id, inflight: n ?? (r.status.inflightComplete === false ? undefined : 0) });
        }
        const tunnel = p.ok && p.value.url.startsWith(TUNNEL_SCHEME) ? { tunnelRouters: (tunnels.get(`${name}/${id}`) ?? []).sort() } : {};
        return p.ok
          ? { id, state: p.value.state, release: p.value.release, url: p.value.url, inflight, inflightPartial, inflightByRouter, health, unknownFields: p.unknown ?? [], error: undefined, ...tunnel }
          : { id, state: undefined, release: undefined, url: undefined, inflight, inflightPartial, inflightByRouter, health, unknownFields: [], error: p.error };
      })
      .sort((a, b) => (a.id < b.id ? -1 : 1));
    const lock = locks.get(name);
    apps.push({
      name,
      record: parsedApp?.ok ? parsedApp.value : undefined,
      error: !appEntry ? 'no app record' : parsedApp && !parsedApp.ok ? parsedApp.error : undefined,
      unknownFields: parsedApp?.ok ? (parsedApp.unknown ?? []) : [],
      instances,
      lock: lock ? describeHolder(lock.value.toString('utf8')) : undefined,
    });
  }
  if (only !== undefined && apps.length === 0) apps.push({ name: only, record: undefined, error: 'no app record', unknownFields: [], instances: [], lock: undefined });
  return { prefix: layout.prefix, revision, newestChange, routers, apps };
}

/**
 * Routers whose digest differs from their peers at the same revision: within each revision, every
 * router not holding the most common digest (all of them when there is no single most common one).
 */
export function digestOutliers(routers: { id: string; revision: string; digest: string }[]): Set<string> {
  const byRevision = new Map<string, { id: string; digest: string }[]>();
  for (const r of routers) byRevision.set(r.revision, [...(byRevision.get(r.revision) ?? []), r]);
  const out = new Set<string>();
  for (const group of byRevision.values()) {
    const counts = new Map<string, number>();
    for (const r of group) counts.set(r.digest, (counts.get(r.digest) ?? 0) + 1);
    if (counts.size <= 1) continue;
    const sorted = [...counts.entries()].sort((a, b) => b[1] - a[1]);
    const top = sorted[0]!;
    const tie = sorted[1]![1] === top[1];
    for (const r of group) if (tie || r.digest !== top[0]) out.add(r.id);
  }
  return out;
}

export function formatStatus(s: FleetStatus): string {
  const out: string[] = [];
  out.push(`etcd ${s.endpoints.join(',') || '?'}  prefix ${s.prefix}  revision ${s.revision}`);
  out.push('');
  if (s.routers.length === 0) {
    out.push('ROUTERS: none live (no status record under routers/)');
  } else {
    out.push(`ROUTERS (${s.routers.length})`);
    const rows = s.routers.map((r) => [
      r.id,
      r.revision?.toString() ?? '?',
      r.lag === undefined ? '?' : r.lag.toString() + (r.missingChanges ? '*' : ''),
      (r.digest ?? '?') + (r.digestMismatch ? ' !' : ''),
      r.routes?.toString() ?? '?',
      r.rejected.toString(),
      r.conflicts.toString(),
      r.warnings.toString(),
      r.unhealthy.toString(),
      routerNote(r),
    ]);
    out.push(...table(['ID', 'REVISION', 'LAG', 'DIGEST', 'ROUTES', 'REJECTED', 'CONFLICTS', 'WARNINGS', 'UNHEALTHY', 'NOTE'], rows, '  '));
    if (s.routers.some((r) => r.rejected > 0)) out.push('  A router\'s record lists its newest rejected records; its admin /status lists them all.');
    out.push('  LAG: 0 when the router is known current past the newest routing change; else revisions since it was.');
    const warned = new Map<string, RecordWarning>();
    for (const r of s.routers) for (const w of r.warningList) warned.set(w.key, w);
    for (const w of [...warned.values()].sort((a, b) => (a.key < b.key ? -1 : 1))) {
      out.push(`  warning: ${w.key} (revision ${w.revision}): unknown fields ignored: ${w.unknownFields.join(', ')}`);
    }
    if (s.routers.some((r) => r.missingChanges)) out.push(`  * has not applied a routing record still in etcd (changed at revision ${s.newestChange})`);
    for (const r of s.routers) if (r.load !== undefined) out.push(`  ${r.id} load: ${loadText(r.load)}`);
  }
  if (s.overrides.length > 0) {
    out.push('', `OVERRIDES (${s.overrides.length})`);
    out.push(...table(['HOST', 'OVERRIDE', 'ENDS'], s.overrides.map((o) => [o.host, o.what, endsText(o.endsInSeconds)]), '  '));
  }
  for (const app of s.apps) {
    out.push('');
    const routes = app.record ? app.record.routes.map((r) => `${r.host ?? '*'}${r.path ?? ''}`).join(', ') || '(no routes)' : '';
    const head = [`APP ${app.name}`];
    if (app.record) {
      head.push(`routes ${routes}`, `balance ${app.record.balance ?? 'round-robin'}`, appHealthText(app.record));
    } else head.push(`(${app.error})`);
    out.push(head.join('  '));
    if (app.lock) out.push(`  deployment in progress: lock held by ${app.lock}`);
    if (app.unknownFields.length > 0) out.push(`  warning: unknown fields in the app record (ignored): ${app.unknownFields.join(', ')}`);
    if (app.instances.length === 0) {
      out.push('  no instance');
      continue;
    }
    const counts = new Map<string, number>();
    for (const i of app.instances) counts.set(i.state ?? 'invalid', (counts.get(i.state ?? 'invalid') ?? 0) + 1);
    const rows = app.instances.map((i) => [
      i.id,
      i.state ?? 'INVALID',
      i.release ?? '-',
      i.url === undefined ? `(${i.error})` : i.tunnelRouters === undefined ? i.url : `${i.url} (${i.tunnelRouters.length === 0 ? 'no router holds a session' : `sessions on ${i.tunnelRouters.join(', ')}`})`,
      i.inflight === undefined ? (i.inflightPartial ? '?' : '-') : `${i.inflight}${i.inflightPartial ? '+' : ''}`,
      healthText(i),
    ]);
    out.push(...table(['INSTANCE', 'STATE', 'RELEASE', 'URL', 'IN-FLIGHT', 'HEALTH'], rows, '  '));
    for (const i of app.instances) {
      if (i.unknownFields.length > 0) out.push(`  warning: instance ${i.id}: unknown fields ignored: ${i.unknownFields.join(', ')}`);
    }
    out.push(`  ${[...counts].map(([k, n]) => `${n} ${k}`).join(', ')}`);
  }
  return out.join('\n');
}

/** `120 req/s, 35 connections, event loop 12%, CPU 0.3 cores, RSS 210 MB, load average 1.2`. */
export function loadText(l: RouterLoad): string {
  return `${l.requestsPerSecond} req/s, ${l.connections} connections, event loop ${Math.round(l.eventLoopUtilization * 100)}%, CPU ${l.cpu} cores, RSS ${Math.round(l.rssBytes / 1048576)} MB, load average ${l.loadAverage}`;
}

/** "ok", or per router what it reports: `router-a: ejected since 14:02:03 (refused)`. */
function healthText(i: InstanceStatusLine): string {
  if (i.health.length === 0) return 'ok';
  return i.health.map((h) => `${h.router}: ${h.problem} since ${h.since} (${h.reason})`).join('; ');
}

function routerNote(r: RouterStatusLine): string {
  if (r.error) return `unreadable status: ${r.error}`;
  const notes: string[] = [];
  if (r.digestMismatch) notes.push('digest differs from peers at the same revision');
  if (r.inflightCut) notes.push('status record full: not every instance in flight is listed');
  return notes.join('; ');
}

/** The status as JSON-safe data (revisions as decimal strings). */
export function statusJson(s: FleetStatus): unknown {
  return JSON.parse(JSON.stringify(s, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
}

/**
 * The routers check an instance actively only when the app record has `healthCheck`; without it
 * they go by failed requests alone, and only deploys GET the default path.
 */
function appHealthText(record: AppRecord): string {
  return record.healthCheck ? `health ${record.healthCheck.path}` : `health passive (deploys GET ${healthPathOf(record)})`;
}

/** When an override ends: `-` for never (no lease), `now` for a lease that has run out. */
function endsText(endsInSeconds: number | undefined): string {
  if (endsInSeconds === undefined) return '-';
  return endsInSeconds === 0 ? 'now' : `in ${endsInSeconds}s`;
}
