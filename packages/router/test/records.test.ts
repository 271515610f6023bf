import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KeyLayout, type KvEntry, type WatchEvent } from '@paas/registry';
import { DigestSum, hashRecord, type RecordHash } from '../src/records/record-digest.js';
import type { KeyHistory } from '../src/records/last-good.js';
import { TableSync } from '../src/records/table-sync.js';
import { digestMismatch } from '../src/status/peer-digest-check.js';
import { VersionedStore } from './support/versioned-store.js';
import { backendByKey } from './support/table-lookup.js';

const layout = new KeyLayout('/paas');
const silent = { warn() {}, info() {}, error() {} };
const noEvents = { onApplied() {}, onRejected() {}, onResync() {}, onConnection() {} };
/** For tables fed lists whose rejected values are first versions: the rule reads no history for them. */
const noHistory: KeyHistory = {
  getAt: () => Promise.reject(new Error('no history read expected')),
  servesRevision: () => Promise.reject(new Error('no history read expected')),
};

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
    const a = new TableSync(layout, silent, noEvents, noHistory);
    a.onSnapshot(records, 3n);
    const b = new TableSync(layout, silent, noEvents, noHistory);
    b.onSnapshot([...records].reverse(), 3n);
    expect(a.digest()).toBe(b.digest());
    a.onRevision([put('/paas/instances/mango/m1', { url: 'http://127.0.0.1:7001', state: 'draining' }, 4n)], 4n);
    expect(a.digest()).not.toBe(b.digest());
  });

  it('returns to its value when a record is put back', () => {
    const a = new TableSync(layout, silent, noEvents, noHistory);
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
    const sync = new TableSync(layout, silent, noEvents, noHistory);
    sync.onSnapshot(records, 3n);
    expect(sync.table.lookup('www.mango.com', '/')?.kind).toBe('app');
    sync.onRevision([put('/paas/apps/kiwi', { routes: [{ host: 'kiwi.com' }] }, 5n)], 5n);
    expect(sync.table.lookup('kiwi.com', '/')?.kind).toBe('app');
    expect(sync.revision).toBe(5n);
    const m1 = backendByKey(sync.table, 'mango/m1')!;
    m1.inflight = 3;
    m1.ejectedUntil = 12345;
    const builder = sync.beginSnapshot();
    builder.page([...records, entry('/paas/instances/mango/m2', { url: 'http://127.0.0.1:7002', state: 'ready' }, 6n)], 6n);
    // Nothing changes until the list is complete.
    expect(sync.table.lookup('kiwi.com', '/')?.kind).toBe('app');
    expect(backendByKey(sync.table, 'mango/m2')).toBeUndefined();
    builder.commit(6n);
    expect(sync.table.lookup('kiwi.com', '/')).toBeUndefined();
    expect(backendByKey(sync.table, 'mango/m2')?.state).toBe('ready');
    // The unchanged instance is the same object, its counters intact.
    expect(backendByKey(sync.table, 'mango/m1')).toBe(m1);
    expect(m1).toMatchObject({ inflight: 3, ejectedUntil: 12345 });
    // An instance listed at another url is a new backend.
    sync.onSnapshot([records[0]!, entry('/paas/instances/mango/m1', { url: 'http://127.0.0.1:7009', state: 'ready' }, 7n)], 7n);
    expect(backendByKey(sync.table, 'mango/m1')).not.toBe(m1);
    expect(backendByKey(sync.table, 'mango/m2')).toBeUndefined();
  });

  it('re-ranks an app listed again with the same value but a new create revision', () => {
    const sync = new TableSync(layout, silent, noEvents, noHistory);
    const claim = { routes: [{ host: 'shared.com' }] };
    sync.onSnapshot([entry('/paas/apps/a', claim, 2n), entry('/paas/apps/b', claim, 3n)], 3n);
    expect(sync.table.lookup('shared.com', '/')).toMatchObject({ name: 'a' });
    sync.onSnapshot([entry('/paas/apps/a', claim, 5n), entry('/paas/apps/b', claim, 3n)], 5n);
    expect(sync.table.lookup('shared.com', '/')).toMatchObject({ name: 'b' });
  });

  it('keeps the last good value of a key whose new value is rejected, across a re-list too', async () => {
    const store = new VersionedStore();
    const sync = new TableSync(layout, silent, noEvents, store);
    const ops = [store.put('/paas/apps/mango', JSON.stringify({ routes: [{ host: 'www.mango.com' }] })), store.put('/paas/apps/mango', 'not json')];
    sync.onSnapshot([], 1n);
    for (const ev of ops) sync.onRevision([ev], ev.modRevision);
    expect(sync.rejected()).toEqual([{ key: '/paas/apps/mango', revision: '3', error: expect.stringMatching(/not valid JSON/), kept: '2' }]);
    expect(sync.table.lookup('www.mango.com', '/')?.kind).toBe('app');
    const digest = sync.digest();
    sync.onSnapshot(store.list(), store.revision);
    await sync.whenListed();
    expect(sync.table.lookup('www.mango.com', '/')?.kind).toBe('app');
    // Without carry-over the value is read back from etcd's history: the same table.
    sync.dropCarryOverOnNextSnapshot();
    sync.onSnapshot(store.list(), store.revision);
    await sync.whenListed();
    expect(sync.table.lookup('www.mango.com', '/')?.kind).toBe('app');
    expect(sync.digest()).toBe(digest);
    // Once etcd compacted the revision the value was read at, the key has no value.
    store.compact(3n);
    expect(await sync.checkKeptHistory()).toBe(1);
    expect(sync.table.lookup('www.mango.com', '/')).toBeUndefined();
    expect(sync.rejected()).toEqual([expect.objectContaining({ key: '/paas/apps/mango', kept: null })]);
  });

  it('holds back revisions that arrive while a list reads history, and applies them after it', async () => {
    const store = new VersionedStore();
    store.put('/paas/apps/mango', JSON.stringify({ routes: [{ host: 'www.mango.com' }] }));
    store.put('/paas/apps/mango', 'not json');
    const sync = new TableSync(layout, silent, noEvents, store);
    sync.onSnapshot(store.list(), store.revision);
    expect(sync.loaded).toBe(false);
    const later = store.put('/paas/apps/kiwi', JSON.stringify({ routes: [{ host: 'kiwi.com' }] }));
    sync.onRevision([later], later.modRevision);
    expect(sync.revision).toBe(0n);
    await sync.whenLoaded();
    expect(sync.revision).toBe(later.modRevision);
    expect(sync.table.lookup('www.mango.com', '/')?.kind).toBe('app');
    expect(sync.table.lookup('kiwi.com', '/')?.kind).toBe('app');
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
        const relisted = new TableSync(layout, silent, noEvents, noHistory);
        relisted.onSnapshot(first, 1n);
        relisted.dropCarryOverOnNextSnapshot();
        relisted.onSnapshot(second, 2n);
        const fresh = new TableSync(layout, silent, noEvents, noHistory);
        fresh.onSnapshot(second, 2n);
        expect(view(relisted)).toEqual(view(fresh));
      }),
      { numRuns: 500 },
    );
  });

});

/** A write to etcd, with values valid or not for each kind of record. */
const keys = ['/paas/apps/a', '/paas/apps/b', '/paas/instances/a/i1', '/paas/overrides/x.com'] as const;
const good: Record<(typeof keys)[number], unknown[]> = {
  '/paas/apps/a': [{ routes: [{ host: 'x.com' }] }, { routes: [{ host: 'y.com' }] }],
  '/paas/apps/b': [{ routes: [{ host: 'x.com' }] }, { routes: [{ host: '*.z.com' }] }],
  '/paas/instances/a/i1': [{ url: 'http://127.0.0.1:7001', state: 'ready' }, { url: 'http://127.0.0.1:7002', state: 'draining' }],
  '/paas/overrides/x.com': [{ app: 'b' }, { maintenance: { status: 503, message: 'm' } }],
};
type Op = { op: 'put'; key: (typeof keys)[number]; value: number } | { op: 'delete'; key: (typeof keys)[number] } | { op: 'compact' };
const op: fc.Arbitrary<Op> = fc.oneof(
  // value 2 and 3 are rejected: not JSON, and JSON of the wrong shape.
  fc.record({ op: fc.constant('put' as const), key: fc.constantFrom(...keys), value: fc.integer({ min: 0, max: 3 }) }),
  fc.record({ op: fc.constant('delete' as const), key: fc.constantFrom(...keys) }),
  fc.constant({ op: 'compact' as const }),
);
function write(store: VersionedStore, o: Op): WatchEvent | undefined {
  if (o.op === 'compact') {
    store.compact(store.revision);
    return undefined;
  }
  if (o.op === 'delete') return store.delete(o.key);
  return store.put(o.key, o.value === 2 ? 'not json' : o.value === 3 ? '{"routes":"no"}' : JSON.stringify(good[o.key][o.value]));
}
const fullView = (sync: TableSync) => ({ ...view(sync), rejected: sync.rejected().sort((a, b) => (a.key < b.key ? -1 : 1)) });

describe('routers started at different times', () => {
  it('build the same table from the same etcd history, compactions included', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 25 }), fc.nat(), fc.constantFrom('none', 'trusting', 'from scratch'), async (ops, startAt, relist) => {
        const store = new VersionedStore();
        const first = new TableSync(layout, silent, noEvents, store);
        first.onSnapshot(store.list(), store.revision);
        await first.whenListed();
        let late: TableSync | undefined;
        const cut = startAt % (ops.length + 1);
        for (let i = 0; i < ops.length; i++) {
          if (i === cut) {
            late = new TableSync(layout, silent, noEvents, store);
            late.onSnapshot(store.list(), store.revision);
          }
          const ev = write(store, ops[i]!);
          if (ev === undefined) continue;
          first.onRevision([ev], ev.modRevision);
          late?.onRevision([ev], ev.modRevision);
        }
        // A re-list must change nothing, whether it trusts what the router judged before or not
        // (the digest check's re-list does not).
        if (relist === 'from scratch') first.dropCarryOverOnNextSnapshot();
        if (relist !== 'none') first.onSnapshot(store.list(), store.revision);
        await first.whenListed();
        await late?.whenListed();
        const fresh = new TableSync(layout, silent, noEvents, store);
        fresh.onSnapshot(store.list(), store.revision);
        await fresh.whenListed();
        await first.checkKeptHistory();
        await late?.checkKeptHistory();
        expect(first.revision).toBe(store.revision);
        const want = fullView(fresh);
        expect(fullView(first)).toEqual(want);
        if (late) expect(fullView(late)).toEqual(want);
      }),
      { numRuns: 1000 },
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
