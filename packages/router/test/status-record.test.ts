/**
 * The status record written to etcd stays readable whatever the table holds: bounded lists with
 * counts, measured against the readers' MAX_VALUE_BYTES, and the draining instances (which the
 * deployer's drain wait reads) given up last and flagged when they are.
 */
import { MAX_VALUE_BYTES, parseRouterStatusRecord, type Rejected, type RouterStatusRecord } from '@paas/registry';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { boundedStatusJson, LISTED_MAX, newestByKey, TEXT_MAX, type StatusInput } from '../src/status/status-record.js';

function input(over: Partial<StatusInput> = {}): StatusInput {
  return {
    revision: '123456',
    digest: '0f1e2d3c4b5a697',
    routes: 3,
    rejected: [],
    conflicts: [],
    draining: [],
    busy: [],
    currentRevision: '42',
    warnings: [],
    unhealthy: [],
    startedAt: '2026-11-29T10:00:00.000Z',
    updatedAt: '2026-11-29T10:00:01.000Z',
    ...over,
  };
}

function bytes(s: string): number {
  return Buffer.byteLength(s);
}

function parsed(json: string): RouterStatusRecord {
  const p = parseRouterStatusRecord(json);
  if (!p.ok) throw new Error(p.error);
  return p.value;
}

/** The reference for newestByKey: sort everything, take n, sort by key. */
function newestReference(all: Rejected[], n: number): Rejected[] {
  const byNewest = [...all].sort((a, b) => {
    const ra = BigInt(a.revision);
    const rb = BigInt(b.revision);
    if (ra !== rb) return ra > rb ? -1 : 1;
    return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
  });
  return byNewest.slice(0, n).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

const rejectedOf = (i: number, rev = 1000 + i): Rejected => ({
  key: `/paas/instances/app-${String(i).padStart(5, '0')}/web-1`,
  revision: String(rev),
  error: 'url: must be an http:// or https:// origin with a port (got "ftp://10.0.0.3:21")',
});

describe('the status record in etcd', () => {
  it('with 5,000 rejected records: lists the 20 newest by key, counts all, and parses (the whole list would not)', () => {
    const rejected = Array.from({ length: 5000 }, (_, i) => rejectedOf(i));
    const whole = JSON.stringify({ ...input(), rejected, inflight: {} });
    expect(bytes(whole)).toBeGreaterThan(MAX_VALUE_BYTES);

    const json = boundedStatusJson(input({ rejected }));
    expect(bytes(json)).toBeLessThan(8 * 1024);
    const rec = parsed(json);
    expect(rec.rejectedCount).toBe(5000);
    expect(rec.rejected.map((r) => r.key)).toEqual(rejected.slice(4980).map((r) => r.key));
    expect(rec.inflightComplete).toBeUndefined();
  });

  it('cuts a huge rejected key and error to TEXT_MAX characters', () => {
    const rejected = [{ key: `/paas/apps/${'x'.repeat(1_000_000)}`, revision: '7', error: 'e'.repeat(100_000) }];
    const rec = parsed(boundedStatusJson(input({ rejected })));
    expect(rec.rejected[0]!.key).toHaveLength(TEXT_MAX);
    expect(rec.rejected[0]!.key.endsWith('…')).toBe(true);
    expect(rec.rejected[0]!.error).toHaveLength(TEXT_MAX);
    expect(rec.rejectedCount).toBe(1);
  });

  it('lists the first 20 conflicts and counts them all', () => {
    const conflicts = Array.from({ length: 300 }, (_, i) => ({ host: `h${String(i).padStart(3, '0')}.mango.com`, path: '/', app: `a${i}`, winner: 'w' }));
    const rec = parsed(boundedStatusJson(input({ conflicts })));
    expect(rec.conflicts).toEqual(conflicts.slice(0, LISTED_MAX));
    expect(rec.conflictsCount).toBe(300);
  });

  it('too many draining instances to list: the ones that fit, by key, and inflightComplete false', () => {
    const name = (i: number) => `app-${'a'.repeat(50)}-${String(i).padStart(4, '0')}/id-${'b'.repeat(50)}`;
    const draining: [string, number][] = Array.from({ length: 2000 }, (_, i) => [name(1999 - i), i % 3]);
    const busy: [string, number][] = [['other/web-1', 4]];
    const json = boundedStatusJson(input({ draining, busy, rejected: [rejectedOf(1)] }));
    expect(bytes(json)).toBeLessThanOrEqual(MAX_VALUE_BYTES);
    const rec = parsed(json);
    expect(rec.inflightComplete).toBe(false);
    const listed = Object.keys(rec.inflight);
    expect(listed.length).toBeGreaterThan(300);
    expect(listed.length).toBeLessThan(2000);
    // The lowest keys, in order, with their counts; nothing else.
    expect(listed).toEqual(Array.from({ length: listed.length }, (_, i) => name(i)));
    for (const k of listed) expect(rec.inflight[k]).toBe(draining.find(([d]) => d === k)![1]);
    expect(rec.rejected).toEqual([]);
    expect(rec.rejectedCount).toBe(1);
    // Nearly full: the search found the largest prefix that fits.
    expect(bytes(json)).toBeGreaterThan(MAX_VALUE_BYTES - 200);
  });

  it('busy (not draining) instances are given up before the draining ones', () => {
    const draining: [string, number][] = Array.from({ length: 100 }, (_, i) => [`d/i${i}`, 1]);
    const busy: [string, number][] = Array.from({ length: 100 }, (_, i) => [`b${'x'.repeat(60)}/i${i}`, 1]);
    const whole = boundedStatusJson(input({ draining, busy }), 1_000_000);
    const json = boundedStatusJson(input({ draining, busy }), bytes(whole) - 10);
    const rec = parsed(json);
    expect(rec.inflightComplete).toBe(false);
    expect(Object.keys(rec.inflight)).toEqual(draining.map(([k]) => k));
  });

  it('newestByKey matches sorting everything (property)', () => {
    const arb = fc.array(
      fc.record({ key: fc.string({ maxLength: 4 }), revision: fc.bigInt({ min: 0n, max: 30n }).map(String), error: fc.constant('e') }),
      { maxLength: 60 },
    );
    fc.assert(
      fc.property(arb, fc.integer({ min: 0, max: 25 }), (all, n) => {
        expect(newestByKey(all, n)).toEqual(newestReference(all, n));
      }),
    );
  });

  const allListedDraining = (rec: { inflight: Record<string, number> }, draining: [string, number][]) => draining.every(([k]) => Object.hasOwn(rec.inflight, k));

  it('never exceeds the byte budget, keeps the counts, and drops only in priority order (property)', () => {
    const text = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 700 }), fc.string({ unit: 'binary', maxLength: 3000 }));
    const rejected = fc.array(fc.record({ key: text, revision: fc.nat(1_000_000).map(String), error: text }), { maxLength: 80 });
    const conflicts = fc.array(fc.record({ host: text, path: text, app: fc.string({ maxLength: 63 }), winner: fc.string({ maxLength: 63 }) }), { maxLength: 40 });
    const entries = fc.uniqueArray(fc.tuple(fc.string({ minLength: 1, maxLength: 127 }), fc.nat(1000)), { selector: ([k]) => k, maxLength: 600 });
    const warnings = fc.array(fc.record({ key: text, revision: fc.nat(1_000_000).map(String), unknownFields: fc.array(text, { maxLength: 30 }) }), { maxLength: 60 });
    const unhealthy = fc.array(fc.record({ instance: text, problem: fc.constantFrom('ejected' as const, 'failing' as const), reason: text, since: fc.constant('2026-11-29T10:00:00.000Z') }), { maxLength: 60 });
    const arb = fc.record({ rejected, conflicts, warnings, unhealthy, entries, split: fc.nat(), maxBytes: fc.oneof(fc.integer({ min: 1024, max: 16 * 1024 }), fc.integer({ min: 1024, max: MAX_VALUE_BYTES })) });
    fc.assert(
      fc.property(arb, ({ rejected, conflicts, warnings, unhealthy, entries, split, maxBytes }) => {
        const cutAt = entries.length ? split % (entries.length + 1) : 0;
        const draining = entries.slice(0, cutAt);
        const busy = entries.slice(cutAt);
        const s = input({ rejected, conflicts, warnings, unhealthy, draining, busy });
        const json = boundedStatusJson(s, maxBytes);
        expect(bytes(json)).toBeLessThanOrEqual(maxBytes);
        const rec = parsed(json);
        expect(rec.warningsCount).toBe(warnings.length);
        expect(rec.unhealthyCount).toBe(unhealthy.length);
        expect(rec.warnings!.length).toBeLessThanOrEqual(LISTED_MAX);
        expect(rec.unhealthy!.length).toBeLessThanOrEqual(LISTED_MAX);
        expect(rec.currentRevision).toBe('42');
        if (!allListedDraining(rec, draining)) expect(rec.warnings!.length + rec.unhealthy!.length).toBe(0);
        expect(rec.rejectedCount).toBe(rejected.length);
        expect(rec.conflictsCount).toBe(conflicts.length);
        expect(rec.revision).toBe(s.revision);
        expect(rec.rejected.length).toBeLessThanOrEqual(LISTED_MAX);
        expect(rec.conflicts!.length).toBeLessThanOrEqual(LISTED_MAX);
        const newest = newestByKey(rejected, LISTED_MAX);
        expect(rec.rejected.map((r) => r.revision)).toEqual(newest.slice(0, rec.rejected.length).map((r) => r.revision));
        const listed = new Map(Object.entries(rec.inflight));
        for (const [k, n] of listed) expect(n).toBe(entries.find(([e]) => e === k)![1]);
        const allDraining = draining.every(([k]) => listed.has(k));
        const anyBusy = busy.some(([k]) => listed.has(k));
        if (rec.inflightComplete !== false) expect(listed.size).toBe(entries.length);
        else expect(listed.size).toBeLessThan(entries.length);
        // Busy entries only while every draining one is listed; lists shrink only after busy went.
        if (anyBusy) expect(allDraining).toBe(true);
        if (!allDraining) expect(rec.rejected.length + rec.conflicts!.length).toBe(0);
        // Busy entries go first: while they are all listed, the lists were not shrunk.
        if (busy.length > 0 && rec.inflightComplete !== false) expect(rec.rejected.length).toBe(Math.min(LISTED_MAX, rejected.length));
      }),
      { numRuns: 200 },
    );
  }, 60_000);
});
