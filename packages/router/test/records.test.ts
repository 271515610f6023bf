import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KeyLayout, type KvEntry, type WatchEvent } from '@paas/registry';
import { DigestSum, hashRecord, type RecordHash } from '../src/records/record-digest.js';
import { TableSync } from '../src/records/table-sync.js';
import { digestMismatch } from '../src/status/peer-digest-check.js';

const layout = new KeyLayout('/paas');
const silent = { warn() {}, info() {}, error() {} };
const noEvents = { onApplied() {}, onRejected() {}, onResync() {}, onConnection() {} };

function entry(key: string, value: unknown, rev: bigint): KvEntry {
  return { key, value: Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)), createRevision: rev, modRevision: rev, version: 1n, lease: '0' };
}
const put = (key: string, value: unknown, rev: bigint): WatchEvent => ({ type: 'put', key, value: Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)), createRevision: rev, modRevision: rev });

const records = [
  entry('/paas/apps/mango', { routes: [{ host: 'www.mango.com' }] }, 2n),
  entry('/paas/instances/mango/m1', { url: 'http://127.0.0.1:7001', state: 'ready' }, 3n),
];

describe('the record digest', () => {
  it('is the same whatever order the records came in, and changes with any record', () => {
    const a = new TableSync(layout, silent, noEvents);
    a.onSnapshot(records, 3n);
    const b = new TableSync(layout, silent, noEvents);
    b.onSnapshot([...records].reverse(), 3n);
    expect(a.digest()).toBe(b.digest());
    a.onRevision([put('/paas/instances/mango/m1', { url: 'http://127.0.0.1:7001', state: 'draining' }, 4n)], 4n);
    expect(a.digest()).not.toBe(b.digest());
  });

  it('returns to its value when a record is put back', () => {
    const a = new TableSync(layout, silent, noEvents);
    a.onSnapshot(records, 3n);
    const before = a.digest();
    a.onRevision([put('/paas/apps/kiwi', { routes: [] }, 4n)], 4n);
    expect(a.digest()).not.toBe(before);
    a.onRevision([{ type: 'delete', key: '/paas/apps/kiwi', modRevision: 5n }], 5n);
    expect(a.digest()).toBe(before);
  });

  it('is 16 hex digits, and the sum wraps and unwinds exactly over many records', () => {
    const s = new DigestSum();
    const empty = s.digest();
    expect(empty).toMatch(/^[0-9a-f]{16}$/);
    const hashes: RecordHash[] = [];
    const digests: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const h = { hashHi: 0, hashLo: 0 };
      hashRecord(`/paas/apps/a${i}`, Buffer.from(`{"routes":[],"n":${i}}`), h);
      hashes.push(h);
      s.add(h);
      digests.push(s.digest());
      expect(s.digest()).toMatch(/^[0-9a-f]{16}$/);
    }
    expect(new Set(digests).size).toBe(2000);
    for (let i = 1999; i >= 0; i--) {
      expect(s.digest()).toBe(digests[i]);
      s.subtract(hashes[i]!);
    }
    expect(s.digest()).toBe(empty);
  });
});

describe('table sync', () => {
  it('applies a revision in place, and a re-list as the difference to the table', () => {
    const sync = new TableSync(layout, silent, noEvents);
    sync.onSnapshot(records, 3n);
    expect(sync.table.lookup('www.mango.com', '/')?.kind).toBe('app');
    sync.onRevision([put('/paas/apps/kiwi', { routes: [{ host: 'kiwi.com' }] }, 5n)], 5n);
    expect(sync.table.lookup('kiwi.com', '/')?.kind).toBe('app');
    expect(sync.revision).toBe(5n);
    const m1 = sync.table.backend('mango/m1')!;
    m1.inflight = 3;
    m1.ejectedUntil = 12345;
    const builder = sync.beginSnapshot();
    builder.page([...records, entry('/paas/instances/mango/m2', { url: 'http://127.0.0.1:7002', state: 'ready' }, 6n)], 6n);
    // Nothing changes until the list is complete.
    expect(sync.table.lookup('kiwi.com', '/')?.kind).toBe('app');
    expect(sync.table.backend('mango/m2')).toBeUndefined();
    builder.commit(6n);
    expect(sync.table.lookup('kiwi.com', '/')).toBeUndefined();
    expect(sync.table.backend('mango/m2')?.state).toBe('ready');
    // The unchanged instance is the same object, its counters intact.
    expect(sync.table.backend('mango/m1')).toBe(m1);
    expect(m1).toMatchObject({ inflight: 3, ejectedUntil: 12345 });
    // An instance listed at another url is a new backend.
    sync.onSnapshot([records[0]!, entry('/paas/instances/mango/m1', { url: 'http://127.0.0.1:7009', state: 'ready' }, 7n)], 7n);
    expect(sync.table.backend('mango/m1')).not.toBe(m1);
    expect(sync.table.backend('mango/m2')).toBeUndefined();
  });

  it('re-ranks an app listed again with the same value but a new create revision', () => {
    const sync = new TableSync(layout, silent, noEvents);
    const claim = { routes: [{ host: 'shared.com' }] };
    sync.onSnapshot([entry('/paas/apps/a', claim, 2n), entry('/paas/apps/b', claim, 3n)], 3n);
    expect(sync.table.lookup('shared.com', '/')).toMatchObject({ name: 'a' });
    sync.onSnapshot([entry('/paas/apps/a', claim, 5n), entry('/paas/apps/b', claim, 3n)], 5n);
    expect(sync.table.lookup('shared.com', '/')).toMatchObject({ name: 'b' });
  });

  it('keeps the last good value of a key whose new value is rejected, across a re-list too', () => {
    const sync = new TableSync(layout, silent, noEvents);
    sync.onSnapshot(records, 3n);
    sync.onRevision([put('/paas/apps/mango', 'not json', 4n)], 4n);
    expect(sync.rejected()).toEqual([{ key: '/paas/apps/mango', revision: '4', error: expect.stringMatching(/not valid JSON/) }]);
    expect(sync.table.lookup('www.mango.com', '/')?.kind).toBe('app');
    sync.onSnapshot([entry('/paas/apps/mango', 'not json', 4n), records[1]!], 4n);
    expect(sync.table.lookup('www.mango.com', '/')?.kind).toBe('app');
    sync.dropCarryOverOnNextSnapshot();
    sync.onSnapshot([entry('/paas/apps/mango', 'not json', 4n), records[1]!], 4n);
    expect(sync.table.lookup('www.mango.com', '/')).toBeUndefined();
  });
});

const appNames = fc.constantFrom('a', 'b', 'c', 'd');
const listedRecord = fc.oneof(
  fc.tuple(appNames, fc.constantFrom('x.com', 'y.com', '*.z.com'), fc.integer({ min: 1, max: 3 })).map(([app, host, rev]) => entry(`/paas/apps/${app}`, { routes: [{ host }] }, BigInt(rev))),
  fc.tuple(appNames, fc.constantFrom('i1', 'i2'), fc.integer({ min: 7001, max: 7003 }), fc.constantFrom('ready', 'draining')).map(([app, id, port, state]) => entry(`/paas/instances/${app}/${id}`, { url: `http://127.0.0.1:${port}`, state }, 1n)),
  fc.tuple(fc.constantFrom('x.com', 'q.com'), appNames).map(([host, app]) => entry(`/paas/overrides/${host}`, { app }, 1n)),
  fc.tuple(fc.constantFrom('x.com', 'q.com')).map(([host]) => entry(`/paas/overrides/${host}`, { maintenance: { status: 503, message: 'm' } }, 1n)),
  fc.tuple(appNames).map(([app]) => entry(`/paas/apps/${app}`, 'not json', 1n)),
);
/** A list as etcd returns it: one value per key. */
const listing = fc.uniqueArray(listedRecord, { selector: (e) => e.key, maxLength: 12 });

function view(sync: TableSync) {
  const hosts = ['x.com', 'y.com', 'w.z.com', 'q.com'];
  return {
    digest: sync.digest(),
    rejected: sync.rejected().map((r) => r.key).sort(),
    routes: sync.table.routeCount(),
    conflicts: sync.table.conflicts(),
    lookups: hosts.map((h) => { const t = sync.table.lookup(h, '/'); return t === undefined ? '404' : t.kind === 'app' ? `app ${t.name}` : 'maintenance'; }),
    pools: [...sync.table.pools()].map((p) => ({ name: p.name, record: p.record, createRevision: p.createRevision, backends: p.backends.map((b) => [b.key, b.origin, b.state]) })).sort((a, b) => (a.name < b.name ? -1 : 1)),
  };
}

describe('a re-list', () => {
  it('ends in the same table, digest and rejections as a fresh load of the same list', () => {
    fc.assert(
      fc.property(listing, listing, (first, second) => {
        const relisted = new TableSync(layout, silent, noEvents);
        relisted.onSnapshot(first, 1n);
        relisted.dropCarryOverOnNextSnapshot();
        relisted.onSnapshot(second, 2n);
        const fresh = new TableSync(layout, silent, noEvents);
        fresh.onSnapshot(second, 2n);
        expect(view(relisted)).toEqual(view(fresh));
      }),
      { numRuns: 500 },
    );
  });

  it('keeps the last good value of a rejected key, as if its good record were listed', () => {
    fc.assert(
      fc.property(listing, listing, (first, second) => {
        const relisted = new TableSync(layout, silent, noEvents);
        relisted.onSnapshot(first, 1n);
        relisted.onSnapshot(second, 2n);
        // The expected table: the second list, with every rejected key that had a good value
        // in the first list listed with that value instead.
        const good = new Map(first.filter((e) => e.value.toString() !== 'not json').map((e) => [e.key, e]));
        const expected = second.map((e) => (e.value.toString() === 'not json' && good.has(e.key) ? good.get(e.key)! : e));
        const fresh = new TableSync(layout, silent, noEvents);
        fresh.onSnapshot(expected, 2n);
        const { rejected: _r, ...want } = view(fresh);
        const { rejected, ...got } = view(relisted);
        expect(got).toEqual(want);
        expect(rejected).toEqual(second.filter((e) => e.value.toString() === 'not json').map((e) => e.key).sort());
      }),
      { numRuns: 500 },
    );
  });
});

describe('digest majority', () => {
  it('flags a digest that differs from the majority at the same revision only', () => {
    expect(digestMismatch('a', 5n, [{ revision: 5n, digest: 'b' }, { revision: 5n, digest: 'b' }])).toMatchObject({ majority: 'b', agreeing: 2, routersAtRevision: 3 });
    expect(digestMismatch('a', 5n, [{ revision: 5n, digest: 'b' }])).toBeUndefined();
    expect(digestMismatch('a', 5n, [{ revision: 6n, digest: 'b' }, { revision: 6n, digest: 'b' }])).toBeUndefined();
    expect(digestMismatch('a', 5n, [{ revision: 5n, digest: 'a' }, { revision: 5n, digest: 'b' }])).toBeUndefined();
  });
});
