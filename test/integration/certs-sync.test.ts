/**
 * Certificate records through the router's table feed on a real etcd, in-process so the test
 * sees each applied step: a transaction putting a route and its certificate is applied whole;
 * a bad certificate keeps the last good one; expiry takes a certificate out at its notAfter
 * with what a router started afterwards concludes; exact names beat wildcards. Certificates
 * are real (openssl, test/harness/pki.ts).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connectEtcd, KeyLayout, parseKeyRing, type Etcd, type Mirror, type ParseContext } from '@paas/registry';
import { TableSync } from '../../packages/router/src/records/table-sync.js';
import { uniquePrefix } from '../harness/etcd.js';
import { createCa, type IssuedCert, type IssueOptions, type TestCa } from '../harness/pki.js';
import { waitFor } from '../harness/wait.js';

const endpoints = inject('etcdEndpoints');
const silent = { warn() {}, info() {}, error() {} };
/** One at a time: `openssl ca` keeps a database file that concurrent runs corrupt. */
async function issueAll<T extends IssueOptions[]>(list: [...T]): Promise<{ [K in keyof T]: IssuedCert }> {
  const out: IssuedCert[] = [];
  for (const opts of list) out.push(await ca.issue(opts));
  return out as { [K in keyof T]: IssuedCert };
}
const ctx: ParseContext = { keyRing: parseKeyRing(JSON.stringify({ k1: Buffer.alloc(32, 7).toString('base64') })), now: Date.now };
let etcd: Etcd;
let ca: TestCa;
const mirrors: Mirror[] = [];
const syncs: TableSync[] = [];

beforeAll(async () => {
  etcd = connectEtcd({ endpoints });
  ca = await createCa();
});

afterAll(async () => {
  for (const s of syncs) s.close();
  await Promise.all(mirrors.map((m) => m.close()));
  await etcd?.close();
});

/** A router's table feed on `prefix`, loaded; `onApplied` sees every applied step. */
async function startSync(layout: KeyLayout, onApplied: (sync: TableSync) => void = () => {}): Promise<TableSync> {
  const sync: TableSync = new TableSync(layout, silent, { onApplied: () => onApplied(sync), onRejected() {}, onResync() {}, onConnection() {} }, etcd, ctx);
  const mirror = etcd.mirror(layout.watchedRange(), sync);
  mirrors.push(mirror);
  syncs.push(sync);
  await mirror.start();
  await sync.whenLoaded();
  return sync;
}

const record = (c: IssuedCert) => JSON.stringify({ cert: c.certPem, key: c.keyPem });
const fingerprintOf = (sync: TableSync, name: string) => sync.table.certs.get(name)?.fingerprint;
const rejectedOf = (sync: TableSync, key: string) => sync.rejected().find((r) => r.key === key);
/**
 * What two routers must agree on. Not the revision: other files write the shared etcd, so a
 * router started later lists at a later revision, with no change under this file's prefix.
 */
const view = (sync: TableSync) => ({ digest: sync.digest(), rejected: sync.rejected().map(({ key, revision, kept }) => ({ key, revision, kept })).sort((a, b) => (a.key < b.key ? -1 : 1)) });

async function applied(sync: TableSync, revision: bigint): Promise<void> {
  await waitFor(() => sync.revision >= revision, { timeoutMs: 10_000, message: `revision ${revision} applied` });
}

describe('certificates in the table feed', () => {
  it('applies a transaction putting an app route and its certificate in one step: never the route without it', async () => {
    const layout = new KeyLayout(uniquePrefix('certs-txn'));
    const www = await ca.issue({ dns: ['www.txn.com'] });
    const steps: Array<{ revision: bigint; route: boolean; cert: string | undefined }> = [];
    const sync = await startSync(layout, (s) => steps.push({ revision: s.revision, route: s.table.lookup('www.txn.com', '/') !== undefined, cert: s.table.certs.forHost('www.txn.com')?.name }));
    const { revision } = await etcd.txn([], [
      { put: layout.app('txn'), value: JSON.stringify({ routes: [{ host: 'www.txn.com' }] }) },
      { put: layout.cert('www.txn.com'), value: record(www) },
    ]);
    await applied(sync, revision);
    // Progress notices (other files write the shared etcd) may add steps after it, never before.
    expect(steps.filter((s) => s.revision === revision)).toEqual([{ revision, route: true, cert: 'www.txn.com' }]);
    expect(steps.filter((s) => s.revision < revision).every((s) => !s.route && s.cert === undefined)).toBe(true);
    expect(steps.every((s) => s.route === (s.cert !== undefined))).toBe(true);
  });

  it('keeps the last good certificate after a bad update, as a router started afterwards does', async () => {
    const layout = new KeyLayout(uniquePrefix('certs-lg'));
    const [good, stranger] = await issueAll([
      { dns: ['lg.mango.com'] }, { dns: ['x.mango.com'] }]);
    const key = layout.cert('lg');
    const early = await startSync(layout);
    const goodRev = await etcd.put(key, record(good));
    await applied(early, goodRev);
    const before = fingerprintOf(early, 'lg');
    expect(before).toMatch(/^[0-9a-f]{64}$/);
    const badRev = await etcd.put(key, JSON.stringify({ cert: good.certPem, key: stranger.keyPem }));
    await applied(early, badRev);
    expect(fingerprintOf(early, 'lg')).toBe(before);
    // kept is K, "the key as of revision K" with K + 1 the first rejected version (docs/CONTRACT.md):
    // goodRev only when no other file wrote the shared etcd between the two puts.
    expect(rejectedOf(early, key)).toEqual({ key, revision: String(badRev), error: 'key does not match the leaf certificate', kept: String(badRev - 1n) });

    const late = await startSync(layout);
    expect(fingerprintOf(late, 'lg')).toBe(before);
    expect(view(late)).toEqual(view(early));

    // keyEnc that does not decrypt is one more bad version: the same certificate stays.
    const enc = JSON.parse(JSON.stringify({ cert: good.certPem, keyEnc: { kid: 'k1', alg: 'A256GCM', iv: Buffer.alloc(12).toString('base64'), data: Buffer.alloc(40).toString('base64') } })) as object;
    const encRev = await etcd.put(key, JSON.stringify(enc));
    await Promise.all([applied(early, encRev), applied(late, encRev)]);
    expect(rejectedOf(early, key)?.error).toBe('keyEnc: does not decrypt with key "k1" (another key, or altered data)');
    expect([fingerprintOf(early, 'lg'), fingerprintOf(late, 'lg')]).toEqual([before, before]);
    expect(view(late)).toEqual(view(early));
  });

  it('at notAfter takes a served or kept certificate out (or back to an earlier version valid now), as a router started afterwards finds', async () => {
    const layout = new KeyLayout(uniquePrefix('certs-exp'));
    // Far enough ahead that issuing and writing finish first on a loaded machine (checked below).
    const notAfter = new Date(Math.ceil((Date.now() + 8000) / 1000) * 1000);
    const [served, kept, stays, stranger, older, newer] = await issueAll([
      { dns: ['served.exp.com'], notAfter },
      { dns: ['kept.exp.com'], notAfter },
      { dns: ['stays.exp.com'] },
      { dns: ['x.exp.com'] },
      { dns: ['back.exp.com'], notAfter: new Date(Date.now() + 30 * 86_400_000) },
      { dns: ['back.exp.com'], notAfter },
    ]);
    const early = await startSync(layout);
    await etcd.put(layout.cert('served'), record(served));
    await etcd.put(layout.cert('kept'), record(kept));
    await etcd.put(layout.cert('stays'), record(stays));
    // "back": a version valid for 30 days, then one that expires first.
    const olderRev = await etcd.put(layout.cert('back'), record(older));
    const newerRev = await etcd.put(layout.cert('back'), record(newer));
    const badRev = await etcd.put(layout.cert('kept'), JSON.stringify({ cert: kept.certPem, key: stranger.keyPem }));
    await applied(early, badRev);
    expect(Date.now()).toBeLessThan(notAfter.getTime());
    expect([...early.table.certs.all()].map((c) => c.name).sort()).toEqual(['back', 'kept', 'served', 'stays']);
    const backBefore = fingerprintOf(early, 'back');
    const revision = early.revision;

    await waitFor(() => early.table.certs.size === 2 && fingerprintOf(early, 'back') !== backBefore, { timeoutMs: 20_000, message: 'the certificates expired' });
    expect(Date.now()).toBeGreaterThanOrEqual(notAfter.getTime());
    expect(early.revision).toBe(revision);
    expect(early.table.certs.forHost('stays.exp.com')?.name).toBe('stays');
    expect(early.table.certs.forHost('served.exp.com')).toBeUndefined();
    expect(early.table.certs.forHost('back.exp.com')?.notAfter).toBeGreaterThan(Date.now() + 29 * 86_400_000);
    const expired = `cert: the leaf expired at ${notAfter.toISOString()}`;
    expect(rejectedOf(early, layout.cert('served'))).toMatchObject({ error: expired, kept: null });
    expect(rejectedOf(early, layout.cert('kept'))).toMatchObject({ revision: String(badRev), error: 'key does not match the leaf certificate', kept: null });
    // The contract's K: the key as of the revision before its first rejected version. Other files
    // may write to the shared etcd between the two puts, so K is newerRev - 1, not always olderRev.
    expect(olderRev).toBeLessThan(newerRev);
    expect(rejectedOf(early, layout.cert('back'))).toEqual({ key: layout.cert('back'), revision: String(newerRev), error: expired, kept: String(newerRev - 1n) });

    const late = await startSync(layout);
    expect(view(late)).toEqual(view(early));
  });

  it('an expired certificate written over a good one is rejected and the good one kept, on every router', async () => {
    const layout = new KeyLayout(uniquePrefix('certs-put-exp'));
    const [good, old] = await issueAll([
      { dns: ['p.exp.com'] },
      { dns: ['p.exp.com'], notBefore: new Date(Date.now() - 10 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) },
    ]);
    const early = await startSync(layout);
    await etcd.put(layout.cert('p'), record(good));
    const rev = await etcd.put(layout.cert('p'), record(old));
    await applied(early, rev);
    expect(early.table.certs.get('p')?.notAfter).toBeGreaterThan(Date.now());
    expect(rejectedOf(early, layout.cert('p'))).toMatchObject({ revision: String(rev), error: expect.stringMatching(/^cert: the leaf expired at /), kept: String(rev - 1n) });
    const late = await startSync(layout);
    expect(view(late)).toEqual(view(early));
  });

  it('serves a handshake name from the exact certificate first, then the later-expiring wildcard', async () => {
    const layout = new KeyLayout(uniquePrefix('certs-pick'));
    const [exact, wildShort, wildLong, deep] = await issueAll([
      { dns: ['www.pick.com'], notAfter: new Date(Date.now() + 10 * 86_400_000) },
      { dns: ['*.pick.com'], notAfter: new Date(Date.now() + 30 * 86_400_000) },
      { dns: ['*.pick.com', 'pick.com'], notAfter: new Date(Date.now() + 60 * 86_400_000) },
      { dns: ['*.b.pick.com'] },
    ]);
    const sync = await startSync(layout);
    await etcd.put(layout.cert('exact'), record(exact));
    await etcd.put(layout.cert('wild-short'), record(wildShort));
    await etcd.put(layout.cert('wild-long'), record(wildLong));
    const rev = await etcd.put(layout.cert('deep'), record(deep));
    await applied(sync, rev);
    const pick = (host: string) => sync.table.certs.forHost(host)?.name;
    expect([pick('www.pick.com'), pick('api.pick.com'), pick('pick.com'), pick('a.b.pick.com'), pick('x.y.z.pick.com')]).toEqual(['exact', 'wild-long', 'wild-long', 'deep', undefined]);
    const delRev = await etcd.delete(layout.cert('wild-long'));
    await applied(sync, delRev);
    expect([pick('api.pick.com'), pick('pick.com')]).toEqual(['wild-short', undefined]);
  });
});
