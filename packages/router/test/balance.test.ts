import type { BalanceStrategy, InstanceRecord } from '@paas/registry';
import { describe, expect, it } from 'vitest';
import { RandomBalancer } from '../src/balance/random.js';
import type { AppPool } from '../src/table/app-pool.js';
import type { Backend } from '../src/table/backend.js';
import { RoutingTable } from '../src/table/routing-table.js';
import { allBackends } from './support/table-lookup.js';

const NOW = 1_000_000;
const STRATEGIES: BalanceStrategy[] = ['round-robin', 'least-connections', 'random'];

type InstanceSpec = Partial<InstanceRecord> & { id: string };

/** A pool with the given instances (ready unless said otherwise), ports counting from 8001. */
function poolOf(balance: BalanceStrategy | undefined, instances: InstanceSpec[]): { table: RoutingTable; pool: AppPool; b: Record<string, Backend> } {
  const table = new RoutingTable();
  table.setApp('web', balance === undefined ? { routes: [{ host: 'web.io' }] } : { routes: [{ host: 'web.io' }], balance }, 1n);
  instances.forEach(({ id, ...rest }, i) => table.setInstance('web', id, { url: `http://127.0.0.1:${8001 + i}`, state: 'ready', ...rest }));
  const b: Record<string, Backend> = {};
  for (const backend of allBackends(table)) b[backend.id] = backend;
  return { table, pool: table.pool('web')!, b };
}

function countPicks(pool: AppPool, n: number, now = NOW): Record<string, number> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const id = pool.pick(now)?.id ?? 'none';
    counts[id] = (counts[id] ?? 0) + 1;
  }
  return counts;
}

/** Deterministic [0, 1) floats (mulberry32). */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('round-robin (smooth weighted)', () => {
  it('is the default and spreads weights 5,1,1 as a,a,b,a,c,a,a', () => {
    const { pool } = poolOf(undefined, [{ id: 'a', weight: 5 }, { id: 'b' }, { id: 'c' }]);
    expect(Array.from({ length: 14 }, () => pool.pick(NOW)!.id).join('')).toBe('aabacaaaabacaa');
  });

  it('gives exact counts in proportion to the weights', () => {
    const { pool } = poolOf('round-robin', [{ id: 'a', weight: 3 }, { id: 'b', weight: 2 }, { id: 'c', weight: 100 }]);
    expect(countPicks(pool, 105 * 20)).toEqual({ a: 60, b: 40, c: 2000 });
  });

  it('starts over with the new weights after an instance changes', () => {
    const { table, pool } = poolOf('round-robin', [{ id: 'a' }, { id: 'b' }]);
    pool.pick(NOW);
    table.setInstance('web', 'b', { url: 'http://127.0.0.1:8002', state: 'ready', weight: 3 });
    expect(countPicks(pool, 40)).toEqual({ a: 10, b: 30 });
  });
});

describe('least-connections', () => {
  it('picks the lowest inflight per unit of weight', () => {
    const { pool, b } = poolOf('least-connections', [{ id: 'a', weight: 2 }, { id: 'b' }, { id: 'c' }]);
    b.a!.inflight = 4; // 2 per weight
    b.b!.inflight = 3; // 3
    b.c!.inflight = 1; // 1
    expect(pool.pick(NOW)).toBe(b.c);
    b.c!.inflight = 5;
    expect(pool.pick(NOW)).toBe(b.a);
  });

  it('breaks ties round robin', () => {
    const { pool } = poolOf('least-connections', [{ id: 'a' }, { id: 'b' }, { id: 'c' }]);
    expect(Array.from({ length: 6 }, () => pool.pick(NOW)!.id).join('')).toBe('abcabc');
  });

  it('loads backends in proportion to their weights when requests stay open', () => {
    const { pool, b } = poolOf('least-connections', [{ id: 'a', weight: 3 }, { id: 'b' }]);
    for (let i = 0; i < 400; i++) pool.pick(NOW)!.inflight++;
    expect(b.a!.inflight).toBe(300);
    expect(b.b!.inflight).toBe(100);
  });
});

describe('random (weighted)', () => {
  it('follows the weights with a seeded source', () => {
    const { b } = poolOf('random', [{ id: 'a', weight: 1 }, { id: 'b', weight: 3 }, { id: 'c', weight: 6 }]);
    const balancer = new RandomBalancer(seeded(42));
    balancer.reset([b.a!, b.b!, b.c!]);
    const counts: Record<string, number> = { a: 0, b: 0, c: 0 };
    const n = 100_000;
    for (let i = 0; i < n; i++) counts[balancer.pick(NOW, undefined)!.id]!++;
    // 5 standard deviations of a binomial at most 0.8% of n here.
    expect(Math.abs(counts.a! / n - 0.1)).toBeLessThan(0.008);
    expect(Math.abs(counts.b! / n - 0.3)).toBeLessThan(0.008);
    expect(Math.abs(counts.c! / n - 0.6)).toBeLessThan(0.008);
  });

  it('covers the whole range of the source, including its extremes', () => {
    const { b } = poolOf('random', [{ id: 'a', weight: 1 }, { id: 'b', weight: 1 }]);
    const low = new RandomBalancer(() => 0);
    const high = new RandomBalancer(() => 0.9999999999999999);
    low.reset([b.a!, b.b!]);
    high.reset([b.a!, b.b!]);
    expect(low.pick(NOW, undefined)).toBe(b.a);
    expect(high.pick(NOW, undefined)).toBe(b.b);
    expect(high.pick(NOW, b.b)).toBe(b.a);
  });

  it('is what the pool uses for balance: random', () => {
    const { pool } = poolOf('random', [{ id: 'a' }, { id: 'b' }]);
    const counts = countPicks(pool, 10_000);
    expect(counts.a! + counts.b!).toBe(10_000);
    expect(counts.a).toBeGreaterThan(4000);
    expect(counts.b).toBeGreaterThan(4000);
  });
});

describe.each(STRATEGIES)('every strategy: %s', (strategy) => {
  it('never picks starting or draining instances', () => {
    const { pool } = poolOf(strategy, [{ id: 'a', state: 'starting' }, { id: 'b' }, { id: 'c', state: 'draining', weight: 50 }]);
    expect(countPicks(pool, 200)).toEqual({ b: 200 });
    expect(pool.hasReady()).toBe(true);
  });

  it('skips an ejected backend until ejectedUntil, and one failing its health check', () => {
    const { pool, b } = poolOf(strategy, [{ id: 'a' }, { id: 'b' }, { id: 'c' }]);
    b.a!.ejectedUntil = NOW + 1000;
    b.b!.checkHealthy = false;
    expect(countPicks(pool, 50)).toEqual({ c: 50 });
    const later = countPicks(pool, 300, NOW + 1000);
    expect(later.a).toBeGreaterThan(0);
    expect(later.b).toBeUndefined();
  });

  it('still picks among ready backends when all are ejected or unhealthy (panic mode)', () => {
    const { pool, b } = poolOf(strategy, [{ id: 'a' }, { id: 'b' }, { id: 'c', state: 'starting' }]);
    b.a!.ejectedUntil = NOW + 1000;
    b.b!.checkHealthy = false;
    const counts = countPicks(pool, 300);
    expect(Object.keys(counts).sort()).toEqual(['a', 'b']);
  });

  it('never returns the excluded backend, preferring healthy others, then any other', () => {
    const { pool, b } = poolOf(strategy, [{ id: 'a' }, { id: 'b' }, { id: 'c' }]);
    b.c!.ejectedUntil = NOW + 1000;
    for (let i = 0; i < 50; i++) expect(pool.pick(NOW, b.a)).toBe(b.b);
    b.b!.ejectedUntil = NOW + 1000;
    for (let i = 0; i < 50; i++) expect(pool.pick(NOW, b.a)).not.toBe(b.a);
  });

  it('returns undefined when no ready backend (other than the excluded one) exists', () => {
    const { table, pool, b } = poolOf(strategy, [{ id: 'a', state: 'starting' }, { id: 'b', state: 'draining' }]);
    expect(pool.pick(NOW)).toBeUndefined();
    expect(pool.hasReady()).toBe(false);
    table.setInstance('web', 'a', { url: 'http://127.0.0.1:8001', state: 'ready' });
    expect(pool.pick(NOW)).toBe(b.a);
    expect(pool.pick(NOW, b.a)).toBeUndefined();
    table.deleteInstance('web', 'a');
    expect(pool.pick(NOW)).toBeUndefined();
  });
});

it('switches strategy when the record changes it, keeping the instances', () => {
  const { table, pool, b } = poolOf('round-robin', [{ id: 'a' }, { id: 'b' }]);
  b.a!.inflight = 10;
  table.setApp('web', { routes: [{ host: 'web.io' }], balance: 'least-connections' }, 1n);
  expect(countPicks(pool, 5)).toEqual({ b: 5 });
});
