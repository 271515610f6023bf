/**
 * What the fleet page shows, as JSON-safe data: `paas-deploy status`'s reading of the prefix
 * (status.ts) turned into rows the page renders as they are, so the browser holds no logic
 * beyond putting text in cells. Per router and instance it says only what the router's status
 * record carries: its health problems (or "unknown" when its list was cut) and its in-flight
 * count (or none when its record was too full to list it).
 */
import type { CertSummary } from '../cert.js';
import type { OverrideLine } from '../maintenance.js';
import type { AppStatus, FleetStatus, InstanceStatusLine, RouterStatusLine } from '../status.js';
import type { ListedToken } from '../tunnel-tokens.js';
import type { RouterLoad } from '@paas/registry';

export interface RouterRow {
  id: string;
  revision: string | null;
  lag: string | null;
  /** Has not applied a routing record still in etcd (the "*" of `status`). */
  missingChanges: boolean;
  digest: string | null;
  digestMismatch: boolean;
  routes: number | null;
  rejected: number;
  conflicts: number;
  warnings: number;
  unhealthy: number;
  load: RouterLoad | null;
  updatedAt: string | null;
  /** Why its status record cannot be read, or what is odd about it. */
  notes: string[];
  error: string | null;
}

/** One router's view of one instance. */
export interface InstanceOnRouter {
  router: string;
  /** ok; ejected/failing (with reason and since); unknown: the router's list of unhealthy instances was cut. */
  health: 'ok' | 'unknown' | 'ejected' | 'failing' | 'ejected+failing';
  reasons: string[];
  since: string | null;
  /** Requests and WebSockets in flight from this router; null when its record was too full to say. */
  inflight: number | null;
}

export interface InstanceRow {
  id: string;
  state: string | null;
  release: string | null;
  url: string | null;
  /** Summed over routers; with `inflightPartial`, a lower bound. */
  inflight: number | null;
  inflightPartial: boolean;
  routers: InstanceOnRouter[];
  /** tunnel:// instances: the routers holding a session from its agent. */
  tunnelRouters: string[] | null;
  unknownFields: string[];
  error: string | null;
}

export interface AppRow {
  name: string;
  routes: string[];
  balance: string | null;
  healthPath: string | null;
  error: string | null;
  unknownFields: string[];
  lock: string | null;
  instances: InstanceRow[];
  /** counts by state ("invalid" for unreadable records). */
  states: Record<string, number>;
}

/** A record some routers reject or warn about, once, with the routers that do. */
export interface RecordProblem {
  key: string;
  revision: string;
  text: string;
  /** Rejected records: what the routers serve for the key instead ("nothing", "revision N"); null for warnings. */
  kept: string | null;
  routers: string[];
}

export interface TunnelTokenRow {
  app: string;
  tokenId: string;
  expiresAt: string | null;
  expired: boolean;
  error: string | null;
}

export interface FleetView {
  prefix: string;
  endpoints: string[];
  revision: string;
  /** False while the page's etcd watch has lost etcd: what it shows is as of `revision`. */
  etcdConnected: boolean;
  routers: RouterRow[];
  apps: AppRow[];
  rejected: RecordProblem[];
  warnings: RecordProblem[];
  conflicts: { route: string; apps: string; routers: string[] }[];
  overrides: OverrideLine[];
  certs: CertSummary[];
  tunnelTokens: TunnelTokenRow[];
}

export interface FleetViewInput {
  status: Omit<FleetStatus, 'endpoints'>;
  endpoints: string[];
  etcdConnected: boolean;
  certs: CertSummary[];
  tunnelTokens: Map<string, ListedToken[]>;
}

export function fleetView(input: FleetViewInput): FleetView {
  const s = input.status;
  return {
    prefix: s.prefix,
    endpoints: input.endpoints,
    revision: s.revision.toString(),
    etcdConnected: input.etcdConnected,
    routers: s.routers.map(routerRow),
    apps: s.apps.map((a) => appRow(a, s.routers)),
    rejected: problems(s.routers, (r) => r.rejectedList.map((x) => ({ key: x.key, revision: x.revision, text: x.error, kept: x.kept === undefined ? null : x.kept === null ? 'nothing' : `its value of revision ${x.kept}` }))),
    warnings: problems(s.routers, (r) => r.warningList.map((w) => ({ key: w.key, revision: w.revision, text: `unknown fields ignored: ${w.unknownFields.join(', ')}`, kept: null }))),
    conflicts: conflictRows(s.routers),
    overrides: s.overrides,
    certs: input.certs,
    tunnelTokens: [...input.tunnelTokens].flatMap(([app, list]) => list.map((t) => ({ app, tokenId: t.tokenId, expiresAt: t.expiresAt, expired: t.expired, error: t.error ?? null }))),
  };
}

function routerRow(r: RouterStatusLine): RouterRow {
  const notes: string[] = [];
  if (r.digestMismatch) notes.push('digest differs from peers at the same revision');
  if (r.missingChanges && r.error === undefined) notes.push('has not applied a routing record still in etcd');
  if (r.inflightCut) notes.push('status record full: not every instance in flight is listed');
  if (r.rejected > r.rejectedList.length) notes.push(`lists ${r.rejectedList.length} of ${r.rejected} rejected records (its admin /status lists all)`);
  return {
    id: r.id,
    revision: r.revision?.toString() ?? null,
    lag: r.lag?.toString() ?? null,
    missingChanges: r.missingChanges,
    digest: r.digest ?? null,
    digestMismatch: r.digestMismatch,
    routes: r.routes ?? null,
    rejected: r.rejected,
    conflicts: r.conflicts,
    warnings: r.warnings,
    unhealthy: r.unhealthy,
    load: r.load ?? null,
    updatedAt: r.updatedAt ?? null,
    notes,
    error: r.error ?? null,
  };
}

function appRow(a: AppStatus, routers: RouterStatusLine[]): AppRow {
  const states: Record<string, number> = {};
  for (const i of a.instances) states[i.state ?? 'invalid'] = (states[i.state ?? 'invalid'] ?? 0) + 1;
  return {
    name: a.name,
    routes: a.record ? a.record.routes.map((r) => `${r.host ?? '*'}${r.path ?? ''}`) : [],
    balance: a.record ? (a.record.balance ?? 'round-robin') : null,
    healthPath: a.record ? (a.record.healthCheck?.path ?? '/healthz') : null,
    error: a.error ?? null,
    unknownFields: a.unknownFields,
    lock: a.lock ?? null,
    instances: a.instances.map((i) => instanceRow(a.name, i, routers)),
    states,
  };
}

function instanceRow(app: string, i: InstanceStatusLine, routers: RouterStatusLine[]): InstanceRow {
  const key = `${app}/${i.id}`;
  const inflightOf = new Map(i.inflightByRouter.map((x) => [x.router, x.inflight]));
  const perRouter = routers
    .filter((r) => r.error === undefined)
    .map((r): InstanceOnRouter => {
      const problems = r.unhealthyList.filter((u) => u.instance === key);
      const kinds = [...new Set(problems.map((p) => p.problem))].sort();
      const health: InstanceOnRouter['health'] =
        kinds.length === 2 ? 'ejected+failing' : kinds.length === 1 ? kinds[0]! : r.unhealthy > r.unhealthyList.length ? 'unknown' : 'ok';
      return {
        router: r.id,
        health,
        reasons: problems.map((p) => `${p.problem}: ${p.reason}`),
        since: problems.length > 0 ? problems.map((p) => p.since).sort()[0]! : null,
        inflight: inflightOf.get(r.id) ?? null,
      };
    });
  // Summed over what each router says, an unlisted instance counting 0 on a complete record
  // (status's total counts only listed ones and so leaves an idle instance blank).
  const known = perRouter.filter((x) => x.inflight !== null);
  return {
    id: i.id,
    state: i.state ?? null,
    release: i.release ?? null,
    url: i.url ?? null,
    inflight: known.length === 0 ? null : known.reduce((sum, x) => sum + x.inflight!, 0),
    inflightPartial: known.length < perRouter.length,
    routers: perRouter,
    tunnelRouters: i.tunnelRouters ?? null,
    unknownFields: i.unknownFields,
    error: i.error ?? null,
  };
}

/** The problems every router lists, merged by key and text, sorted by key. */
function problems(routers: RouterStatusLine[], of: (r: RouterStatusLine) => Omit<RecordProblem, 'routers'>[]): RecordProblem[] {
  const byKey = new Map<string, RecordProblem>();
  for (const r of routers) {
    for (const p of of(r)) {
      const id = `${p.key}\n${p.revision}\n${p.text}\n${p.kept}`;
      const seen = byKey.get(id);
      if (seen) seen.routers.push(r.id);
      else byKey.set(id, { ...p, routers: [r.id] });
    }
  }
  return [...byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

function conflictRows(routers: RouterStatusLine[]): FleetView['conflicts'] {
  const byRoute = new Map<string, FleetView['conflicts'][number]>();
  for (const r of routers) {
    for (const c of r.conflictList) {
      const route = `${c.host || '*'}${c.path}`;
      const apps = `${c.winner} wins over ${c.app}`;
      const id = `${route}\n${apps}`;
      const seen = byRoute.get(id);
      if (seen) seen.routers.push(r.id);
      else byRoute.set(id, { route, apps, routers: [r.id] });
    }
  }
  return [...byRoute.values()];
}
