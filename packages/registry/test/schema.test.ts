import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { AppRecordSchema, InstanceRecordSchema, OverrideRecordSchema, RouterStatusRecordSchema } from '../src/schema.js';
import { KeyLayout, hostError } from '../src/keys.js';
import { parseEntry } from '../src/kinds.js';
import {
  MAX_VALUE_BYTES,
  parseAppRecord,
  parseInstanceRecord,
  parseOverrideRecord,
  parseRouterStatusRecord,
} from '../src/parse.js';

const layout = new KeyLayout('/paas');
const json = (v: unknown) => JSON.stringify(v);

describe('app records', () => {
  it('accepts the contract example and unknown fields', () => {
    const r = parseAppRecord(json({ ...AppRecordSchema.examples[0], futureField: { x: 1 } }));
    expect(r.ok).toBe(true);
  });

  it('accepts the tls field of the contract (redirect, hsts, acme)', () => {
    const r = parseAppRecord(json({ routes: [{ host: 'www.mango.com' }], tls: { redirect: true, hsts: 'max-age=31536000', acme: true } }));
    expect(r.ok && r.value.tls).toEqual({ redirect: true, hsts: 'max-age=31536000', acme: true });
  });

  it.each([
    ['not JSON', '{routes:', /not valid JSON/],
    ['missing routes', json({}), /routes/],
    ['routes not an array', json({ routes: 'www' }), /routes/],
    ['upper-case host', json({ routes: [{ host: 'WWW.mango.com' }] }), /routes\.0\.host: .*lower-case/],
    ['host with a bad label', json({ routes: [{ host: 'www.-mango.com' }] }), /routes\.0\.host/],
    ['bare wildcard', json({ routes: [{ host: '*.com' }] }), /wildcard needs a suffix/],
    ['path without slash', json({ routes: [{ path: 'api' }] }), /routes\.0\.path/],
    ['path with a query', json({ routes: [{ path: '/api?x' }] }), /routes\.0\.path/],
    ['unknown balance', json({ routes: [], balance: 'fastest' }), /balance/],
    ['interval too short', json({ routes: [], healthCheck: { intervalMs: 5 } }), /healthCheck\.intervalMs/],
    ['tls.redirect not a boolean', json({ routes: [], tls: { redirect: 'yes' } }), /tls\.redirect/],
    ['empty tls.hsts', json({ routes: [], tls: { hsts: '' } }), /tls\.hsts/],
    ['tls.hsts with a line break', json({ routes: [], tls: { hsts: 'max-age=1\r\nx-evil: 1' } }), /tls\.hsts/],
    ['tls.acme not a boolean', json({ routes: [], tls: { acme: 1 } }), /tls\.acme/],
    ['oversized', json({ routes: [], pad: 'x'.repeat(MAX_VALUE_BYTES) }), /over the 65536-byte limit/],
  ])('rejects %s with a reason', (_name, raw, reason) => {
    const r = parseAppRecord(raw);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(reason);
  });
});

describe('instance records', () => {
  it('accepts the contract example', () => {
    expect(parseInstanceRecord(json(InstanceRecordSchema.examples[0])).ok).toBe(true);
  });

  it.each([
    ['ftp://10.0.0.3:21', /scheme must be http or https/],
    ['http://10.0.0.3', /explicit port/],
    ['http://10.0.0.3:8080/app', /must not have a path/],
    ['http://user:pw@10.0.0.3:8080', /credentials/],
    ['http://10.0.0.3:8080?x=1', /query or fragment/],
    ['not a url', /is not a URL/],
  ])('rejects url %s', (url, reason) => {
    const r = parseInstanceRecord(json({ url, state: 'ready' }));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(reason);
  });

  it('rejects a bad state and a weight out of range', () => {
    expect(parseInstanceRecord(json({ url: 'http://a:1', state: 'up' })).ok).toBe(false);
    expect(parseInstanceRecord(json({ url: 'http://a:1', state: 'ready', weight: 0 })).ok).toBe(false);
    expect(parseInstanceRecord(json({ url: 'http://a:1', state: 'ready', weight: 101 })).ok).toBe(false);
    expect(parseInstanceRecord(json({ url: 'http://a:1', state: 'ready', weight: 1.5 })).ok).toBe(false);
  });

  it('property: any http(s) origin with a port and a valid state/weight is accepted', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('http', 'https'),
        fc.domain(),
        fc.integer({ min: 1, max: 65535 }),
        fc.constantFrom('starting', 'ready', 'draining'),
        fc.integer({ min: 1, max: 100 }),
        (scheme, host, port, state, weight) => {
          const r = parseInstanceRecord(json({ url: `${scheme}://${host}:${port}`, state, weight }));
          return r.ok;
        },
      ),
    );
  });

  it('property: arbitrary JSON never throws and is either accepted or rejected with a reason', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const raw = json(value);
        for (const parse of [parseAppRecord, parseInstanceRecord, parseOverrideRecord, parseRouterStatusRecord]) {
          const r = parse(raw);
          if (!r.ok && r.error.length === 0) return false;
        }
        return true;
      }),
    );
  });

  it('property: arbitrary bytes never throw', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const r = parseEntry(layout, '/paas/instances/a/b', bytes);
        return r.ok || r.error.length > 0;
      }),
    );
  });
});

describe('override records', () => {
  it('accepts both contract examples', () => {
    for (const ex of OverrideRecordSchema.examples) expect(parseOverrideRecord(json(ex)).ok).toBe(true);
  });
  it('rejects both kinds at once, neither, and a status out of range', () => {
    expect(parseOverrideRecord(json({ app: 'x', maintenance: { status: 503, message: '' } })).ok).toBe(false);
    expect(parseOverrideRecord(json({})).ok).toBe(false);
    expect(parseOverrideRecord(json({ maintenance: { status: 99, message: 'x' } })).ok).toBe(false);
    expect(parseOverrideRecord(json({ app: 'Not_A_Name' })).ok).toBe(false);
  });
});

describe('keys', () => {
  it.each([
    ['/paas/apps/mango', { kind: 'app', app: 'mango' }],
    ['/paas/instances/mango/web-1', { kind: 'instance', app: 'mango', id: 'web-1' }],
    ['/paas/overrides/www.mango.com', { kind: 'override', host: 'www.mango.com' }],
    ['/paas/routers/r1', { kind: 'router', id: 'r1' }],
  ])('parses %s', (key, ref) => {
    expect(layout.parse(key)).toEqual({ ok: true, ref });
  });

  it.each([
    ['/paas/apps/Mango', /app name/],
    ['/paas/apps/a/b', /expected apps/],
    ['/paas/instances/mango', /expected instances/],
    ['/paas/instances/mango/-x', /instance id/],
    ['/paas/overrides/*.mango.com', /wildcard is not allowed/],
    ['/paas/other/x', /unknown directory/],
  ])('rejects %s', (key, reason) => {
    const r = layout.parse(key);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(reason);
  });

  it('watches apps/, instances/ and overrides/ but neither routers/ nor rollouts/', () => {
    const { start, end } = layout.watchedRange();
    const inRange = (k: string) => k >= start && k < end;
    expect(['/paas/apps/a', '/paas/instances/a/b', '/paas/overrides/x.com'].every(inRange)).toBe(true);
    expect(['/paas/routers/r1', layout.lock('a'), '/paas/apps', '/paas/zones/x'].some(inRange)).toBe(false);
  });

  it('property: every valid name round-trips through the key layout', () => {
    const name = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/);
    fc.assert(fc.property(name, name, (app, id) => {
      const r = layout.parse(layout.instance(app, id));
      return r.ok && r.ref.kind === 'instance' && r.ref.app === app && r.ref.id === id;
    }));
  });

  it('checks hosts as lower-case DNS names', () => {
    expect(hostError('www.mango.com', false)).toBeUndefined();
    expect(hostError('xn--bcher-kva.example', false)).toBeUndefined();
    expect(hostError('*.mango.com', true)).toBeUndefined();
    expect(hostError('bücher.example', false)).toMatch(/punycode/);
  });
});

describe('docs/CONTRACT.md', () => {
  const doc = readFileSync(new URL('../../../docs/CONTRACT.md', import.meta.url), 'utf8');
  const blocks = [...doc.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]!);

  it('shows exactly the schema examples, and each is valid', () => {
    const [app, instance, overrides] = blocks;
    expect(JSON.parse(app!)).toEqual(AppRecordSchema.examples[0]);
    expect(JSON.parse(instance!)).toEqual(InstanceRecordSchema.examples[0]);
    const lines = overrides!.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toEqual(OverrideRecordSchema.examples);
    expect(parseRouterStatusRecord(json(RouterStatusRecordSchema.examples[0])).ok).toBe(true);
  });

  it('agrees with the steering copy of the contract in everything above the project additions', () => {
    const shared = new URL('../../../../shared/CONTRACT.md', import.meta.url);
    let original: string;
    try {
      original = readFileSync(shared, 'utf8');
    } catch {
      return; // a clone without shared/ beside it: the copy stands alone
    }
    expect(doc.startsWith(original)).toBe(true);
  });
});

describe('record safety (issue 13)', () => {
  it('rejects a route with neither host nor path, and accepts the explicit catch-all', () => {
    const bad = parseAppRecord(json({ routes: [{ host: 'www.kiwi.com' }, { hots: 'www.kiwi.com' }] }));
    expect(bad).toEqual({ ok: false, error: 'routes.1: needs a host or a path (a catch-all is written {"path": "/"})' });
    expect(parseAppRecord(json({ routes: [{ path: '/' }] })).ok).toBe(true);
  });

  it('reports unknown fields by path, at every depth, and none for a clean record', () => {
    const r = parseAppRecord(json({ routes: [{ host: 'a.com', hots: 'x' }], healthCheck: { path: '/h', intervalMS: 5 }, tls: { redirect: true, hst: 'x' }, futur: 1 }));
    expect(r.ok && r.unknown).toEqual(['routes.0.hots', 'healthCheck.intervalMS', 'tls.hst', 'futur']);
    const clean = parseAppRecord(json(AppRecordSchema.examples[0]));
    expect(clean.ok && 'unknown' in clean).toBe(false);
    const inst = parseInstanceRecord(json({ url: 'http://10.0.0.3:8080', state: 'ready', weigth: 2 }));
    expect(inst.ok && inst.unknown).toEqual(['weigth']);
    // An override follows the variant it has.
    const over = parseOverrideRecord(json({ maintenance: { status: 503, message: 'x', retry: 5 } }));
    expect(over.ok && over.unknown).toEqual(['maintenance.retry']);
    expect(parseOverrideRecord(json({ app: 'mango', note: 'canary' })).ok && parseOverrideRecord(json({ app: 'mango', note: 'canary' }))).toMatchObject({ unknown: ['note'] });
  });

  it('passes unknown fields through parseEntry', () => {
    const r = parseEntry(layout, '/paas/apps/mango', json({ routes: [{ path: '/' }], balanse: 'random' }));
    expect(r.ok && r.unknown).toEqual(['balanse']);
  });

  it.each([
    ['instance state', () => parseInstanceRecord(json({ url: 'http://10.0.0.3:8080', state: 'runing' })), 'state: must be one of starting, ready, draining'],
    ['balance', () => parseAppRecord(json({ routes: [{ path: '/' }], balance: 'fastest' })), 'balance: must be one of round-robin, least-connections, random'],
  ])('lists the allowed values of %s', (_name, parse, error) => {
    expect(parse()).toEqual({ ok: false, error });
  });
});
