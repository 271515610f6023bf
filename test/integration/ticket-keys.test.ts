/**
 * The fleet's TLS ticket key in etcd (packages/router/src/listeners/ticket-keys.ts): routers
 * agree on one key, exactly one of them rotates it when it is due, and a record that is not a
 * valid key is replaced. Real etcd; the routers are SharedTicketKeys instances with short periods.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { connectEtcd } from '@paas/registry';
import { SharedTicketKeys } from '../../packages/router/src/listeners/ticket-keys.js';
import { runEtcdctl, sharedEtcdEndpoints, uniquePrefix } from '../harness/etcd.js';
import { waitFor } from '../harness/wait.js';

const etcd = connectEtcd({ endpoints: sharedEtcdEndpoints() });
const quiet = { info: () => undefined, warn: () => undefined };
const running: SharedTicketKeys[] = [];
afterAll(async () => {
  for (const k of running) k.stop();
  await etcd.close();
});

function router(key: string, applied: Buffer[], rotateMs: number, checkMs: number): SharedTicketKeys {
  const k = new SharedTicketKeys(etcd, key, (b) => applied.push(b), quiet, rotateMs, checkMs);
  running.push(k);
  return k;
}

describe('shared ticket keys', () => {
  it('gives every router the same key, and one new key to all once it is due', async () => {
    const key = `${uniquePrefix('tickets')}/tls-ticket-keys`;
    const a: Buffer[] = [];
    const b: Buffer[] = [];
    const c: Buffer[] = [];
    // Three routers start at once: one creates the key, the others read it.
    await Promise.all([router(key, a, 1500, 100).start(), router(key, b, 1500, 100).start(), router(key, c, 1500, 100).start()]);
    expect(a[0]).toHaveLength(48);
    expect(b[0]!.equals(a[0]!)).toBe(true);
    expect(c[0]!.equals(a[0]!)).toBe(true);
    const created = JSON.parse(await runEtcdctl(sharedEtcdEndpoints(), ['get', key, '--print-value-only'])) as { current: string };
    expect(Buffer.from(created.current, 'base64').equals(a[0]!)).toBe(true);
    // Due after 1.5 s: each router applies exactly one new key, the same one.
    await waitFor(() => a.length >= 2 && b.length >= 2 && c.length >= 2, { timeoutMs: 10_000, message: 'a rotation seen by every router' });
    expect(a[1]!.equals(a[0]!)).toBe(false);
    expect(b[1]!.equals(a[1]!)).toBe(true);
    expect(c[1]!.equals(a[1]!)).toBe(true);
    const version = await runEtcdctl(sharedEtcdEndpoints(), ['get', key, '-w', 'json']);
    // Created once, rotated once (no second writer won a race): version 2, unless a second rotation already came due.
    expect(Number((JSON.parse(version) as { kvs: Array<{ version: number }> }).kvs[0]!.version)).toBe(Math.max(a.length, b.length, c.length));
  });

  it('replaces a record that is not a valid key', async () => {
    const key = `${uniquePrefix('tickets')}/tls-ticket-keys`;
    await runEtcdctl(sharedEtcdEndpoints(), ['put', key, '{"current":"c2hvcnQ=","rotatedAt":"2026-01-01T00:00:00Z"}']);
    const applied: Buffer[] = [];
    await router(key, applied, 3_600_000, 60_000).start();
    expect(applied).toHaveLength(1);
    expect(applied[0]).toHaveLength(48);
  });
});
