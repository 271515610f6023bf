/**
 * The fleet-wide limit on new ACME orders (--acme-orders-per-minute), against the real shared
 * etcd: slots are lease-backed keys created only if absent, so routers counting at once never
 * take more than the limit, and a dead router's slots free up when its lease expires.
 */
import { afterAll, describe, expect, inject, it } from 'vitest';
import { connectEtcd, KeyLayout } from '@paas/registry';
import { OrderSlots } from '../../packages/router/src/acme/order-slots.js';
import { uniquePrefix } from '../harness/etcd.js';
import { waitFor } from '../harness/wait.js';

const endpoints = inject('etcdEndpoints');
const layout = new KeyLayout(uniquePrefix('acme-slots'));
const clients = [connectEtcd({ endpoints }), connectEtcd({ endpoints }), connectEtcd({ endpoints })];
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
});

describe('order slots', () => {
  it('three routers asking at once for 8 orders (one first) with a limit of 5: exactly 5 granted; a dead router\'s slots free up with its lease', async () => {
    const slots = clients.map((c, i) => new OrderSlots(c, layout, 5, `r${i}`, 2));
    expect(await slots[2]!.take()).toBe(true);
    const asks = await Promise.all([0, 1, 2, 0, 1, 2, 0].map((i) => slots[i]!.take()));
    expect(asks.filter(Boolean)).toHaveLength(4);
    expect(await slots[0]!.take()).toBe(false);
    const { entries } = await clients[0]!.listPrefix(`${layout.acmeDir}order-slots/`);
    expect(entries).toHaveLength(5);

    // Router 2 dies (its client closes without revoking): its slots go after the 2 s lease TTL.
    const held = entries.filter((e) => e.value.toString() === 'r2').length;
    slots[2]!.close();
    await clients[2]!.close();
    expect(held).toBeGreaterThanOrEqual(1);
    await waitFor(async () => (await clients[0]!.listPrefix(`${layout.acmeDir}order-slots/`)).entries.length === 5 - held, { timeoutMs: 15_000, message: 'r2\'s slots to expire' });
    expect(await slots[0]!.take()).toBe(true);
    slots[0]!.close();
    slots[1]!.close();
  }, 30_000);
});
