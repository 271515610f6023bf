/**
 * LeasedKey.create() against a real etcd: a key one writer owns. A second writer is refused while
 * the first holds it, gets it once the first's lease is gone, and the first, after losing its
 * lease, never overwrites the key the second created meanwhile.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { connectEtcd, KeyTakenError, type Etcd } from '@paas/registry';
import { runEtcdctl, sharedEtcdEndpoints, uniquePrefix } from '../harness/etcd.js';
import { waitFor } from '../harness/wait.js';

const clients: Etcd[] = [];
function client(): Etcd {
  const etcd = connectEtcd({ endpoints: sharedEtcdEndpoints() });
  clients.push(etcd);
  return etcd;
}
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

async function refusal(p: Promise<unknown>): Promise<KeyTakenError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(KeyTakenError);
  return err as KeyTakenError;
}

describe('LeasedKey.create', () => {
  test('a second writer is refused, naming the holder, and the first keeps its key; free once the first revokes', async () => {
    const key = `${uniquePrefix('exclusive')}/routers/r1`;
    const a = client().leasedKey(key, 10);
    const b = client().leasedKey(key, 10);
    await a.create('{"from":"a"}');
    const held = (await clients[0]!.get(key))!;
    expect(held.lease).not.toBe('0');

    const err = await refusal(b.create('{"from":"b"}'));
    expect(err.key).toBe(key);
    expect(err.holder.lease).toBe(held.lease);
    expect(err.holder.value.toString()).toBe('{"from":"a"}');
    expect(err.message).toBe(`${key} exists: created at revision ${held.createRevision} by another writer (lease ${held.lease})`);
    // b stays refused: set() does not write either.
    await refusal(b.set('{"from":"b again"}'));

    await a.set('{"from":"a","n":2}');
    const now = (await clients[0]!.get(key))!;
    expect(now.value.toString()).toBe('{"from":"a","n":2}');
    expect(now.createRevision).toBe(held.createRevision);

    await a.close({ revoke: true });
    expect(await clients[0]!.get(key)).toBeUndefined();
    const c = client().leasedKey(key, 10);
    await c.create('{"from":"c"}');
    expect((await clients[0]!.get(key))!.value.toString()).toBe('{"from":"c"}');
    await c.close({ revoke: true });
  });

  test('a key on no lease (written by hand) refuses too, with lease 0', async () => {
    const key = `${uniquePrefix('exclusive-hand')}/routers/r1`;
    await client().put(key, '{}');
    const err = await refusal(client().leasedKey(key, 10).create('{"from":"a"}'));
    expect(err.holder.lease).toBe('0');
    expect(err.message).toContain('(on no lease)');
  });

  test('deleted by hand while its lease lives: the owner writes it again', async () => {
    const key = `${uniquePrefix('exclusive-del')}/routers/r1`;
    const a = client().leasedKey(key, 10);
    await a.create('{"n":1}');
    await clients[0]!.delete(key);
    await a.set('{"n":2}');
    expect((await clients[0]!.get(key))!.value.toString()).toBe('{"n":2}');
    await a.close({ revoke: true });
  });

  test('after its lease is lost, the owner does not overwrite what another writer created meanwhile', async () => {
    const key = `${uniquePrefix('exclusive-lost')}/routers/r1`;
    const etcd = client();
    const a = etcd.leasedKey(key, 2);
    await a.create('{"from":"a"}');
    const first = (await etcd.get(key))!;
    // The lease goes (as when etcd could not hear from a for its TTL) and the key with it; b
    // takes the id before a notices.
    await runEtcdctl(sharedEtcdEndpoints(), ['lease', 'revoke', BigInt(first.lease).toString(16)]);
    const b = client().leasedKey(key, 10);
    await b.create('{"from":"b"}');
    const bs = (await etcd.get(key))!;

    // a notices the lost lease within TTL/3 and repairs: it must find the key taken.
    const err = await waitFor(
      () =>
        a.set('{"from":"a","n":2}').then(
          () => undefined,
          (e: unknown) => (e instanceof KeyTakenError ? e : undefined),
        ),
      { timeoutMs: 10_000, message: 'a to find its key taken' },
    );
    expect(err.holder.lease).toBe(bs.lease);
    const now = (await etcd.get(key))!;
    expect(now.value.toString()).toBe('{"from":"b"}');
    expect(now.modRevision).toBe(bs.modRevision);
    await a.close({ revoke: true });
    expect((await etcd.get(key))!.value.toString()).toBe('{"from":"b"}');
    await b.close({ revoke: true });
  });
});
