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
    const app = a.app.set({ ref: { kind: 'app', app: 'mango' }, value: { routes: [{ host: 'm.com' }] } }, 5n, undefined);
    const inst = a.instance.set({ ref: { kind: 'instance', app: 'mango', id: 'm1' }, value: { url: 'http://127.0.0.1:7001', state: 'ready' } }, 6n, undefined);
    const ovr = a.override.set({ ref: { kind: 'override', host: 'o.com' }, value: { app: 'mango' } }, 7n, undefined);
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
});
