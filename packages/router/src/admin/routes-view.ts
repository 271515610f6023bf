/**
 * GET /routes on the admin listener: host and path -> app -> instances (state, weight, health,
 * in flight), as the table holds them now. `host` goes through the table's lookup indexes (the
 * routes a request for that host may take) and `app` through the app's own claims, so a filtered
 * listing costs the same at 100k apps as at 10; an unfiltered one lists at most `limit` routes.
 */
import type { AppPool, RouteSlot, RoutingTable } from '../table/routing-table.js';
import type { Backend } from '../table/backend.js';

export interface RoutesQuery {
  host?: string;
  app?: string;
  limit?: number;
}

export interface InstanceView {
  id: string;
  url: string;
  state: string;
  weight: number;
  /** ok, ejected (passive check) or failing (active check). */
  health: 'ok' | 'ejected' | 'failing';
  inflight: number;
}

export interface RouteView {
  /** As written in the app record: exact host, `*.suffix`, or '' for a host-less route. */
  host: string;
  path: string;
  app: string;
  /** Apps that claim the same host and path and lose to `app` (the older record wins). */
  losers: string[];
  instances: InstanceView[];
}

export interface RoutesView {
  revision: string;
  /** Routes in the table, listed or not. */
  total: number;
  /** An override record of the host asked for (`host` filter only). */
  override: { maintenance: { status: number; message: string } } | { app: string } | null;
  routes: RouteView[];
  /** More routes match than `limit`. */
  truncated: boolean;
}

export const DEFAULT_LIMIT = 1000;

export function routesView(table: RoutingTable, revision: string, query: RoutesQuery, now: number): RoutesView {
  const limit = query.limit ?? DEFAULT_LIMIT;
  const routes: RouteView[] = [];
  let truncated = false;
  const slots = query.app !== undefined ? claimsOf(table.pool(query.app)) : query.host !== undefined ? table.routesForHost(query.host) : table.allRoutes();
  for (const slot of slots) {
    if (query.app !== undefined && query.host !== undefined && !hostMatches(slot.host, query.host)) continue;
    if (routes.length === limit) {
      truncated = true;
      break;
    }
    routes.push(routeView(slot, now));
  }
  let override: RoutesView['override'] = null;
  if (query.host !== undefined) {
    const target = table.override(query.host);
    if (target !== undefined) override = 'kind' in target && target.kind === 'maintenance' ? { maintenance: { status: target.status, message: target.message } } : { app: (target as AppPool).name };
  }
  return { revision, total: table.routeCount(), override, routes, truncated };
}

function* claimsOf(pool: AppPool | undefined): IterableIterator<RouteSlot> {
  if (pool !== undefined) yield* pool.claims;
}

/** Whether a route's host (exact, `*.suffix`, or '' for any) serves requests for `host`. */
function hostMatches(routeHost: string, host: string): boolean {
  if (routeHost === '' || routeHost === host) return true;
  return routeHost.startsWith('*.') && host.length > routeHost.length - 1 && host.endsWith(routeHost.slice(1));
}

function routeView(slot: RouteSlot, now: number): RouteView {
  const pool = slot.winner;
  return {
    host: slot.host,
    path: slot.path,
    app: pool.name,
    losers: slot.losers().map((p) => p.name),
    instances: pool.backends.map((b) => instanceView(b, now)),
  };
}

function instanceView(b: Backend, now: number): InstanceView {
  return {
    id: b.id,
    url: b.origin,
    state: b.state,
    weight: b.weight,
    health: !b.checkHealthy ? 'failing' : b.ejectedUntil > now ? 'ejected' : 'ok',
    inflight: b.inflight,
  };
}

/** The plain-text form for a terminal: one line per instance, columns aligned. */
export function routesText(view: RoutesView): string {
  const rows: string[][] = [['HOST', 'PATH', 'APP', 'INSTANCE', 'STATE', 'WEIGHT', 'HEALTH', 'IN-FLIGHT', 'URL']];
  for (const r of view.routes) {
    const host = r.host === '' ? '*' : r.host;
    const app = r.losers.length > 0 ? `${r.app} (over ${r.losers.join(', ')})` : r.app;
    if (r.instances.length === 0) rows.push([host, r.path, app, '-', '-', '-', '-', '-', '(no instance)']);
    for (const i of r.instances) rows.push([host, r.path, app, i.id, i.state, String(i.weight), i.health, String(i.inflight), i.url]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  const lines = rows.map((row) => row.map((cell, c) => (c === row.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  '));
  const head = [`revision ${view.revision}  routes ${view.routes.length} of ${view.total}${view.truncated ? ' (truncated: filter with ?host= or ?app=, or raise ?limit=)' : ''}`];
  if (view.override !== null) head.push('maintenance' in view.override ? `override: maintenance ${view.override.maintenance.status} "${view.override.maintenance.message}"` : `override: app ${view.override.app}`);
  return [...head, ...lines].join('\n') + '\n';
}
