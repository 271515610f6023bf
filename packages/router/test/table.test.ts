import type { AppRecord, InstanceRecord } from '@paas/registry';
import { describe, expect, it } from 'vitest';
import { RoutingTable, type Target } from '../src/table/routing-table.js';
import { backendByKey, allBackends } from './support/table-lookup.js';

type RouteSpec = { host?: string; path?: string };

function app(...routes: RouteSpec[]): AppRecord {
  return { routes };
}

function instance(port: number, extra: Partial<InstanceRecord> = {}): InstanceRecord {
  return { url: `http://127.0.0.1:${port}`, state: 'ready', ...extra };
}

function describeTarget(t: Target | undefined): string {
  if (t === undefined) return '404';
  return t.kind === 'maintenance' ? `maintenance ${t.status}` : t.name;
}

/** Builds a table from apps given in create-revision order (1, 2, ...). */
function tableOf(apps: Record<string, RouteSpec[]>): RoutingTable {
  const table = new RoutingTable();
  let revision = 1n;
  for (const [name, routes] of Object.entries(apps)) table.setApp(name, app(...routes), revision++);
  return table;
}

describe('route precedence', () => {
  const table = tableOf({
    www: [{ host: 'www.mango.com' }],
    'www-api': [{ host: 'www.mango.com', path: '/api' }],
    'www-api-v2': [{ host: 'www.mango.com', path: '/api/v2' }],
    wild: [{ host: '*.mango.com' }],
    'wild-deep': [{ host: '*.b.mango.com' }],
    'wild-api': [{ host: '*.mango.com', path: '/wapi' }],
    hostless: [{ path: '/mango' }],
    'hostless-deep': [{ path: '/mango/tree' }],
  });

  it.each([
    ['www.mango.com', '/', 'www'],
    ['www.mango.com', '', 'www'],
    ['www.mango.com', '/api', 'www-api'],
    ['www.mango.com', '/api/', 'www-api'],
    ['www.mango.com', '/api/x', 'www-api'],
    ['www.mango.com', '/api?q=1', 'www-api'],
    ['www.mango.com', '/api?next=/api/v2', 'www-api'],
    ['www.mango.com', '/apix', 'www'],
    ['www.mango.com', '/API', 'www'],
    ['www.mango.com', '/api/v2', 'www-api-v2'],
    ['www.mango.com', '/api/v2/x?y', 'www-api-v2'],
    ['www.mango.com', '/api/v2x', 'www-api'],
    ['www.mango.com', '/api%2Fv2', 'www'],
    ['www.mango.com', '/mango', 'www'],
    ['a.mango.com', '/', 'wild'],
    ['a.mango.com', '/wapi/1', 'wild-api'],
    ['a.mango.com', '/wapix', 'wild'],
    ['b.mango.com', '/', 'wild'],
    ['a.b.mango.com', '/', 'wild-deep'],
    ['x.y.a.b.mango.com', '/anything', 'wild-deep'],
    ['a.b.mango.com', '/wapi', 'wild-deep'],
    ['mango.com', '/', '404'],
    ['mango.com', '/mango', 'hostless'],
    ['mango.com', '/mango/', 'hostless'],
    ['mango.com', '/mango/treehouse', 'hostless'],
    ['mango.com', '/mango/tree/x', 'hostless-deep'],
    ['mango.com', '/mangos', '404'],
    ['amango.com', '/', '404'],
    ['other.org', '/mango?x', 'hostless'],
    ['other.org', '*', '404'],
  ])('%s %s -> %s', (host, url, expected) => {
    expect(describeTarget(table.lookup(host, url))).toBe(expected);
  });
});

describe('fall-through', () => {
  const table = tableOf({
    cart: [{ host: 'www.shop.io', path: '/cart' }],
    'wild-w': [{ host: '*.shop.io', path: '/w' }],
    'deep-only': [{ host: '*.a.shop.io', path: '/deep' }],
    help: [{ path: '/help' }],
  });

  it.each([
    ['www.shop.io', '/cart/1', 'cart'],
    ['www.shop.io', '/w/1', 'wild-w'],
    ['www.shop.io', '/help', 'help'],
    ['www.shop.io', '/nothing', '404'],
    ['x.a.shop.io', '/deep', 'deep-only'],
    ['x.a.shop.io', '/w', 'wild-w'],
    ['x.a.shop.io', '/help?x', 'help'],
  ])('%s %s -> %s', (host, url, expected) => {
    expect(describeTarget(table.lookup(host, url))).toBe(expected);
  });

  it('prefers a matching host-less route to a host whose paths do not match', () => {
    const t = tableOf({ exact: [{ host: 'h.io', path: '/a' }], any: [{}] });
    expect(describeTarget(t.lookup('h.io', '/b'))).toBe('any');
    expect(describeTarget(t.lookup('h.io', '/a/b'))).toBe('exact');
  });
});

describe('overrides', () => {
  it('answers every path of the host with the maintenance target, the same object each time', () => {
    const table = tableOf({ www: [{ host: 'www.mango.com' }, { host: 'www.mango.com', path: '/api' }] });
    table.setOverride('www.mango.com', { maintenance: { status: 503, message: 'Back at 14:00' } });
    const first = table.lookup('www.mango.com', '/api/x');
    expect(first).toEqual({ kind: 'maintenance', status: 503, message: 'Back at 14:00' });
    expect(table.lookup('www.mango.com', '/nothing')).toBe(first);
    expect(describeTarget(table.lookup('a.mango.com', '/'))).toBe('404');
    table.deleteOverride('www.mango.com');
    expect(describeTarget(table.lookup('www.mango.com', '/api'))).toBe('www');
  });

  it('sends the host to another app, even one without a record yet', () => {
    const table = tableOf({ www: [{ host: 'www.mango.com' }] });
    table.setOverride('www.mango.com', { app: 'canary' });
    const target = table.lookup('www.mango.com', '/x');
    expect(describeTarget(target)).toBe('canary');
    expect(target?.kind === 'app' && target.record).toBeUndefined();
    expect(target?.kind === 'app' && target.pick(Date.now())).toBeUndefined();

    table.setInstance('canary', 'c1', instance(9001));
    expect(target?.kind === 'app' && target.pick(Date.now())?.key).toBe('canary/c1');

    table.setOverride('www.mango.com', { maintenance: { status: 502, message: 'down' } });
    expect(describeTarget(table.lookup('www.mango.com', '/'))).toBe('maintenance 502');
    expect(table.pool('canary')).toBeDefined(); // its instance still names it
    table.deleteInstance('canary', 'c1');
    expect(table.pool('canary')).toBeUndefined();
  });

  it('beats routes only for its exact host', () => {
    const table = tableOf({ wild: [{ host: '*.mango.com' }] });
    table.setOverride('a.mango.com', { app: 'other' });
    expect(describeTarget(table.lookup('a.mango.com', '/'))).toBe('other');
    expect(describeTarget(table.lookup('b.mango.com', '/'))).toBe('wild');
  });
});

describe('conflicts', () => {
  it('gives a route to the app created first and hands it over when that one lets go', () => {
    const table = new RoutingTable();
    table.setApp('late', app({ host: 'x.io', path: '/p' }, { host: 'x.io' }), 20n);
    table.setApp('early', app({ host: 'x.io', path: '/p' }), 10n);
    table.setApp('middle', app({ host: 'x.io', path: '/p' }), 15n);
    expect(describeTarget(table.lookup('x.io', '/p'))).toBe('early');
    expect(table.routeCount()).toBe(2);
    expect(table.conflicts()).toEqual([
      { host: 'x.io', path: '/p', app: 'late', winner: 'early' },
      { host: 'x.io', path: '/p', app: 'middle', winner: 'early' },
    ]);

    table.setApp('early', app({ host: 'y.io' }), 10n);
    expect(describeTarget(table.lookup('x.io', '/p'))).toBe('middle');
    expect(table.conflicts()).toEqual([{ host: 'x.io', path: '/p', app: 'late', winner: 'middle' }]);

    table.deleteApp('middle');
    expect(describeTarget(table.lookup('x.io', '/p'))).toBe('late');
    expect(table.conflicts()).toEqual([]);
    expect(table.routeCount()).toBe(3);

    table.deleteApp('late');
    expect(describeTarget(table.lookup('x.io', '/p'))).toBe('404');
    expect(table.routeCount()).toBe(1);
  });

  it('reports host-less conflicts with an empty host and settles equal revisions by name', () => {
    const table = new RoutingTable();
    table.setApp('b', app({ path: '/x' }), 7n);
    table.setApp('a', app({ path: '/x' }), 7n);
    expect(describeTarget(table.lookup('any.io', '/x'))).toBe('a');
    expect(table.conflicts()).toEqual([{ host: '', path: '/x', app: 'b', winner: 'a' }]);
  });

  it('counts a route an app lists twice once, without a conflict with itself', () => {
    const table = new RoutingTable();
    table.setApp('a', app({ host: 'x.io' }, { host: 'x.io', path: '/' }), 1n);
    expect(table.routeCount()).toBe(1);
    expect(table.conflicts()).toEqual([]);
    table.deleteApp('a');
    expect(table.routeCount()).toBe(0);
    expect([...table.pools()]).toEqual([]);
  });
});

describe('instances and pools', () => {
  it('accepts instances before their app record and routes once the record arrives', () => {
    const table = new RoutingTable();
    table.setInstance('web', 'w1', instance(8001));
    expect(table.pool('web')?.record).toBeUndefined();
    expect(table.lookup('web.io', '/')).toBeUndefined();
    table.setApp('web', app({ host: 'web.io' }), 3n);
    const target = table.lookup('web.io', '/');
    expect(target?.kind === 'app' && target.pick(0)?.origin).toBe('http://127.0.0.1:8001');
  });

  it('keeps the backend object across record updates and replaces it when the url changes', () => {
    const table = new RoutingTable();
    table.setInstance('web', 'w1', instance(8001, { state: 'starting' }));
    const before = backendByKey(table, 'web/w1')!;
    before.inflight = 2;
    table.setInstance('web', 'w1', instance(8001, { state: 'ready', weight: 3, release: 'v2' }));
    expect(backendByKey(table, 'web/w1')).toBe(before);
    expect(before).toMatchObject({ state: 'ready', weight: 3, release: 'v2', inflight: 2 });

    table.setInstance('web', 'w1', { url: 'http://127.0.0.1:8002/', state: 'ready' });
    const after = backendByKey(table, 'web/w1')!;
    expect(after).not.toBe(before);
    expect(after.origin).toBe('http://127.0.0.1:8002');
    expect(table.pool('web')?.backends).toEqual([after]);
  });

  it('lists backends in id order', () => {
    const table = new RoutingTable();
    for (const id of ['c', 'a', 'b']) table.setInstance('web', id, instance(8000));
    expect(table.pool('web')?.backends.map((b) => b.id)).toEqual(['a', 'b', 'c']);
    expect(allBackends(table).map((b) => b.key).sort()).toEqual(['web/a', 'web/b', 'web/c']);
  });

  it('drops a pool once nothing names it', () => {
    const table = new RoutingTable();
    table.setApp('web', app({ host: 'web.io' }), 1n);
    table.setInstance('web', 'w1', instance(8001));
    table.deleteApp('web');
    expect(table.pool('web')?.backends).toHaveLength(1);
    table.deleteInstance('web', 'w1');
    expect(table.pool('web')).toBeUndefined();
    expect(backendByKey(table, 'web/w1')).toBeUndefined();
  });

  it('tracks which apps ask for a health check', () => {
    const table = new RoutingTable();
    table.setApp('a', { routes: [], healthCheck: {} }, 1n);
    table.setApp('b', { routes: [] }, 2n);
    expect([...table.healthCheckedPools()].map((p) => p.name)).toEqual(['a']);
    table.setApp('a', { routes: [] }, 1n);
    expect([...table.healthCheckedPools()]).toEqual([]);
  });
});

describe('backends the status report lists', () => {
  it('are the draining ones and the ones with requests in flight, while they are in the table', () => {
    const table = new RoutingTable();
    table.setInstance('web', 'w1', instance(8001));
    table.setInstance('web', 'w2', instance(8002, { state: 'draining' }));
    table.setInstance('web', 'w3', instance(8003));
    const keys = () => [...table.reportedBackends()].map((b) => `${b.key}:${b.inflight}`).sort();
    expect(keys()).toEqual(['web/w2:0']);
    const w1 = backendByKey(table, 'web/w1')!;
    table.acquire(w1);
    table.acquire(w1);
    table.acquire(backendByKey(table, 'web/w2')!);
    expect(keys()).toEqual(['web/w1:2', 'web/w2:1']);
    expect(table.release(w1)).toBe(1);
    expect(keys()).toEqual(['web/w1:1', 'web/w2:1']);
    table.release(w1);
    table.setInstance('web', 'w2', instance(8002));
    expect(keys()).toEqual(['web/w2:1']);
    // Gone from the table: not reported, even with a request still open on it.
    table.deleteInstance('web', 'w2');
    table.setInstance('web', 'w3', instance(8003, { state: 'draining' }));
    expect(keys()).toEqual(['web/w3:0']);
    // An instance moved to another url is a new backend; the old one is not reported.
    table.setInstance('web', 'w3', instance(9003, { state: 'draining' }));
    expect([...table.reportedBackends()]).toEqual([backendByKey(table, 'web/w3')]);
  });
});
