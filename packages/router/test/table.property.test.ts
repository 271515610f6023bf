/**
 * lookup() against a plain reference matcher, and incremental updates against a table built
 * from scratch. Names are drawn from tiny alphabets so hosts, paths and claims collide often.
 */
import type { AppRecord, InstanceRecord, OverrideRecord } from '@paas/registry';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RoutingTable, type Target } from '../src/table/routing-table.js';

type RouteSpec = { host?: string; path?: string };
interface AppModel { record: AppRecord; createRevision: bigint }
interface Model {
  apps: Map<string, AppModel>;
  instances: Map<string, { app: string; id: string; record: InstanceRecord }>;
  overrides: Map<string, OverrideRecord>;
}
interface Request { host: string; url: string }

// ---- the reference matcher: the contract's rules, written as plainly as possible ----

function pathPart(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

function pathMatches(routePath: string, url: string): boolean {
  if (routePath === '/') return true;
  const p = pathPart(url);
  return p.startsWith(routePath) && (p.length === routePath.length || p[routePath.length] === '/');
}

/** 3 for an exact host, 2 for a wildcard (ranked further by suffix length), 1 for no host, 0 if no match. */
function hostRank(routeHost: string | undefined, host: string): [number, number] {
  if (routeHost === undefined) return [1, 0];
  if (routeHost.startsWith('*.')) {
    const suffix = routeHost.slice(1);
    return host.endsWith(suffix) && host.length > suffix.length ? [2, suffix.length] : [0, 0];
  }
  return routeHost === host ? [3, 0] : [0, 0];
}

function reference(model: Model, req: Request): string {
  const override = model.overrides.get(req.host);
  if (override !== undefined) return 'maintenance' in override ? `maintenance ${override.maintenance.status}` : `app ${override.app}`;
  let best: { rank: number[]; app: string } | undefined;
  for (const [name, { record, createRevision }] of model.apps) {
    for (const route of record.routes) {
      const [kind, suffixLength] = hostRank(route.host, req.host);
      const path = route.path ?? '/';
      if (kind === 0 || !pathMatches(path, req.url)) continue;
      const rank = [kind, suffixLength, path.length, -Number(createRevision)];
      if (best === undefined || isGreater(rank, best.rank) || (equal(rank, best.rank) && name < best.app)) best = { rank, app: name };
    }
  }
  return best === undefined ? '404' : `app ${best.app}`;
}

function isGreater(a: number[], b: number[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! > b[i]!;
  return false;
}

function equal(a: number[], b: number[]): boolean {
  return !isGreater(a, b) && !isGreater(b, a);
}

function describeTarget(t: Target | undefined): string {
  if (t === undefined) return '404';
  return t.kind === 'maintenance' ? `maintenance ${t.status}` : `app ${t.name}`;
}

// ---- generators ----

const label = fc.constantFrom('a', 'b', 'ab');
const exactHost = fc.array(label, { minLength: 1, maxLength: 3 }).map((l) => l.join('.'));
const routeHost = fc.oneof(
  fc.constant(undefined),
  exactHost,
  fc.array(label, { minLength: 1, maxLength: 2 }).map((l) => `*.${l.join('.')}`),
);
const segment = fc.constantFrom('x', 'y', 'xy');
const routePath = fc.oneof(
  fc.constant(undefined),
  fc.constant('/'),
  fc.array(segment, { minLength: 1, maxLength: 3 }).map((s) => `/${s.join('/')}`),
);
const route: fc.Arbitrary<RouteSpec> = fc.record({ host: routeHost, path: routePath }, { requiredKeys: [] });
const appRecord: fc.Arbitrary<AppRecord> = fc.record({
  routes: fc.array(route, { maxLength: 4 }),
  balance: fc.constantFrom('round-robin' as const, 'least-connections' as const, 'random' as const),
});
const appName = fc.constantFrom('app0', 'app1', 'app2', 'app3', 'app4');

const request: fc.Arbitrary<Request> = fc.record({
  host: fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join('.')),
  url: fc
    .tuple(
      fc.array(fc.constantFrom('x', 'y', 'xy', 'xyz', ''), { maxLength: 4 }),
      fc.constantFrom('', '?', '?q=/x/y', '?/xy'),
    )
    .map(([segments, query]) => `/${segments.join('/')}${query}`),
});

const override: fc.Arbitrary<OverrideRecord> = fc.oneof(
  fc.record({ maintenance: fc.record({ status: fc.constantFrom(502, 503), message: fc.constant('m') }) }),
  fc.record({ app: appName }),
);

const instanceRecord: fc.Arbitrary<InstanceRecord> = fc.record({
  url: fc.constantFrom('http://127.0.0.1:8001', 'http://127.0.0.1:8002'),
  state: fc.constantFrom('starting' as const, 'ready' as const, 'draining' as const),
  weight: fc.integer({ min: 1, max: 3 }),
});

type Op =
  | { op: 'setApp'; name: string; record: AppRecord }
  | { op: 'deleteApp'; name: string }
  | { op: 'setInstance'; app: string; id: string; record: InstanceRecord }
  | { op: 'deleteInstance'; app: string; id: string }
  | { op: 'setOverride'; host: string; record: OverrideRecord }
  | { op: 'deleteOverride'; host: string };

const instanceId = fc.constantFrom('i1', 'i2');
const operation: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('setApp' as const), name: appName, record: appRecord }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('deleteApp' as const), name: appName }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('setInstance' as const), app: appName, id: instanceId, record: instanceRecord }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('deleteInstance' as const), app: appName, id: instanceId }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('setOverride' as const), host: exactHost, record: override }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('deleteOverride' as const), host: exactHost }) },
);

// ---- applying records ----

function emptyModel(): Model {
  return { apps: new Map(), instances: new Map(), overrides: new Map() };
}

/** Applies one operation to the table and the model; like etcd, a rewritten key keeps its create revision. */
function apply(table: RoutingTable, model: Model, op: Op, revision: bigint): void {
  switch (op.op) {
    case 'setApp': {
      const createRevision = model.apps.get(op.name)?.createRevision ?? revision;
      model.apps.set(op.name, { record: op.record, createRevision });
      table.setApp(op.name, op.record, createRevision);
      break;
    }
    case 'deleteApp':
      model.apps.delete(op.name);
      table.deleteApp(op.name);
      break;
    case 'setInstance':
      model.instances.set(`${op.app}/${op.id}`, { app: op.app, id: op.id, record: op.record });
      table.setInstance(op.app, op.id, op.record);
      break;
    case 'deleteInstance':
      model.instances.delete(`${op.app}/${op.id}`);
      table.deleteInstance(op.app, op.id);
      break;
    case 'setOverride':
      model.overrides.set(op.host, op.record);
      table.setOverride(op.host, op.record);
      break;
    case 'deleteOverride':
      model.overrides.delete(op.host);
      table.deleteOverride(op.host);
      break;
  }
}

/** A table built from the final records, in an order unlike the one they arrived in. */
function buildFresh(model: Model): RoutingTable {
  const table = new RoutingTable();
  for (const { app, id, record } of [...model.instances.values()].reverse()) table.setInstance(app, id, record);
  for (const [host, record] of model.overrides) table.setOverride(host, record);
  for (const [name, { record, createRevision }] of [...model.apps].reverse()) table.setApp(name, record, createRevision);
  return table;
}

function snapshot(table: RoutingTable) {
  return {
    routes: table.routeCount(),
    conflicts: table.conflicts(),
    pools: [...table.pools()]
      .map((p) => ({ name: p.name, record: p.record, ready: p.hasReady(), backends: p.backends.map((b) => [b.key, b.origin, b.state, b.weight]) }))
      .sort((a, b) => (a.name < b.name ? -1 : 1)),
  };
}

describe('lookup() agrees with the reference matcher', () => {
  it('for random tables and requests', () => {
    fc.assert(
      fc.property(
        // Few create revisions, so ties (apps created in one transaction) happen too.
        fc.uniqueArray(fc.tuple(appName, appRecord, fc.integer({ min: 1, max: 3 })), { selector: ([name]) => name, maxLength: 5 }),
        fc.array(fc.tuple(exactHost, override), { maxLength: 2 }),
        fc.array(request, { minLength: 1, maxLength: 30 }),
        (apps, overrides, requests) => {
          const model = emptyModel();
          const table = new RoutingTable();
          for (const [name, record, revision] of apps) apply(table, model, { op: 'setApp', name, record }, BigInt(revision));
          for (const [host, record] of overrides) apply(table, model, { op: 'setOverride', host, record }, 0n);
          for (const req of requests) expect(describeTarget(table.lookup(req.host, req.url))).toBe(reference(model, req));
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('incremental updates', () => {
  it('end in the same table as building from the final records', () => {
    fc.assert(
      fc.property(fc.array(operation, { maxLength: 40 }), fc.array(request, { minLength: 1, maxLength: 30 }), (ops, requests) => {
        const model = emptyModel();
        const table = new RoutingTable();
        ops.forEach((op, i) => apply(table, model, op, BigInt(i + 1)));
        const fresh = buildFresh(model);
        for (const req of requests) {
          const expected = reference(model, req);
          expect(describeTarget(table.lookup(req.host, req.url))).toBe(expected);
          expect(describeTarget(fresh.lookup(req.host, req.url))).toBe(expected);
        }
        expect(snapshot(table)).toEqual(snapshot(fresh));
      }),
      { numRuns: 500 },
    );
  });
});
