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
    expect(KEY_KINDS.map((k) => k.dir).sort()).toEqual(['acme', 'apps', 'certs', 'instances', 'overrides', 'rollouts', 'routers', 'tunnel-tokens', 'tunnels']);
    const app = layout.parse('/paas/apps/mango');
    expect(app.ok && parseRecord(app.ref, '{"routes":[]}')).toEqual({ ok: true, value: { ref: { kind: 'app', app: 'mango' }, value: { routes: [] } } });
    const router = layout.parse('/paas/routers/r1');
    expect(router.ok && parseRecord(router.ref, '{}')).toEqual({ ok: false, error: 'router keys are not routing records' });
    expect(layout.parse('/paas/acme/locks/www.mango.com')).toEqual({ ok: true, ref: { kind: 'acme', path: 'locks/www.mango.com' } });
    expect(layout.parse('/paas/acme/')).toEqual({ ok: false, error: 'expected acme/<kind>/<name>' });
  });
});

describe('tunnel keys and instance urls', () => {
  it('classify tunnel-tokens/<app>/<token-id> and tunnels/<app>/<id>/<router-id>, naming a bad name', () => {
    expect(layout.parse('/paas/tunnel-tokens/mango/t0a1b2c3d4e')).toEqual({ ok: true, ref: { kind: 'tunnel-token', app: 'mango', tokenId: 't0a1b2c3d4e' } });
    expect(layout.parse('/paas/tunnels/mango/web-1/r1')).toEqual({ ok: true, ref: { kind: 'tunnel', app: 'mango', id: 'web-1', router: 'r1' } });
    expect(layout.parse('/paas/tunnels/mango/web-1')).toEqual({ ok: false, error: 'expected tunnels/<app>/<id>/<router-id>' });
    expect(layout.parse('/paas/tunnel-tokens/Mango/t1')).toMatchObject({ ok: false, error: expect.stringContaining('app name "Mango"') });
  });

  it('accept tunnel://<the instance id> and reject a tunnel url naming another instance', () => {
    const ref = layout.parse('/paas/instances/mango/web-1');
    expect(ref.ok && parseRecord(ref.ref, '{"url":"tunnel://web-1","state":"ready"}')).toMatchObject({ ok: true });
    expect(ref.ok && parseRecord(ref.ref, '{"url":"tunnel://web-2","state":"ready"}')).toEqual({ ok: false, error: 'url: "tunnel://web-2" must be tunnel://web-1 (the instance\'s own id)' });
    expect(ref.ok && parseRecord(ref.ref, '{"url":"tunnel://Web_1","state":"ready"}')).toMatchObject({ ok: false, error: expect.stringContaining('tunnel://<its instance id>') });
  });
});
