/**
 * The key kinds are declared once (src/kinds.ts); routers watch one key range, so which
 * directories sort inside it decides what wakes a router.
 */
import { describe, expect, it } from 'vitest';
import { KeyLayout, sortsInsideWatchedRange } from '../src/keys.js';
import { KEY_KINDS, parseRecord, RECORD_KINDS } from '../src/kinds.js';

const layout = new KeyLayout('/paas');
const { start, end } = layout.watchedRange();
const inRange = (key: string) => key >= start && key < end;

describe('the watched key range', () => {
  it('is [apps/, overrides0): from the first record directory to the end of the last', () => {
    expect({ start, end }).toEqual({ start: '/paas/apps/', end: '/paas/overrides0' });
  });

  // Directories of the contract (shared/CONTRACT.md) and its second part (CONTRACT-EDGE.md),
  // declared here or not yet, with the side of the range they fall on.
  it.each([
    ['acme', false], // ACME state: sorts before apps/, read on demand, never wakes a router
    ['apps', true],
    ['certs', true], // apps < certs < instances: a router would see every certificate write
    ['instances', true],
    ['locks', true], // why deployer locks live under rollouts/ instead
    ['overrides', true],
    ['rollouts', false],
    ['routers', false],
    ['tunnel-tokens', false], // sorts after overrides/ (and routers/): watching it needs a second range
    ['tunnels', false],
  ])('%s/ sorts inside it: %s', (dir, inside) => {
    expect(sortsInsideWatchedRange(dir)).toBe(inside);
    expect(inRange(`/paas/${dir}/x`)).toBe(inside);
    expect(inRange(`/paas/${dir}/x/y`)).toBe(inside);
  });

  it('holds every record directory and no other declared one', () => {
    const records = new Set<string>(Object.values(RECORD_KINDS).map((k) => k.dir));
    for (const k of KEY_KINDS) expect([k.dir, sortsInsideWatchedRange(k.dir)]).toEqual([k.dir, records.has(k.dir)]);
  });
});

describe('kind declarations', () => {
  it('classify each key by its directory, and parse values of record kinds only', () => {
    expect(KEY_KINDS.map((k) => k.dir).sort()).toEqual(['acme', 'apps', 'certs', 'instances', 'overrides', 'rollouts', 'routers']);
    const app = layout.parse('/paas/apps/mango');
    expect(app.ok && parseRecord(app.ref, '{"routes":[]}')).toEqual({ ok: true, value: { ref: { kind: 'app', app: 'mango' }, value: { routes: [] } } });
    const router = layout.parse('/paas/routers/r1');
    expect(router.ok && parseRecord(router.ref, '{}')).toEqual({ ok: false, error: 'router keys are not routing records' });
    expect(layout.parse('/paas/acme/locks/www.mango.com')).toEqual({ ok: true, ref: { kind: 'acme', path: 'locks/www.mango.com' } });
    expect(layout.parse('/paas/acme/')).toEqual({ ok: false, error: 'expected acme/<kind>/<name>' });
  });
});
