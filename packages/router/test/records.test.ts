import { describe, expect, it } from 'vitest';
import { KeyLayout, type KvEntry, type WatchEvent } from '@paas/registry';
import { RecordStore } from '../src/records/record-store.js';
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
    expect(a.records.digest()).toBe(b.records.digest());
    a.onRevision([put('/paas/instances/mango/m1', { url: 'http://127.0.0.1:7001', state: 'draining' }, 4n)], 4n);
    expect(a.records.digest()).not.toBe(b.records.digest());
  });

  it('returns to its value when a record is put back', () => {
    const s = new RecordStore();
    const before = s.digest();
    const rec = { kind: 'app' as const, app: 'a', value: { routes: [] } };
    s.accept('/paas/apps/a', rec, Buffer.from('{"routes":[]}'), 1n, 1n);
    expect(s.digest()).not.toBe(before);
    s.remove('/paas/apps/a');
    expect(s.digest()).toBe(before);
  });

  it('is 16 hex digits, and the sum wraps and unwinds exactly over many records', () => {
    const s = new RecordStore();
    const empty = s.digest();
    expect(empty).toMatch(/^[0-9a-f]{16}$/);
    const rec = { kind: 'app' as const, app: 'a', value: { routes: [] } };
    const digests: string[] = [];
    for (let i = 0; i < 2000; i++) {
      s.accept(`/paas/apps/a${i}`, rec, Buffer.from(`{"routes":[],"n":${i}}`), 1n);
      digests.push(s.digest());
      expect(s.digest()).toMatch(/^[0-9a-f]{16}$/);
    }
    expect(new Set(digests).size).toBe(2000);
    for (let i = 1999; i >= 0; i--) {
      expect(s.digest()).toBe(digests[i]);
      s.remove(`/paas/apps/a${i}`);
    }
    expect(s.digest()).toBe(empty);
  });
});

describe('table sync', () => {
  it('applies a revision in place and a snapshot as a new table', () => {
    const sync = new TableSync(layout, silent, noEvents);
    sync.onSnapshot(records, 3n);
    const first = sync.table;
    expect(sync.table.lookup('www.mango.com', '/')?.kind).toBe('app');
    sync.onRevision([put('/paas/apps/kiwi', { routes: [{ host: 'kiwi.com' }] }, 5n)], 5n);
    expect(sync.table).toBe(first);
    expect(sync.table.lookup('kiwi.com', '/')?.kind).toBe('app');
    expect(sync.revision).toBe(5n);
    sync.onSnapshot(records, 6n);
    expect(sync.table).not.toBe(first);
    expect(sync.table.lookup('kiwi.com', '/')).toBeUndefined();
  });

  it('keeps the last good value of a key whose new value is rejected, across a re-list too', () => {
    const sync = new TableSync(layout, silent, noEvents);
    sync.onSnapshot(records, 3n);
    sync.onRevision([put('/paas/apps/mango', 'not json', 4n)], 4n);
    expect(sync.records.rejected()).toEqual([{ key: '/paas/apps/mango', revision: '4', error: expect.stringMatching(/not valid JSON/) }]);
    expect(sync.table.lookup('www.mango.com', '/')?.kind).toBe('app');
    sync.onSnapshot([entry('/paas/apps/mango', 'not json', 4n), records[1]!], 4n);
    expect(sync.table.lookup('www.mango.com', '/')?.kind).toBe('app');
    sync.dropCarryOverOnNextSnapshot();
    sync.onSnapshot([entry('/paas/apps/mango', 'not json', 4n), records[1]!], 4n);
    expect(sync.table.lookup('www.mango.com', '/')).toBeUndefined();
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
