/**
 * The waits over routers whose status record is bounded (rejectedCount > rejected listed,
 * inflightComplete: false): an instance the record does not list is never taken for idle, and a
 * rejection of one of our keys is never taken for an acceptance because the list was cut.
 */
import { describe, expect, test } from 'vitest';
import { routerView, type RouterFleet, type RouterView } from '../src/fleet.js';
import type { RouterStatusRecord } from '@paas/registry';
import { DeployError } from '../src/errors.js';
import { waitForDrain, waitForRevision } from '../src/waits.js';

class Views {
  private routers = new Map<string, RouterView>();
  private listeners = new Set<() => void>();
  connected = true;
  set(id: string, record: Partial<RouterStatusRecord> & { revision: string }): void {
    const value = JSON.stringify({ digest: 'd', routes: 1, rejected: [], inflight: {}, ...record });
    this.routers.set(id, routerView(`/p/routers/${id}`, id, value, BigInt(record.revision), performance.now()));
    for (const fn of [...this.listeners]) fn();
  }
  list(): RouterView[] {
    return [...this.routers.values()];
  }
  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
  get fleet(): RouterFleet {
    return this as unknown as RouterFleet;
  }
}

const rejected = (rev: number, i: number) => ({ key: `/p/instances/other/x${i}`, revision: String(rev), error: 'bad' });

describe('waitForDrain with a cut in-flight list', () => {
  test('an instance missing from a record marked incomplete is not idle until it is listed', async () => {
    const v = new Views();
    v.set('r1', { revision: '10', inflight: {}, inflightComplete: false });
    v.set('r2', { revision: '10', inflight: { 'mango/a': 0 } });
    let done = false;
    const p = waitForDrain(v.fleet, { instances: ['mango/a'], minRevision: 10n, timeoutMs: 10_000 }, () => {}).then((r) => {
      done = true;
      return r;
    });
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(false);
    v.set('r1', { revision: '11', inflight: { 'mango/a': 2 }, inflightComplete: false });
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(false);
    v.set('r1', { revision: '12', inflight: { 'mango/a': 0 }, inflightComplete: false });
    const report = await p;
    expect(report.timedOut).toBe(false);
    expect(report.peak).toBe(2);
    expect(report.unreported).toEqual([]);
  });

  test('still unlisted when the drain timeout passes: timed out, naming the router', async () => {
    const v = new Views();
    v.set('r1', { revision: '10', inflight: { 'mango/b': 0 }, inflightComplete: false });
    const report = await waitForDrain(v.fleet, { instances: ['mango/a', 'mango/b'], minRevision: 10n, timeoutMs: 300 }, () => {});
    expect(report.timedOut).toBe(true);
    expect(report.unreported).toEqual(['r1']);
    expect(report.remaining).toEqual([]);
  });

  test('a missing entry in a complete record counts as 0, as before', async () => {
    const v = new Views();
    v.set('r1', { revision: '10', inflight: {} });
    const report = await waitForDrain(v.fleet, { instances: ['mango/a'], minRevision: 10n, timeoutMs: 5000 }, () => {});
    expect(report.timedOut).toBe(false);
  });
});

describe('waitForRevision with a cut rejected list', () => {
  const opts = { step: 'confirm' as const, timeoutMs: 5000, allowNoRouters: false, keys: ['/p/instances/mango/new-1'] };

  test('5,000 rejections from before the change do not hold it up', async () => {
    const v = new Views();
    v.set('r1', { revision: '120', rejected: Array.from({ length: 20 }, (_, i) => rejected(80 + i, i)), rejectedCount: 5000 });
    const report = await waitForRevision(v.fleet, 100n, opts, () => {});
    expect(report.routers.map((r) => r.id)).toEqual(['r1']);
  });

  test('every listed rejection at or after the target, more not listed: fails, since ours may be hidden', async () => {
    const v = new Views();
    v.set('r1', { revision: '130', rejected: Array.from({ length: 20 }, (_, i) => rejected(100 + i, i)), rejectedCount: 21 });
    const err = await waitForRevision(v.fleet, 100n, opts, () => {}).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DeployError);
    expect((err as DeployError).kind).toBe('rejected');
    expect((err as DeployError).message).toMatch(/^router r1 lists only 20 of its 21 rejected records, all at or after revision 100: cannot tell/);
  });

  test('our key listed as rejected still fails by name', async () => {
    const v = new Views();
    v.set('r1', { revision: '130', rejected: [{ key: '/p/instances/mango/new-1', revision: '101', error: 'url: bad' }], rejectedCount: 1 });
    const err = (await waitForRevision(v.fleet, 100n, opts, () => {}).catch((e: unknown) => e)) as DeployError;
    expect(err.message).toBe('router r1 rejected /p/instances/mango/new-1 (revision 101): url: bad');
  });
});
