/** diffSnapshots and its text: facts grouped by host, compared by name; what does not route does not count. */
import { describe, expect, test } from 'vitest';
import type { RoutingSnapshot, SnapshotApp } from '@paas/router/table-at';
import { formatDiff } from '../src/history.js';
import { diffSnapshots } from '../src/routing-diff.js';

const app = (name: string, instances: SnapshotApp['instances'], more: Partial<SnapshotApp> = {}): SnapshotApp => ({
  name,
  record: true,
  balance: 'round-robin',
  healthCheck: null,
  tls: null,
  instances,
  ...more,
});

function snapshot(revision: number, s: Partial<RoutingSnapshot>): RoutingSnapshot {
  return { current: '99', digest: '0', host: null, routes: [], apps: [], overrides: [], certificates: [], rejected: [], warnings: [], ...s, revision: String(revision) };
}

const m1 = { id: 'm1', url: 'http://10.0.0.1:80', state: 'ready', weight: 1 };

const base = snapshot(10, {
  routes: [
    { host: 'www.mango.com', path: '/', app: 'mango', losers: [] },
    { host: '', path: '/mango', app: 'mango', losers: [] },
  ],
  apps: [app('mango', [m1])],
  certificates: [{ name: 'mango', hosts: ['www.mango.com', '*.mango.com'], notAfter: '2027-01-01T00:00:00.000Z', fingerprint: 'aa'.repeat(32), source: 'etcd' }],
  rejected: [{ key: '/paas/apps/kiwi', revision: '8', error: 'routes.0: needs a host or a path', kept: null }],
});

describe('diffSnapshots', () => {
  test('the same table at two revisions: nothing, whatever the revisions and digests say', () => {
    expect(diffSnapshots(base, { ...base, revision: '20', digest: 'ff' })).toEqual([]);
    expect(formatDiff({ from: { snapshot: base, dated: undefined }, to: { snapshot: { ...base, revision: '20' }, dated: undefined }, changes: [] }, '/paas')).toBe('routing of /paas from revision 10 to 20: no routing changes');
  });

  test('a rejected value rewritten with the same error is no change; another error or a kept value is', () => {
    const same = snapshot(20, { ...base, rejected: [{ ...base.rejected[0]!, revision: '15' }] });
    expect(diffSnapshots(base, same)).toEqual([]);
    const other = snapshot(20, { ...base, rejected: [{ key: '/paas/apps/kiwi', revision: '15', error: 'balance: must be one of round-robin, least-connections, random', kept: '14' }] });
    expect(diffSnapshots(base, other)).toEqual([
      {
        group: 'rejected records',
        op: '~',
        kind: 'rejected',
        name: '/paas/apps/kiwi',
        before: { error: 'routes.0: needs a host or a path', kept: 'nothing kept' },
        after: { error: 'balance: must be one of round-robin, least-connections, random', kept: 'keeps revision 14' },
      },
    ]);
  });

  test('a route taken over by another app, app settings, an override replaced, a certificate under each of its hosts', () => {
    const later = snapshot(30, {
      routes: [
        { host: 'www.mango.com', path: '/', app: 'fig', losers: ['mango'] },
        { host: '', path: '/mango', app: 'mango', losers: [] },
      ],
      apps: [app('fig', []), app('mango', [{ ...m1, weight: 4 }], { balance: 'least-connections', healthCheck: { path: '/healthz', intervalMs: 2000, timeoutMs: 1000 } })],
      overrides: [{ host: 'www.mango.com', app: 'fig' }],
      certificates: [{ ...base.certificates[0]!, fingerprint: 'bb'.repeat(32), notAfter: '2027-03-01T00:00:00.000Z' }],
      rejected: [],
    });
    const before = snapshot(25, { ...base, overrides: [{ host: 'www.mango.com', maintenance: { status: 503, message: 'soon' } }] });
    const text = formatDiff({ from: { snapshot: before, dated: undefined }, to: { snapshot: later, dated: undefined }, changes: diffSnapshots(before, later) }, '/paas');
    expect(text.split('\n')).toEqual([
      'routing of /paas from revision 25 to 30',
      'www.mango.com',
      '  ~ route /: app mango -> fig (over mango)',
      '  ~ override maintenance 503 "soon" -> app fig',
      '  + app fig balance round-robin, health passive only, tls none',
      '  - app mango balance round-robin, health passive only, tls none',
      '  - instance mango/m1 http://10.0.0.1:80 ready weight 1',
      `  ~ certificate mango: notAfter 2027-01-01T00:00:00.000Z -> 2027-03-01T00:00:00.000Z, fingerprint ${'aa'.repeat(8)}… -> ${'bb'.repeat(8)}…`,
      '*.mango.com',
      `  ~ certificate mango: notAfter 2027-01-01T00:00:00.000Z -> 2027-03-01T00:00:00.000Z, fingerprint ${'aa'.repeat(8)}… -> ${'bb'.repeat(8)}…`,
      '(any host)',
      '  ~ app mango: balance round-robin -> least-connections, health passive only -> /healthz every 2000ms, timeout 1000ms',
      '  ~ instance mango/m1: weight 1 -> 4',
      'rejected records',
      '  - rejected /paas/apps/kiwi routes.0: needs a host or a path (nothing kept)',
    ]);
  });
});
