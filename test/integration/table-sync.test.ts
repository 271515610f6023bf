/**
 * The router's records → table feed on a real etcd, in-process so the test can see each
 * application: a multi-key transaction arrives as one revision and is applied in one step.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connectEtcd, KeyLayout, type Etcd, type Mirror } from '@paas/registry';
import { TableSync } from '../../packages/router/src/records/table-sync.js';
import { uniquePrefix } from '../harness/etcd.js';
import { waitFor } from '../harness/wait.js';

const endpoints = inject('etcdEndpoints');
const prefix = uniquePrefix('sync');
const layout = new KeyLayout(prefix);
const silent = { warn() {}, info() {}, error() {} };
let etcd: Etcd;
let mirror: Mirror;
const applied: Array<{ kind: string; revision: bigint; hosts: string[] }> = [];
let sync: TableSync;

const hostsServed = () => ['a.example.com', 'b.example.com', 'c.example.com'].filter((h) => sync.table.lookup(h, '/') !== undefined);

beforeAll(async () => {
  etcd = connectEtcd({ endpoints });
  for (let i = 0; i < 30; i++) await etcd.put(layout.app(`pre-${i}`), JSON.stringify({ routes: [{ host: `pre-${i}.example.com` }] }));
  sync = new TableSync(layout, silent, {
    onApplied: (kind) => applied.push({ kind, revision: sync.revision, hosts: hostsServed() }),
    onRejected() {},
    onResync() {},
    onConnection() {},
  }, etcd);
  mirror = etcd.mirror({ ...layout.watchedRange(), pageSize: 7 }, sync);
  await mirror.start();
});

afterAll(async () => {
  await mirror?.close();
  await etcd?.close();
});

describe('table sync on a real etcd', () => {
  it('loads every record of the prefix at one revision, across pages', () => {
    expect(applied[0]?.kind).toBe('snapshot');
    for (let i = 0; i < 30; i++) expect(sync.table.lookup(`pre-${i}.example.com`, '/')).toBeDefined();
  });

  it('applies a three-key transaction as one step: no state in between is ever visible', async () => {
    const before = applied.length;
    const { revision } = await etcd.txn([], ['a', 'b', 'c'].map((h) => ({ put: layout.app(`txn-${h}`), value: JSON.stringify({ routes: [{ host: `${h}.example.com` }] }) })));
    await waitFor(() => sync.revision >= revision, { timeoutMs: 5000, message: `revision ${revision} applied` });
    const steps = applied.slice(before);
    expect(steps).toEqual([{ kind: 'revision', revision, hosts: ['a.example.com', 'b.example.com', 'c.example.com'] }]);
  });

  it('ignores writes outside the watched directories (router status records)', async () => {
    const revBefore = sync.revision;
    await etcd.put(layout.router('someone'), JSON.stringify({ revision: '1', digest: 'x', routes: 0, rejected: [], inflight: {} }));
    const { revision } = await etcd.txn([], [{ put: layout.app('marker'), value: JSON.stringify({ routes: [] }) }]);
    await waitFor(() => sync.revision >= revision, { timeoutMs: 5000, message: 'marker applied' });
    expect(sync.rejected()).toEqual([]);
    expect(applied.filter((a) => a.revision > revBefore && a.revision < revision)).toEqual([]);
  });
});
