/**
 * paas-deploy table / diff as an operator runs them (the built bin) against a real etcd of this
 * file's own (the last test compacts it), with records written through the registry's etcd
 * wrapper and etcdctl, and a real router whose reported digest the table must match.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, onTestFinished, test } from 'vitest';
import { connectEtcd, KeyLayout, type Etcd } from '@paas/registry';
import { startEtcd, uniquePrefix, type EtcdProcess } from '../harness/etcd.js';
import { createCa, type TestCa } from '../harness/pki.js';
import { processes, startRouter } from '../harness/processes.js';
import { waitFor } from '../harness/wait.js';

const BIN = fileURLToPath(new URL('../../packages/deployer/bin/paas-deploy.js', import.meta.url));

let etcdServer: EtcdProcess;
let etcd: Etcd;
let ca: TestCa;

beforeAll(async () => {
  etcdServer = await startEtcd();
  etcd = connectEtcd({ endpoints: etcdServer.endpoints });
  ca = await createCa();
});

afterAll(async () => {
  await etcd?.close();
  await etcdServer?.cleanup();
});

async function run(prefix: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = processes.spawn(process.execPath, [BIN, ...args], {
    name: `paas-deploy ${args[0]}`,
    env: { ETCD_ENDPOINTS: etcdServer.endpoints.join(','), PAAS_PREFIX: prefix },
  });
  const { code } = await p.exited;
  return { code, stdout: p.stdout.join('\n'), stderr: p.stderr.join('\n') };
}

async function json<T>(prefix: string, args: string[]): Promise<T> {
  const r = await run(prefix, [...args, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as T;
}

const put = (key: string, value: unknown) => etcd.put(key, typeof value === 'string' ? value : JSON.stringify(value));
const certRecord = async (dns: string[]) => {
  const c = await ca.issue({ dns });
  return JSON.stringify({ cert: c.certPem, key: c.keyPem });
};

interface TableJson {
  revision: string;
  digest: string;
  routes: { host: string; path: string; app: string; instances: { id: string; state: string; weight: number }[] }[];
  overrides: object[];
  certificates: { name: string; hosts: string[]; fingerprint: string; notAfter: string }[];
  rejected: { key: string; error: string; kept?: string | null }[];
}

describe('paas-deploy table', () => {
  test('at a past revision: the old routes, the rejected record with its reason, the digest the router reported then; --host limits it', async () => {
    const prefix = uniquePrefix('history-table');
    const layout = new KeyLayout(prefix);
    await put(layout.app('mango'), { routes: [{ host: 'www.mango.com' }, { host: '*.mango.com', path: '/api' }] });
    await put(layout.instance('mango', 'm1'), { url: 'http://127.0.0.1:7001', state: 'ready' });
    await put(layout.app('kiwi'), { routes: [{ host: 'www.kiwi.com' }] });
    await put(layout.instance('kiwi', 'k1'), { url: 'http://127.0.0.1:7101', state: 'ready', weight: 5 });
    // m1 gets a bad value: the router keeps its last good one (as of the revision before).
    const bad = await put(layout.instance('mango', 'm1'), { url: 'ftp://127.0.0.1:7001', state: 'ready' });
    const r1 = await put(layout.app('plum'), { routes: [{ hots: 'www.plum.com' }] });

    const router = await startRouter({ etcdEndpoints: etcdServer.endpoints, prefix, id: 'h1' });
    onTestFinished(() => router.proc.stop());
    const reported = await waitFor(async () => {
      const e = await etcd.get(layout.router('h1'));
      const s = e && (JSON.parse(e.value.toString()) as { revision: string; digest: string });
      return s && BigInt(s.revision) >= r1 ? s : undefined;
    }, { timeoutMs: 20_000, message: 'router h1 to report the revision' });
    await router.proc.stop();

    // Later: kiwi goes, a new app comes.
    await etcd.delete(layout.app('kiwi'));
    await etcd.delete(layout.instance('kiwi', 'k1'));
    await put(layout.app('fig'), { routes: [{ host: 'www.fig.com' }] });

    const t = await json<TableJson>(prefix, ['table', '--at', String(r1)]);
    expect(t.revision).toBe(String(r1));
    expect(t.digest).toBe(reported.digest);
    expect(t.routes.map((r) => [r.host, r.path, r.app, r.instances.map((i) => `${i.id}:${i.state}:${i.weight}`).join(',')])).toEqual([
      ['www.kiwi.com', '/', 'kiwi', 'k1:ready:5'],
      ['www.mango.com', '/', 'mango', 'm1:ready:1'],
      ['*.mango.com', '/api', 'mango', 'm1:ready:1'],
    ]);
    expect(t.rejected).toEqual([
      { key: layout.app('plum'), revision: String(r1), error: 'routes.0: needs a host or a path (a catch-all is written {"path": "/"})', kept: null },
      { key: layout.instance('mango', 'm1'), revision: String(bad), error: 'url: scheme must be http or https, not ftp', kept: String(bad - 1n) },
    ]);

    const text = await run(prefix, ['table', '--at', String(r1)]);
    expect(text.code, text.stderr).toBe(0);
    console.log(text.stdout);
    expect(text.stdout).toContain(`routing table of ${prefix} at revision ${r1}`);
    expect(text.stdout).toMatch(/www\.kiwi\.com\s+\/\s+kiwi\s+k1\s+ready\s+5\s+http:\/\/127\.0\.0\.1:7101/);
    expect(text.stdout).toMatch(new RegExp(`${layout.app('plum')}\\s+${r1}\\s+nothing\\s+routes\\.0: needs a host or a path`));
    expect(text.stdout).not.toContain('www.fig.com');

    const now = await json<TableJson>(prefix, ['table']);
    expect(now.routes.map((r) => r.host)).toEqual(['www.fig.com', 'www.mango.com', '*.mango.com']);

    // --host: the routes a request for that host may take, most specific first.
    const host = await json<TableJson>(prefix, ['table', '--at', String(r1), '--host', 'shop.mango.com']);
    expect(host.routes.map((r) => `${r.host}${r.path}`)).toEqual(['*.mango.com/api']);
    const exact = await json<TableJson>(prefix, ['table', '--at', String(r1), '--host', 'www.kiwi.com']);
    expect(exact.routes.map((r) => `${r.host}${r.path}:${r.app}`)).toEqual(['www.kiwi.com/:kiwi']);
  });
});

describe('paas-deploy table --at TIME', () => {
  test("a time is the newest revision whose last router status write is at or before it; diff between two times", async () => {
    const prefix = uniquePrefix('history-time');
    const layout = new KeyLayout(prefix);
    await put(layout.app('mango'), { routes: [{ host: 'www.mango.com' }] });
    const rA = await put(layout.instance('mango', 'm1'), { url: 'http://127.0.0.1:7001', state: 'ready' });
    const router = await startRouter({ etcdEndpoints: etcdServer.endpoints, prefix, id: 't1', extraArgs: ['--lease-ttl', '3s'] });
    onTestFinished(() => router.proc.stop());
    const status = async () => {
      const e = await etcd.get(layout.router('t1'));
      return e && { ...(JSON.parse(e.value.toString()) as { revision: string; updatedAt: string }), modRevision: e.modRevision };
    };
    await waitFor(async () => BigInt((await status())?.revision ?? '0') >= rA, { timeoutMs: 20_000, message: 'router t1 to apply m1' });
    const t1 = Date.now();
    // A status write after t1 (the heartbeat) before the next change: every write dated at or
    // before t1 is then older than that change.
    await waitFor(async () => Date.parse((await status())?.updatedAt ?? '') > t1, { timeoutMs: 20_000, message: 'a status write after t1' });
    const rB = await put(layout.instance('mango', 'm1'), { url: 'http://127.0.0.1:7001', state: 'draining' });
    await waitFor(async () => BigInt((await status())?.revision ?? '0') >= rB, { timeoutMs: 20_000, message: 'router t1 to apply draining' });
    const t2 = Date.now();

    const at1 = await json<TableJson & { dated: { time: string; revision: string; last: { router: string; updatedAt: string; revision: string }; next: { updatedAt: string } | null } }>(prefix, ['table', '--at', new Date(t1).toISOString()]);
    expect(BigInt(at1.revision)).toBeGreaterThanOrEqual(rA);
    expect(BigInt(at1.revision)).toBeLessThan(rB);
    expect(at1.routes[0]!.instances.map((i) => i.state)).toEqual(['ready']);
    expect(at1.dated.last.router).toBe('t1');
    expect(Date.parse(at1.dated.last.updatedAt)).toBeLessThanOrEqual(t1);
    expect(Date.parse(at1.dated.next!.updatedAt)).toBeGreaterThan(t1);
    const at2 = await json<TableJson>(prefix, ['table', '--at', new Date(t2).toISOString()]);
    expect(at2.routes[0]!.instances.map((i) => i.state)).toEqual(['draining']);

    const text = await run(prefix, ['diff', new Date(t1).toISOString(), new Date(t2).toISOString()]);
    expect(text.code, text.stderr).toBe(0);
    console.log(text.stdout);
    const lines = text.stdout.split('\n');
    expect(lines[0]).toBe(`routing of ${prefix} from revision ${at1.revision} to ${at2.revision}`);
    expect(lines[1]).toMatch(new RegExp(`^${new Date(t1).toISOString()} is revision ${at1.revision}: router t1 wrote its status at \\S+ \\(revision ${at1.revision}\\); next, router t1 wrote its status at`));
    expect(lines.slice(3)).toEqual(['www.mango.com', '  ~ instance mango/m1: state ready -> draining']);

    const future = await run(prefix, ['table', '--at', new Date(Date.now() + 3_600_000).toISOString()]);
    expect(future.code).toBe(1);
    expect(future.stderr).toMatch(/^paas-deploy: table failed: \S+ is in the future \(it is \S+\)$/);
    const before = await run(prefix, ['table', '--at', '2001-01-01T00:00:00Z']);
    expect(before.code).toBe(1);
    expect(before.stderr).toMatch(/^paas-deploy: table failed: cannot date 2001-01-01T00:00:00.000Z: no router status record exists at revision \d+ \(no router was live before \S+, revision \d+\); give a revision instead$/);
  });
});

describe('paas-deploy diff', () => {
  test('an added route, a removed instance, a state change to draining, an override added, a certificate replaced', async () => {
    const prefix = uniquePrefix('history-diff');
    const layout = new KeyLayout(prefix);
    await put(layout.app('mango'), { routes: [{ host: 'www.mango.com' }] });
    await put(layout.instance('mango', 'm1'), { url: 'http://127.0.0.1:7001', state: 'ready' });
    await put(layout.instance('mango', 'm2'), { url: 'http://127.0.0.1:7002', state: 'ready' });
    const r1 = await put(layout.cert('www.mango.com'), await certRecord(['www.mango.com']));
    const before = await json<TableJson>(prefix, ['table', '--at', String(r1)]);

    await put(layout.app('mango'), { routes: [{ host: 'www.mango.com' }, { host: 'www.mango.com', path: '/shop' }] });
    await etcd.delete(layout.instance('mango', 'm2'));
    await put(layout.instance('mango', 'm1'), { url: 'http://127.0.0.1:7001', state: 'draining' });
    await put(layout.override('old.mango.com'), { maintenance: { status: 503, message: 'Back at 14:00' } });
    // Written with etcdctl, as an operator does.
    await etcdServer.etcdctl('put', layout.cert('www.mango.com'), await certRecord(['www.mango.com']));
    const r2 = await etcd.currentRevision();
    const after = await json<TableJson>(prefix, ['table', '--at', String(r2)]);
    const [oldFp, newFp] = [before.certificates[0]!.fingerprint, after.certificates[0]!.fingerprint];
    expect(oldFp).not.toBe(newFp);

    const d = await json<{ from: string; to: string; changed: boolean; changes: { group: string; op: string; kind: string; name: string; before?: Record<string, string>; after?: Record<string, string> }[] }>(prefix, ['diff', String(r1), String(r2)]);
    expect(d).toMatchObject({ from: String(r1), to: String(r2), changed: true });
    const lines = d.changes.map((c) => `${c.group} ${c.op} ${c.kind} ${c.name}`);
    expect(lines).toEqual([
      'old.mango.com + override old.mango.com',
      'www.mango.com + route /shop',
      'www.mango.com ~ instance mango/m1',
      'www.mango.com - instance mango/m2',
      'www.mango.com ~ certificate www.mango.com',
    ]);
    const m1 = d.changes.find((c) => c.name === 'mango/m1')!;
    expect([m1.before!.state, m1.after!.state]).toEqual(['ready', 'draining']);
    const cert = d.changes.find((c) => c.kind === 'certificate')!;
    expect([cert.before!.fingerprint, cert.after!.fingerprint]).toEqual([oldFp, newFp]);

    // Both certificates end 90 days after they were issued: the same second or the next.
    const [oldEnd, newEnd] = [before.certificates[0]!.notAfter, after.certificates[0]!.notAfter];
    const certChange = oldEnd === newEnd ? '' : `notAfter ${oldEnd} -> ${newEnd}, `;
    // R2 defaults to the current revision; text grouped by host.
    const text = await run(prefix, ['diff', String(r1)]);
    expect(text.code, text.stderr).toBe(0);
    console.log(text.stdout);
    expect(text.stdout.split('\n')).toEqual([
      `routing of ${prefix} from revision ${r1} to ${r2}`,
      'old.mango.com',
      '  + override maintenance 503 "Back at 14:00"',
      'www.mango.com',
      '  + route /shop -> mango',
      '  ~ instance mango/m1: state ready -> draining',
      '  - instance mango/m2 http://127.0.0.1:7002 ready weight 1',
      `  ~ certificate www.mango.com: ${certChange}fingerprint ${oldFp.slice(0, 16)}… -> ${newFp.slice(0, 16)}…`,
    ]);
  });

  test('revisions that touched only status records, locks, acme/ and a release label: no routing changes', async () => {
    const prefix = uniquePrefix('history-none');
    const layout = new KeyLayout(prefix);
    await put(layout.app('mango'), { routes: [{ host: 'www.mango.com' }] });
    const r1 = await put(layout.instance('mango', 'm1'), { url: 'http://127.0.0.1:7001', state: 'ready', release: 'v1' });
    await put(layout.router('r1'), { revision: String(r1), digest: '0' });
    await put(layout.lock('mango'), { host: 'ci', pid: 1, startedAt: new Date().toISOString() });
    await etcdServer.etcdctl('put', layout.acmeState('www.mango.com'), '{"failures":1}');
    // The same routing written again, with only the (non-routing) release label changed.
    await put(layout.instance('mango', 'm1'), { url: 'http://127.0.0.1:7001', state: 'ready', release: 'v1-relabelled' });
    const r2 = await etcd.currentRevision();
    expect(r2).toBeGreaterThan(r1 + 3n);

    const text = await run(prefix, ['diff', String(r1), String(r2)]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toBe(`routing of ${prefix} from revision ${r1} to ${r2}: no routing changes`);
    const d = await json<{ changed: boolean; changes: unknown[] }>(prefix, ['diff', String(r1), String(r2)]);
    expect(d).toMatchObject({ changed: false, changes: [] });
  });

  test('a revision in the future and a compacted one: one clear line each, exit 1; bad revisions exit 2', async () => {
    const prefix = uniquePrefix('history-range');
    const layout = new KeyLayout(prefix);
    const r1 = await put(layout.app('mango'), { routes: [{ host: 'www.mango.com' }] });
    const current = await etcd.currentRevision();

    const future = await run(prefix, ['table', '--at', String(current + 1000n)]);
    expect(future.code).toBe(1);
    expect(future.stderr).toBe(`paas-deploy: table failed: revision ${current + 1000n} is in the future: etcd's current revision is ${current}`);
    expect(future.stdout).toBe('');
    const futureDiff = await run(prefix, ['diff', String(r1), String(current + 1000n)]);
    expect(futureDiff.code).toBe(1);
    expect(futureDiff.stderr).toContain(`revision ${current + 1000n} is in the future`);

    for (const args of [['table', '--at', 'abc'], ['table', '--at', '0'], ['table', '--at', '2026-11-29T14:02'], ['diff'], ['diff', '1', '2', '3'], ['table', '--host', '*.mango.com']]) {
      const r = await run(prefix, args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr).toMatch(/^paas-deploy: /);
    }
    expect((await run(prefix, ['table', '--at', '2026-11-29T14:02'])).stderr).toContain('a time is RFC 3339 with seconds and an offset');
    // No router has ever written a status record under this prefix: nothing dates a time.
    const undated = await run(prefix, ['table', '--at', new Date().toISOString()]);
    expect(undated.code).toBe(1);
    expect(undated.stderr).toMatch(/^paas-deploy: table failed: cannot date \S+: no router status record exists now/);

    const r2 = await put(layout.instance('mango', 'm1'), { url: 'http://127.0.0.1:7001', state: 'ready' });
    await etcdServer.etcdctl('compact', String(r2));
    const compacted = await run(prefix, ['table', '--at', String(r1)]);
    expect(compacted.code).toBe(1);
    const now = await etcd.currentRevision();
    expect(compacted.stderr).toBe(`paas-deploy: table failed: revision ${r1} is compacted: etcd keeps history from revision ${r2} to ${now} (etcd keeps no history before its last compaction)`);
    const compactedDiff = await run(prefix, ['diff', String(r1)]);
    expect(compactedDiff.code).toBe(1);
    expect(compactedDiff.stderr).toContain(`revision ${r1} is compacted`);
    // The compaction revision itself is still served.
    const atR2 = await json<TableJson>(prefix, ['table', '--at', String(r2)]);
    expect(atR2.routes.map((r) => r.instances.map((i) => i.id))).toEqual([['m1']]);
  });
});
