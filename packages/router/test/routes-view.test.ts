import { describe, expect, it } from 'vitest';
import { RoutingTable } from '../src/table/routing-table.js';
import { routesText, routesView } from '../src/admin/routes-view.js';

describe('routesView over a table of 100k apps', () => {
  const table = new RoutingTable();
  const APPS = 100_000;
  for (let i = 0; i < APPS; i++) {
    table.setApp(`app-${i}`, { routes: [{ host: `www.app-${i}.com` }, { host: `*.app-${i}.com`, path: '/api' }] }, BigInt(i + 1));
    table.setInstance(`app-${i}`, 'web-1', { url: `http://10.0.${(i >> 8) & 255}.${i & 255}:8080`, state: 'ready' });
  }

  it('lists a host\'s routes from the lookup indexes: the exact host and the wildcard covering it', () => {
    const view = routesView(table, '9', { host: 'www.app-77777.com' }, Date.now());
    expect(view.routes.map((r) => [r.host, r.path, r.app])).toEqual([
      ['www.app-77777.com', '/', 'app-77777'],
      ['*.app-77777.com', '/api', 'app-77777'],
    ]);
    expect(view.routes[0]!.instances).toEqual([{ id: 'web-1', url: 'http://10.0.47.209:8080', state: 'ready', weight: 1, health: 'ok', inflight: 0 }]);
    expect(view.total).toBe(2 * APPS);
    expect(view.truncated).toBe(false);
  });

  it('lists an app\'s routes from its claims, and caps an unfiltered listing', () => {
    expect(routesView(table, '9', { app: 'app-5' }, Date.now()).routes).toHaveLength(2);
    expect(routesView(table, '9', { app: 'nope' }, Date.now()).routes).toHaveLength(0);
    const all = routesView(table, '9', {}, Date.now());
    expect([all.routes.length, all.truncated]).toEqual([1000, true]);
    expect(routesText(all)).toContain('routes 1000 of 200000 (truncated');
  });

  it('reports an ejected instance', () => {
    const b = table.pool('app-9')!.backends[0]!;
    b.ejectedUntil = Date.now() + 10_000;
    expect(routesView(table, '9', { app: 'app-9' }, Date.now()).routes[0]!.instances[0]!.health).toBe('ejected');
    b.ejectedUntil = 0;
  });
});
