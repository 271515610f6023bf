/**
 * The wait logic over router views (in memory: these tests feed RouterView objects to the waits;
 * how the views come from etcd is covered by the integration tests against a real etcd).
 */
import { describe, expect, test } from 'vitest';
import type { ProgressEvent } from '../src/events.js';
import { routerView, type RouterFleet, type RouterView } from '../src/fleet.js';
import { waitForDrain, waitForRevision } from '../src/waits.js';

class Views {
  private routers = new Map<string, RouterView>();
  private listeners = new Set<() => void>();
  connected = true;
  set(id: string, revision: number, inflight: Record<string, number> = {}, rejected: { key: string; revision: string; error: string }[] = []): void {
    const value = JSON.stringify({ revision: String(revision), digest: 'd', routes: 1, rejected, inflight });
    this.routers.set(id, routerView(`/p/routers/${id}`, id, value, BigInt(revision), performance.now()));
    this.changed();
  }
  garbage(id: string): void {
    this.routers.set(id, routerView(`/p/routers/${id}`, id, 'not json', 1n, performance.now()));
    this.changed();
  }
  drop(id: string): void {
    this.routers.delete(id);
    this.changed();
  }
  list(): RouterView[] {
    return [...this.routers.values()];
  }
  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
  private changed(): void {
    for (const fn of [...this.listeners]) fn();
  }
  get fleet(): RouterFleet {
    return this as unknown as RouterFleet;
  }
}

const opts = { step: 'confirm' as const, timeoutMs: 2000, allowNoRouters: false };

describe('waitForRevision', () => {
  test('resolves once every live router reached the revision, with per-router times', async () => {
    const v = new Views();
    v.set('r1', 5);
    v.set('r2', 9);
    const events: ProgressEvent[] = [];
    const p = waitForRevision(v.fleet, 10n, opts, (e) => events.push(e));
    v.set('r1', 10);
    v.set('r2', 11);
    const r = await p;
    expect(r.routers.map((x) => x.id).sort()).toEqual(['r1', 'r2']);
    expect(events.filter((e) => e.type === 'router-applied').map((e) => (e as { router: string }).router)).toEqual(['r1', 'r2']);
  });

  test('a router that disappears drops out', async () => {
    const v = new Views();
    v.set('r1', 10);
    v.set('r2', 3);
    const p = waitForRevision(v.fleet, 10n, opts, () => {});
    v.drop('r2');
    const r = await p;
    expect(r.gone).toEqual(['r2']);
    expect(r.routers.map((x) => x.id)).toEqual(['r1']);
  });

  test('a router behind at the timeout fails it, naming the router and its revision', async () => {
    const v = new Views();
    v.set('r1', 10);
    v.set('slow', 7);
    await expect(waitForRevision(v.fleet, 10n, { ...opts, timeoutMs: 50 }, () => {})).rejects.toMatchObject({
      kind: 'router-timeout',
      message: expect.stringMatching(/^router slow did not apply revision 10 within 50ms: slow is at revision 7 \(3 behind\)/),
    });
  });

  test('an unreadable status record counts as behind and is quoted', async () => {
    const v = new Views();
    v.garbage('weird');
    await expect(waitForRevision(v.fleet, 10n, { ...opts, timeoutMs: 30 }, () => {})).rejects.toMatchObject({
      message: expect.stringContaining('weird has an unreadable status record (not valid JSON'),
    });
  });

  test('no live router: waits for one, fails at the timeout, unless allowed', async () => {
    const v = new Views();
    await expect(waitForRevision(v.fleet, 10n, { ...opts, timeoutMs: 30 }, () => {})).rejects.toMatchObject({ kind: 'no-routers' });
    await expect(waitForRevision(v.fleet, 10n, { ...opts, allowNoRouters: true }, () => {})).resolves.toMatchObject({ routers: [] });
    const p = waitForRevision(v.fleet, 10n, opts, () => {});
    v.set('r1', 12);
    await expect(p).resolves.toMatchObject({ routers: [{ id: 'r1' }], joined: ['r1'] });
  });

  test('a rejected key at or after the revision fails at once', async () => {
    const v = new Views();
    v.set('r1', 9);
    const p = waitForRevision(v.fleet, 10n, { ...opts, keys: ['/p/instances/m/a'] }, () => {});
    v.set('r1', 10, {}, [{ key: '/p/instances/m/a', revision: '10', error: 'bad url' }]);
    await expect(p).rejects.toMatchObject({ kind: 'rejected', message: 'router r1 rejected /p/instances/m/a (revision 10): bad url' });
  });

  test('aborts with the signal reason', async () => {
    const v = new Views();
    v.set('r1', 1);
    const ac = new AbortController();
    const p = waitForRevision(v.fleet, 10n, { ...opts, signal: ac.signal }, () => {});
    ac.abort(new Error('lock lost'));
    await expect(p).rejects.toThrow('lock lost');
  });
});

describe('waitForDrain', () => {
  test('resolves when every router that applied the draining revision reports 0 (a missing entry is 0)', async () => {
    const v = new Views();
    v.set('r1', 20, { 'm/a': 2 });
    v.set('r2', 19);
    const events: ProgressEvent[] = [];
    const p = waitForDrain(v.fleet, { instances: ['m/a', 'm/b'], minRevision: 20n, timeoutMs: 2000 }, (e) => events.push(e));
    v.set('r2', 20);
    v.set('r1', 21, { 'm/a': 1 });
    v.set('r1', 22, { 'm/a': 0 });
    const r = await p;
    expect(r).toMatchObject({ timedOut: false, peak: 2, remaining: [] });
    expect(events.filter((e) => e.type === 'inflight').map((e) => (e as { total: number }).total)).toEqual([2, 2, 1]);
  });

  test('times out (without failing) reporting what is still in flight', async () => {
    const v = new Views();
    v.set('r1', 20, { 'm/a': 4 });
    v.set('r2', 10);
    const r = await waitForDrain(v.fleet, { instances: ['m/a'], minRevision: 20n, timeoutMs: 30 }, () => {});
    expect(r).toMatchObject({ timedOut: true, remaining: [{ router: 'r1', instance: 'm/a', count: 4 }], behind: ['r2'] });
  });
});
