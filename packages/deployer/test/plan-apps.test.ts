import { describe, expect, test } from 'vitest';
import { buildAppRecord, routesOf } from '../src/apps.js';
import { DeployError } from '../src/errors.js';
import { describeDrift, expectationOf, type InstanceEntry, type InstanceSnapshot } from '../src/instances.js';
import { planInstances, sameRecord } from '../src/plan.js';

function entry(id: string, rec: Record<string, unknown>, modRevision = 10n): InstanceEntry {
  const raw = JSON.stringify(rec);
  return { id, key: `/p/instances/m/${id}`, modRevision, raw, record: rec as never, error: undefined, json: rec };
}

function snap(...entries: InstanceEntry[]): InstanceSnapshot {
  return { app: 'm', revision: 100n, byId: new Map(entries.map((e) => [e.id, e])) };
}

const keyOf = (id: string) => `/p/instances/m/${id}`;

describe('planInstances', () => {
  test('new URLs get generated ids; every other instance is listed for draining', () => {
    const s = snap(entry('v1-a', { url: 'http://h:1', state: 'ready' }), entry('v1-b', { url: 'http://h:2', state: 'draining' }));
    let n = 0;
    const plan = planInstances(s, [{ url: 'http://h:3' }, { url: 'http://h:4/' }], { app: 'm', state: 'ready', release: 'v2', keyOf, random: () => `r0000${n++}` });
    expect(plan.instances).toEqual([
      { id: 'v2-r00000', key: keyOf('v2-r00000'), url: 'http://h:3', reused: false, unchangedAt: undefined },
      { id: 'v2-r00001', key: keyOf('v2-r00001'), url: 'http://h:4', reused: false, unchangedAt: undefined },
    ]);
    expect(plan.changes.map((c) => [c.id, c.before, c.after])).toEqual([
      ['v2-r00000', undefined, { url: 'http://h:3', state: 'ready', release: 'v2' }],
      ['v2-r00001', undefined, { url: 'http://h:4', state: 'ready', release: 'v2' }],
    ]);
    expect(plan.others.map((o) => o.id)).toEqual(['v1-a', 'v1-b']);
  });

  test('reuses an instance with the same URL: unchanged when already ready, rewritten (unknown fields kept) when draining', () => {
    const ready = entry('keep', { url: 'http://H:1', state: 'ready', release: 'v2', zone: 'a' }, 7n);
    const draining = entry('back', { url: 'http://h:2', state: 'draining', release: 'v1', zone: 'b' }, 8n);
    const plan = planInstances(snap(ready, draining), [{ url: 'http://h:1' }, { url: 'http://h:2' }], { app: 'm', state: 'ready', release: 'v2', keyOf });
    expect(plan.instances.map((i) => [i.id, i.reused, i.unchangedAt])).toEqual([
      ['keep', true, 7n],
      ['back', true, undefined],
    ]);
    expect(plan.changes).toHaveLength(1);
    expect(plan.changes[0]!.after).toEqual({ url: 'http://h:2', state: 'ready', release: 'v2', zone: 'b' });
    expect(plan.others).toEqual([]);
  });

  test('prefers a ready instance when two share a URL', () => {
    const plan = planInstances(
      snap(entry('a', { url: 'http://h:1', state: 'draining' }), entry('b', { url: 'http://h:1', state: 'ready' })),
      [{ url: 'http://h:1' }],
      { app: 'm', state: 'ready', keyOf },
    );
    expect(plan.instances[0]!.id).toBe('b');
    expect(plan.others.map((o) => o.id)).toEqual(['a']);
  });

  test('an explicit id that exists with another URL, or a URL registered under another id, is a conflict', () => {
    const s = snap(entry('web-1', { url: 'http://h:1', state: 'ready' }));
    expect(() => planInstances(s, [{ url: 'http://h:2', id: 'web-1' }], { app: 'm', state: 'ready', keyOf })).toThrow(/already exists with url http:\/\/h:1/);
    expect(() => planInstances(s, [{ url: 'http://h:1', id: 'web-2' }], { app: 'm', state: 'ready', keyOf })).toThrow(/already registered as instance m\/web-1/);
    const same = planInstances(s, [{ url: 'http://h:1', id: 'web-1' }], { app: 'm', state: 'ready', keyOf });
    expect(same.changes).toEqual([]);
  });

  test('an invalid record under an explicit id is overwritten whole (compared on its revision)', () => {
    const bad: InstanceEntry = { id: 'web-1', key: keyOf('web-1'), modRevision: 5n, raw: 'nope', record: undefined, error: 'not JSON', json: undefined };
    const plan = planInstances(snap(bad), [{ url: 'http://h:1', id: 'web-1' }], { app: 'm', state: 'starting', keyOf });
    expect(plan.changes[0]).toMatchObject({ id: 'web-1', before: bad, after: { url: 'http://h:1', state: 'starting' } });
  });
});

describe('describeDrift', () => {
  test('modified, deleted and created keys, each on one line', () => {
    const before = snap(entry('a', { url: 'http://h:1', state: 'ready' }, 10n), entry('b', { url: 'http://h:2', state: 'ready' }, 11n));
    const expected = expectationOf(before);
    expected.set('new', 20n);
    expected.set('ghost', 'absent');
    const now = snap(
      entry('a', { url: 'http://h:1', state: 'draining' }, 25n),
      entry('new', { url: 'http://h:3', state: 'ready' }, 20n),
      entry('ghost', { url: 'http://h:5', state: 'ready' }, 26n),
      entry('extra', { url: 'http://h:4', state: 'ready' }, 27n),
    );
    expect(describeDrift(expected, now)).toEqual([
      'a was modified at revision 25 (now draining, http://h:1)',
      'b was deleted',
      'ghost was created at revision 26 (now ready, http://h:5)',
      'extra was created at revision 27 (now ready, http://h:4)',
    ]);
    expect(describeDrift(expectationOf(now), now)).toEqual([]);
  });
});

describe('sameRecord', () => {
  test('ignores key order, not values', () => {
    expect(sameRecord({ a: 1, b: { c: 2 } }, { b: { c: 2 }, a: 1 })).toBe(true);
    expect(sameRecord({ a: 1 }, { a: 1, b: undefined })).toBe(false);
    expect(sameRecord({ a: 1 }, { a: 2 })).toBe(false);
  });
});

describe('app records', () => {
  test('routesOf: every host with every path', () => {
    expect(routesOf(['a.com', 'b.com'], ['/x', '/y'])).toEqual([
      { host: 'a.com', path: '/x' },
      { host: 'a.com', path: '/y' },
      { host: 'b.com', path: '/x' },
      { host: 'b.com', path: '/y' },
    ]);
    expect(routesOf(['a.com'], [])).toEqual([{ host: 'a.com' }]);
    expect(routesOf([], ['/m'])).toEqual([{ path: '/m' }]);
  });

  test('keeps balance, health check and unknown fields of the existing record unless given', () => {
    const existing = { routes: [{ host: 'old.com' }], balance: 'random', healthCheck: { path: '/ready', intervalMs: 5000 }, owner: 'team-a' };
    expect(buildAppRecord(existing, { hosts: ['new.com'], paths: [] })).toEqual({ ...existing, routes: [{ host: 'new.com' }] });
    expect(buildAppRecord(existing, { hosts: [], paths: [], balance: 'least-connections', healthTimeoutMs: 500 })).toEqual({
      ...existing,
      balance: 'least-connections',
      healthCheck: { path: '/ready', intervalMs: 5000, timeoutMs: 500 },
    });
  });

  test('validates with the registry schema before anything is written', () => {
    expect(() => buildAppRecord(undefined, { hosts: [], paths: [] })).toThrow(/needs at least one --host or --path/);
    expect(() => buildAppRecord(undefined, { hosts: ['a.com'], paths: [], healthIntervalMs: 10 })).toThrow(DeployError);
    expect(() => buildAppRecord(undefined, { hosts: ['a.com'], paths: [], healthIntervalMs: 10 })).toThrow(/healthCheck\.intervalMs/);
    expect(() => buildAppRecord(undefined, { hosts: ['Bad_Host'], paths: [] })).toThrow(/routes\.0\.host/);
  });
});
