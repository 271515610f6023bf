import { describe, expect, it } from 'vitest';
import { RECORD_KINDS } from '@paas/registry';
import { tableAdapters } from '../src/records/table-adapters.js';
import { RoutingTable } from '../src/table/routing-table.js';

describe('table adapters', () => {
  it('exist for exactly the record kinds the registry declares', () => {
    expect(Object.keys(tableAdapters(new RoutingTable())).sort()).toEqual(Object.keys(RECORD_KINDS).sort());
  });

  it('set, find, sweep and delete a record of each kind', () => {
    const table = new RoutingTable();
    const a = tableAdapters(table);
    const app = a.app.set({ ref: { kind: 'app', app: 'mango' }, value: { routes: [{ host: 'm.com' }] } }, 5n, undefined, 5n);
    const inst = a.instance.set({ ref: { kind: 'instance', app: 'mango', id: 'm1' }, value: { url: 'http://127.0.0.1:7001', state: 'ready' } }, 6n, undefined, 6n);
    const ovr = a.override.set({ ref: { kind: 'override', host: 'o.com' }, value: { app: 'mango' } }, 7n, undefined, 7n);
    expect(a.app.stamp({ kind: 'app', app: 'mango' })).toBe(app);
    expect(a.instance.stamp({ kind: 'instance', app: 'mango', id: 'm1' })).toBe(inst);
    expect(a.override.stamp({ kind: 'override', host: 'o.com' })).toBe(ovr);
    expect(a.app.sameCreation(app, 5n)).toBe(true);
    expect(a.app.sameCreation(app, 9n)).toBe(false);
    for (const s of [app, inst, ovr]) s.listed = 1;
    ovr.listed = 2;
    const gone: unknown[] = [];
    for (const adapter of Object.values(a)) adapter.sweep(2, (s) => gone.push(s));
    expect(gone).toEqual([app, inst]);
    expect(table.lookup('m.com', '/')).toBeUndefined();
    expect(table.lookup('o.com', '/')).toMatchObject({ kind: 'app', name: 'mango' });
    a.override.delete({ kind: 'override', host: 'o.com' });
    expect(a.override.stamp({ kind: 'override', host: 'o.com' })).toBeUndefined();
    expect(table.lookup('o.com', '/')).toBeUndefined();
  });

  it('put certificates into the table\'s CertIndex, watched for expiry, swept like the others', () => {
    const table = new RoutingTable();
    const served: number[] = [];
    const a = tableAdapters(table, { certServed: (notAfter) => served.push(notAfter) });
    const value = { certPem: 'C', keyPem: 'K', hosts: ['*.m.com'], notAfter: 1_900_000_000_000, fingerprint: 'ab', source: 'acme' };
    const stamp = a.cert.set({ ref: { kind: 'cert', name: 'wild' }, value }, 8n, undefined, 9n);
    expect(a.cert.stamp({ kind: 'cert', name: 'wild' })).toBe(stamp);
    expect(stamp).toMatchObject({ createRevision: 8n, modRevision: 9n });
    expect([a.cert.sameCreation(stamp, 8n), a.cert.sameCreation(stamp, 10n)]).toEqual([true, false]);
    expect(table.certs.forHost('a.m.com')).toMatchObject({ name: 'wild', createRevision: 8n, source: 'acme', notAfter: value.notAfter });
    expect(served).toEqual([value.notAfter]);
    stamp.listed = 1;
    const gone: unknown[] = [];
    a.cert.sweep(2, (s) => gone.push(s));
    expect(gone).toEqual([stamp]);
    expect(table.certs.size).toBe(0);
  });
});
