/**
 * The etcd wrapper (packages/registry/src/etcd) against a real etcd: the shared one for plain
 * reads and writes, an own one for what stops, compacts or slows etcd down.
 */
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { connectEtcd, FIRST_PAGE_SIZE, KeyLayout, type Etcd, type KvEntry, type MirrorHandlers, type WatchEvent } from '@paas/registry';
import { runEtcdctl, sharedEtcdEndpoints, startEtcd, uniquePrefix, type EtcdProcess } from '../harness/etcd.js';
import { freePort } from '../harness/ports.js';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.js';
import { waitFor } from '../harness/wait.js';

type Call =
  | { kind: 'snapshot'; entries: KvEntry[]; revision: bigint }
  | { kind: 'revision'; events: WatchEvent[]; revision: bigint }
  | { kind: 'progress'; revision: bigint }
  | { kind: 'current'; revision: bigint }
  | { kind: 'resync'; reason: string }
  | { kind: 'connection'; connected: boolean }
  | { kind: 'error'; err: unknown };

/** MirrorHandlers that record every call, in order. */
function recorder(overrides: Partial<MirrorHandlers> = {}) {
  const calls: Call[] = [];
  const handlers: MirrorHandlers = {
    onSnapshot: (entries, revision) => {
      calls.push({ kind: 'snapshot', entries, revision });
      overrides.onSnapshot?.(entries, revision);
    },
    onRevision: (events, revision) => {
      calls.push({ kind: 'revision', events, revision });
      overrides.onRevision?.(events, revision);
    },
    onProgress: (revision) => calls.push({ kind: 'progress', revision }),
    onCurrent: (revision) => calls.push({ kind: 'current', revision }),
    onResync: (reason) => calls.push({ kind: 'resync', reason }),
    onConnection: (connected) => calls.push({ kind: 'connection', connected }),
    onError: (err) => calls.push({ kind: 'error', err }),
  };
  const of = <K extends Call['kind']>(kind: K) => calls.filter((c): c is Extract<Call, { kind: K }> => c.kind === kind);
  /** Every key delivered by revisions, in order. */
  const revisionKeys = () => of('revision').flatMap((c) => c.events.map((e) => e.key));
  return { calls, handlers, of, revisionKeys };
}

/** Range requests etcd has answered, from its own metrics. */
async function rangeRequests(endpoint: string): Promise<number> {
  const text = await (await fetch(`${endpoint}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('grpc_server_handled_total{') && l.includes('grpc_code="OK"') && l.includes('grpc_method="Range"'));
  if (line === undefined) throw new Error(`etcd at ${endpoint} reports no grpc_server_handled_total for Range`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

const summary = (entries: KvEntry[]) => entries.map((e) => [e.key, e.value.toString(), e.modRevision]);

const clients: Etcd[] = [];
function connect(endpoints: string[], callTimeoutMs = 2_000): Etcd {
  const etcd = connectEtcd({ endpoints, callTimeoutMs });
  clients.push(etcd);
  return etcd;
}
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

describe('on the shared etcd', () => {
  const endpoints = sharedEtcdEndpoints();

  test('list reads every page at one revision; a write racing between pages does not appear', async () => {
    const etcd = connect(endpoints);
    const writer = connect(endpoints);
    const p = uniquePrefix('list-pages');
    for (let i = 0; i < 50; i++) await etcd.put(`${p}/k/${String(i).padStart(3, '0')}`, `v${i}`);

    // A second client keeps creating keys at the end of the range (read by the last pages) and
    // rewriting the first key (read by the first page) while the list pages through.
    const raced: Array<{ key: string; revision: bigint; doneBeforeList: boolean }> = [];
    let listing = true;
    const racing = (async () => {
      for (let n = 0; listing; n++) {
        const key = n % 2 === 0 ? `${p}/k/zzz-${n}` : `${p}/k/000`;
        const revision = await writer.put(key, `raced-${n}`);
        raced.push({ key, revision, doneBeforeList: listing });
      }
    })();
    const { entries, revision } = await etcd.listPrefix(`${p}/k/`, { pageSize: 2 });
    listing = false;
    await racing;

    // The race really happened: writes at revisions after R finished while the list went on.
    expect(raced.some((w) => w.revision > revision && w.doneBeforeList)).toBe(true);
    expect(entries.every((e) => e.modRevision <= revision)).toBe(true);
    const keys = entries.map((e) => e.key);
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys).toEqual([...keys].sort());
    for (const w of raced) {
      if (w.key.includes('zzz')) expect(keys.includes(w.key)).toBe(w.revision <= revision);
    }
    const lastFirstKeyWrite = raced.filter((w) => w.key.endsWith('/000') && w.revision <= revision).at(-1);
    const first = entries.find((e) => e.key === `${p}/k/000`);
    expect(first?.value.toString()).toBe(lastFirstKeyWrite ? `raced-${raced.indexOf(lastFirstKeyWrite)}` : 'v0');
    // Same answer as one read at R.
    expect(summary(entries)).toEqual(summary((await etcd.listPrefix(`${p}/k/`, { revision, pageSize: 1000 })).entries));
  });

  test('list decodes every field exactly as etcd3\'s generated client does (etcdctl writes, leases, odd values)', async () => {
    const etcd = connect(endpoints);
    const p = uniquePrefix('list-decode');
    const big = 'x'.repeat(100_000);
    await runEtcdctl(endpoints, ['put', `${p}/k/ascii`, '{"routes":[]}']);
    await runEtcdctl(endpoints, ['put', `${p}/k/ünïcödé-ключ`, 'värde ✓']);
    await runEtcdctl(endpoints, ['put', `${p}/k/big`, big]);
    await etcd.put(`${p}/k/empty`, '');
    await etcd.put(`${p}/k/twice`, 'one');
    await etcd.put(`${p}/k/twice`, 'two');
    const leased = etcd.leasedKey(`${p}/k/leased`, 30);
    await leased.set('held');
    try {
      const paged = await etcd.listPrefix(`${p}/k/`, { pageSize: 2 });
      expect(paged.entries.map((e) => e.key)).toEqual([`${p}/k/ascii`, `${p}/k/big`, `${p}/k/empty`, `${p}/k/leased`, `${p}/k/twice`, `${p}/k/ünïcödé-ключ`]);
      for (const e of paged.entries) {
        const one = await etcd.get(e.key);
        expect({ ...e, value: e.value.toString() }).toEqual({ ...one!, value: one!.value.toString() });
      }
      const leasedEntry = paged.entries.find((e) => e.key.endsWith('/leased'))!;
      expect(leasedEntry.lease).not.toBe('0');
      expect(paged.entries.find((e) => e.key.endsWith('/twice'))!.version).toBe(2n);
      expect(paged.entries.find((e) => e.key.endsWith('/big'))!.value.toString()).toBe(big);
    } finally {
      await leased.close({ revoke: true });
    }
  });

  test('list cut at boundaries into segments reads exactly the keys of a plain list, in order', async () => {
    const etcd = connect(endpoints);
    const layout = new KeyLayout(uniquePrefix('list-segments'));
    // Names in many segments, and keys no segment of a first name character holds.
    const keys = ['a1', 'b2', 'b3', 'z9', '0x', 'Mango', '_odd', '~tilde'].flatMap((n) => [layout.app(n), layout.instance(n, 'i1'), layout.instance(n, 'i2')]);
    keys.push(layout.override('www.mango.com'), layout.override('Upper.example'), `${layout.appsDir}`, `${layout.overridesDir}{`);
    for (const k of keys) await etcd.put(k, 'v');
    const { start, end } = layout.watchedRange();
    const plain = await etcd.list(start, end, { pageSize: 1000 });
    // Pages of 2: every directory holds more than two pages, so each is split too.
    const cut = await etcd.list(start, end, { pageSize: 2, revision: plain.revision, boundaries: layout.watchedBoundaries(), splits: layout.watchedSplits() });
    expect(cut.entries.map((e) => e.key)).toEqual(plain.entries.map((e) => e.key));
    expect(cut.entries.map((e) => e.key)).toEqual([...keys].sort());
  });

  test('list with onPage hands over every key exactly once, at one revision, whatever order its parts arrive in', async () => {
    const etcd = connect(endpoints);
    const layout = new KeyLayout(uniquePrefix('list-onpage'));
    const names = ['a1', 'a2', 'b2', 'b3', 'c4', 'z9', '0x', 'm1', 'm2', 'm3'];
    const keys = names.flatMap((n) => [layout.app(n), layout.instance(n, 'i1'), layout.instance(n, 'i2'), layout.override(`${n}.example.com`)]);
    for (const k of keys) await etcd.put(k, 'v');
    const { start, end } = layout.watchedRange();
    const plain = await etcd.list(start, end, { pageSize: 1000 });
    const delivered: string[] = [];
    const revisions = new Set<bigint>();
    // The client's list takes the mirror's onPage too (the Etcd interface does not show it).
    type PagedList = (start: string, end: string, opts: { pageSize: number; revision: bigint; boundaries: string[]; splits: string[]; onPage: (entries: KvEntry[], revision: bigint) => void }) => Promise<{ entries: KvEntry[]; revision: bigint }>;
    const list = etcd.list.bind(etcd) as PagedList;
    // Pages of 2: every directory is read in several pages and split, by chains side by side.
    const paged = await list(start, end, {
      pageSize: 2,
      revision: plain.revision,
      boundaries: layout.watchedBoundaries(),
      splits: layout.watchedSplits(),
      onPage: (entries, revision) => {
        revisions.add(revision);
        for (const e of entries) delivered.push(e.key);
      },
    });
    expect(paged.entries).toEqual([]);
    expect([...revisions]).toEqual([plain.revision]);
    expect(delivered).toHaveLength(plain.entries.length);
    expect([...delivered].sort()).toEqual(plain.entries.map((e) => e.key));
  });

  test('mirror: a 3-key txn is one onRevision with 3 events; routers/ keys are never delivered', async () => {
    const etcd = connect(endpoints);
    const layout = new KeyLayout(uniquePrefix('mirror-txn'));
    await etcd.put(layout.app('mango'), '{"routes":[]}');
    const rec = recorder();
    const mirror = etcd.mirror(layout.watchedRange(), rec.handlers);
    await mirror.start();
    const [snapshot] = rec.of('snapshot');
    expect(snapshot?.entries.map((e) => e.key)).toEqual([layout.app('mango')]);

    const txn = await etcd.txn(
      [{ key: layout.app('kiwi'), target: 'create', op: '=', value: 0n }],
      [
        { put: layout.app('kiwi'), value: '{}' },
        { put: layout.instance('kiwi', 'k1'), value: '{"url":"http://127.0.0.1:1","state":"ready"}' },
        { put: layout.override('www.kiwi.com'), value: '{"app":"kiwi"}' },
      ],
    );
    expect(txn.succeeded).toBe(true);
    await etcd.put(layout.router('r1'), '{"revision":"1"}');
    const last = await etcd.delete(layout.app('mango'));

    await waitFor(() => rec.of('revision').some((c) => c.revision === last), { message: 'the delete to be delivered' });
    const revisions = rec.of('revision');
    expect(revisions.map((c) => c.revision)).toEqual([txn.revision, last]);
    expect(revisions[0]!.events.map((e) => [e.type, e.key, e.modRevision])).toEqual([
      ['put', layout.app('kiwi'), txn.revision],
      ['put', layout.instance('kiwi', 'k1'), txn.revision],
      ['put', layout.override('www.kiwi.com'), txn.revision],
    ]);
    expect(revisions[1]!.events).toEqual([{ type: 'delete', key: layout.app('mango'), modRevision: last }]);
    expect(rec.revisionKeys().some((k) => k.startsWith(layout.routersDir))).toBe(false);
    expect(rec.of('error')).toEqual([]);
    await mirror.close();
  });

  test('mirror: known current past writes outside the range (confirmed progress answers), never past an undelivered event', async () => {
    const etcd = connect(endpoints);
    const layout = new KeyLayout(uniquePrefix('mirror-current'));
    await etcd.put(layout.app('mango'), '{"routes":[]}');
    const rec = recorder();
    const mirror = etcd.mirror(layout.watchedRange(), rec.handlers);
    await mirror.start();
    // A write outside the watched range: no event, but the mirror learns it is current past it.
    const outside = await etcd.put(layout.router('r1'), '{"revision":"1"}');
    await waitFor(() => rec.of('current').some((c) => c.revision >= outside), { timeoutMs: 10_000, message: 'current past the write outside the range' });
    expect(rec.of('revision')).toEqual([]);
    // A write inside: delivered as a revision; no current revision is announced at or past it
    // before the event itself has come.
    const inside = await etcd.put(layout.app('kiwi'), '{"routes":[]}');
    await waitFor(() => rec.of('current').some((c) => c.revision >= inside), { timeoutMs: 10_000, message: 'current past the write inside the range' });
    const eventAt = rec.calls.findIndex((c) => c.kind === 'revision' && c.revision === inside);
    const firstCurrentPast = rec.calls.findIndex((c) => c.kind === 'current' && c.revision >= inside);
    expect(eventAt).toBeGreaterThanOrEqual(0);
    expect(firstCurrentPast).toBeGreaterThan(eventAt);
    expect(rec.of('error')).toEqual([]);
    await mirror.close();
  });

  test('a handler that throws reaches onError, and the mirror carries on', async () => {
    const etcd = connect(endpoints);
    const p = uniquePrefix('throwing-handler');
    const boom = new Error('handler bug');
    let thrown = false;
    const rec = recorder({
      onRevision: () => {
        if (thrown) return;
        thrown = true;
        throw boom;
      },
    });
    const mirror = etcd.mirror({ start: `${p}/`, end: `${p}0` }, rec.handlers);
    await mirror.start();
    await etcd.put(`${p}/a`, '1');
    const second = await etcd.put(`${p}/b`, '2');
    await waitFor(() => rec.of('revision').some((c) => c.revision === second), { message: 'the second revision' });
    expect(rec.of('error').map((c) => c.err)).toEqual([boom]);
    expect(rec.revisionKeys()).toEqual([`${p}/a`, `${p}/b`]);
    await mirror.close();
  });

  test('txn maps compares and ops; get, delete and currentRevision agree', async () => {
    const etcd = connect(endpoints);
    const p = uniquePrefix('txn');
    const created = await etcd.put(`${p}/a`, 'one');
    const entry = await etcd.get(`${p}/a`);
    expect(entry).toMatchObject({ key: `${p}/a`, createRevision: created, modRevision: created, version: 1n, lease: '0' });
    expect(entry?.value).toEqual(Buffer.from('one'));

    const failed = await etcd.txn(
      [{ key: `${p}/a`, target: 'value', op: '=', value: 'two' }],
      [{ put: `${p}/b`, value: 'never' }],
      [{ put: `${p}/c`, value: 'instead' }],
    );
    expect(failed.succeeded).toBe(false);
    const ok = await etcd.txn(
      [
        { key: `${p}/a`, target: 'mod', op: '=', value: created },
        { key: `${p}/a`, target: 'version', op: '<', value: 2n },
        { key: `${p}/c`, target: 'create', op: '>', value: 0n },
      ],
      [{ delete: `${p}/c` }, { put: `${p}/a`, value: 'two' }],
    );
    expect(ok.succeeded).toBe(true);
    expect(await etcd.currentRevision()).toBeGreaterThanOrEqual(ok.revision);
    expect((await etcd.listPrefix(`${p}/`)).entries.map((e) => [e.key, e.value.toString()])).toEqual([[`${p}/a`, 'two']]);
    expect(await etcd.delete(`${p}/a`)).toBeGreaterThan(ok.revision);
    expect(await etcd.get(`${p}/a`)).toBeUndefined();
  });

  test('leasedKey is written again after its lease is revoked (onLease tells each lease), and gone at once after close({ revoke: true })', async () => {
    const etcd = connect(endpoints);
    const key = `${uniquePrefix('leased-key')}/routers/r1`;
    const leased = etcd.leasedKey(key, 2);
    const leases: string[] = [];
    leased.onLease((lease) => leases.push(lease));
    await leased.set('{"revision":"1"}');
    const before = await etcd.get(key);
    expect(before?.lease).not.toBe('0');
    await leased.set('{"revision":"2"}');
    expect(leases).toEqual([before!.lease]);
    const late: string[] = [];
    leased.onLease((lease) => late.push(lease));
    expect(late).toEqual([before!.lease]);

    await runEtcdctl(endpoints, ['lease', 'revoke', BigInt(before!.lease).toString(16)]);
    const after = await waitFor(
      async () => {
        // onLease runs once the writer has the answer to its write, which can come a moment
        // after this get sees the write in etcd.
        const entry = await etcd.get(key);
        return entry && entry.lease !== before!.lease && leases.length > 1 ? entry : undefined;
      },
      { timeoutMs: 5_000, message: 'the key to be rewritten on a new lease' },
    );
    expect(after.value.toString()).toBe('{"revision":"2"}');
    expect(leases).toEqual([before!.lease, after.lease]);

    await leased.close({ revoke: true });
    expect(await etcd.get(key)).toBeUndefined();
    await leased.close({ revoke: true }); // twice is fine
  });

  test('tryLock: one holder at a time; free again after release or when the holder loses its lease', async () => {
    const etcd = connect(endpoints);
    const key = `${uniquePrefix('lock')}/locks/mango`;
    const a = await etcd.tryLock(key, 'deployer-a', 5);
    if (!a.ok) throw new Error(`first tryLock failed: ${a.holder}`);
    expect(a.lock.revision).toBe((await etcd.get(key))!.createRevision);
    expect(await etcd.tryLock(key, 'deployer-b', 5)).toEqual({ ok: false, holder: 'deployer-a' });

    await a.lock.release();
    await a.lock.lost; // resolves on release too
    expect(await etcd.get(key)).toBeUndefined();
    const b = await etcd.tryLock(key, 'deployer-b', 3);
    if (!b.ok) throw new Error(`tryLock after release failed: ${b.holder}`);
    expect(b.lock.revision).toBeGreaterThan(a.lock.revision);

    await runEtcdctl(endpoints, ['lease', 'revoke', BigInt(b.lock.lease).toString(16)]);
    await b.lock.lost; // etcd3 notices at the next keep-alive, TTL/3 = 1 s
    const c = await etcd.tryLock(key, 'deployer-c', 5);
    expect(c.ok).toBe(true);
    if (c.ok) await c.lock.release();
  });

  test('start() against an endpoint where nothing listens rejects in time, naming it', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const etcd = connect([dead], 500);
    const rec = recorder();
    const mirror = etcd.mirror({ start: '/paas/apps/', end: '/paas/overrides0', startTimeoutMs: 1_500 }, rec.handlers);
    const started = Date.now();
    const error = await mirror.start().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(new RegExp(`^could not list \\[/paas/apps/, /paas/overrides0\\) from etcd at ${dead} within 1500 ms: .+`));
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(rec.of('connection')).toEqual([{ kind: 'connection', connected: false }]);
    await mirror.close();
  });

  test('a unary call to an etcd that never answers fails at its deadline', async () => {
    // A TCP server that accepts and then says nothing: the HTTP/2 handshake never completes.
    const held: net.Socket[] = [];
    const blackHole = net.createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => blackHole.listen(0, '127.0.0.1', resolve));
    try {
      const etcd = connect([`http://127.0.0.1:${(blackHole.address() as net.AddressInfo).port}`], 700);
      const started = Date.now();
      await expect(etcd.put('/x', 'y')).rejects.toThrow(/deadline/i);
      expect(Date.now() - started).toBeLessThan(2_500);
    } finally {
      for (const socket of held) socket.destroy();
      blackHole.close();
    }
  });
});

describe('on an etcd of its own', () => {
  let server: EtcdProcess;
  beforeAll(async () => {
    server = await startEtcd({ extraArgs: ['--experimental-watch-progress-notify-interval=500ms'] });
  });
  afterAll(async () => {
    await server?.cleanup();
  });

  test('a list splits only a directory holding more than two pages: one range request per directory otherwise', async () => {
    const etcd = connect(server.endpoints);
    const layout = new KeyLayout(uniquePrefix('list-splits'));
    // Names under many first characters; 6 apps, 6 instances, 1 override.
    const names = ['a1', 'b2', 'c3', 'm4', 'x5', 'z6'];
    for (const n of names) await etcd.put(layout.app(n), 'v');
    for (const n of names) await etcd.put(layout.instance(n, 'i1'), 'v');
    await etcd.put(layout.override('www.example.com'), 'v');
    const { start, end } = layout.watchedRange();
    const opts = { boundaries: layout.watchedBoundaries(), splits: layout.watchedSplits() };
    const listed = async (pageSize: number) => {
      const before = await rangeRequests(server.endpoints[0]!);
      const { entries } = await etcd.list(start, end, { ...opts, pageSize });
      return { keys: entries.map((e) => e.key), requests: (await rangeRequests(server.endpoints[0]!)) - before };
    };
    // One segment per record directory (apps, certs, instances, overrides), each one request
    // when it fits a page.
    const segments = layout.watchedBoundaries().length;
    const whole = await listed(1000);
    expect(whole.keys).toHaveLength(13);
    expect(whole.requests).toBe(segments);
    // Pages of 3: apps and instances hold 6 keys (two pages: not split), the others one each.
    const paged = await listed(3);
    expect(paged.keys).toEqual(whole.keys);
    expect(paged.requests).toBe(segments + 2);
    // Pages of 2: after their first page (a1, b2), apps and instances are read one first
    // character of a name at a time: the rest of b, c to z, '{' onwards: 27 requests each.
    const split = await listed(2);
    expect(split.keys).toEqual(whole.keys);
    expect(split.requests).toBe(27 + 27 + (segments - 2));
  });

  test('a list starts with a small page and grows the next ones, so the caller gets work before etcd has read a whole page', async () => {
    const etcd = connect(server.endpoints);
    const layout = new KeyLayout(uniquePrefix('list-ramp'));
    const count = FIRST_PAGE_SIZE * 2.5;
    for (let i = 0; i < count; i += 250) {
      await Promise.all(Array.from({ length: 250 }, (_, k) => etcd.put(layout.app(`app${i + k}`), 'v')));
    }
    const { start, end } = layout.watchedRange();
    const before = await rangeRequests(server.endpoints[0]!);
    const { entries } = await etcd.list(start, end, { boundaries: layout.watchedBoundaries(), splits: layout.watchedSplits() });
    // FIRST_PAGE_SIZE keys, then 1.5 times as many (the rest), then one request for each other
    // record directory.
    expect((await rangeRequests(server.endpoints[0]!)) - before).toBe(2 + layout.watchedBoundaries().length - 1);
    expect(entries).toHaveLength(count);
  });

  test('progress notifications arrive as onProgress while nothing changes', async () => {
    const etcd = connect(server.endpoints);
    const p = uniquePrefix('progress');
    const rec = recorder();
    const mirror = etcd.mirror({ start: `${p}/`, end: `${p}0` }, rec.handlers);
    await mirror.start();
    const revision = rec.of('snapshot')[0]!.revision;
    await waitFor(() => rec.of('progress').length > 0, { timeoutMs: 5_000, message: 'a progress notification' });
    expect(rec.of('progress')[0]!.revision).toBeGreaterThanOrEqual(revision);
    await mirror.close();
  });

  test('etcd stopped and restarted: onConnection(false), then true, the watch resumed without a re-list, later writes arrive', async () => {
    const etcd = connect(server.endpoints);
    const p = uniquePrefix('restart');
    await etcd.put(`${p}/before`, '1');
    const rec = recorder();
    const mirror = etcd.mirror({ start: `${p}/`, end: `${p}0` }, rec.handlers);
    await mirror.start();

    await server.stop();
    await waitFor(() => rec.of('connection').some((c) => !c.connected), { message: 'onConnection(false)' });
    // Enough failed calls to open the circuit breaker: etcd3's default one then refuses every
    // call for 5 s, ours lets a probe through after 1 s.
    for (let i = 0; i < 4; i++) await expect(etcd.put(`${p}/down`, 'x')).rejects.toThrow();
    await server.restart();
    const restartedAt = Date.now();

    await waitFor(() => etcd.put(`${p}/after`, '2'), { timeoutMs: 2_000, message: 'a put to succeed after the restart' });
    const unaryRecoveryMs = Date.now() - restartedAt;
    // The mirror re-opens its watch on its back-off (100 ms doubling to at most 5 s, ±20 %).
    await waitFor(() => rec.of('connection').at(-1)?.connected === true, { timeoutMs: 7_000, message: 'onConnection(true)' });
    const mirrorRecoveryMs = Date.now() - restartedAt;
    console.log(`recovery after the etcd restart: unary call ${unaryRecoveryMs} ms, mirror ${mirrorRecoveryMs} ms`);

    await waitFor(() => rec.calls.some((c) => (c.kind === 'snapshot' && c.entries.some((e) => e.key === `${p}/after`)) || (c.kind === 'revision' && c.events.some((e) => e.key === `${p}/after`))), {
      message: `${p}/after to be delivered`,
    });
    const late = await etcd.put(`${p}/late`, '3');
    await waitFor(() => rec.of('revision').some((c) => c.revision === late), { message: 'a write after the restart to arrive' });

    // Nothing was compacted: the watch resumed from the last revision delivered, no second list.
    expect(rec.of('resync')).toEqual([]);
    expect(rec.of('snapshot').length).toBe(1);
    expect(rec.of('connection').map((c) => c.connected)).toEqual([true, false, true]);
    await mirror.close();
  });

  test('a compaction past the watcher while it was cut off: the resync snapshot equals a fresh list', async () => {
    const proxy: TcpProxy = await startTcpProxy(server.endpoints[0]!);
    try {
      const etcd = connect([proxy.url]);
      const direct = connect(server.endpoints);
      const p = uniquePrefix('compaction');
      const range = { start: `${p}/`, end: `${p}0` };
      await direct.put(`${p}/a`, '1');
      await direct.put(`${p}/b`, '1');
      const rec = recorder();
      const mirror = etcd.mirror(range, rec.handlers);
      await mirror.start();
      const watched = await direct.put(`${p}/c`, '1');
      await waitFor(() => rec.of('revision').some((c) => c.revision === watched), { message: 'the watch to be live' });

      proxy.cut();
      await waitFor(() => rec.of('connection').some((c) => !c.connected), { message: 'the mirror to notice the cut' });
      await direct.put(`${p}/a`, '2');
      await direct.delete(`${p}/b`);
      await direct.put(`${p}/d`, '1');
      const compactTo = await direct.currentRevision();
      await server.etcdctl('compact', compactTo.toString());
      const snapshotsBefore = rec.of('snapshot').length;
      proxy.restore();

      await waitFor(() => rec.of('snapshot').length > snapshotsBefore, { timeoutMs: 8_000, message: 'the resync snapshot' });
      const resynced = rec.of('snapshot').at(-1)!;
      const fresh = await direct.list(range.start, range.end);
      expect(resynced.revision).toBeGreaterThanOrEqual(compactTo);
      expect(summary(resynced.entries)).toEqual(summary(fresh.entries));
      // Nothing older than the snapshot is delivered after it.
      const after = rec.calls.slice(rec.calls.indexOf(resynced));
      expect(after.filter((c) => c.kind === 'revision' && c.revision <= resynced.revision)).toEqual([]);
      await mirror.close();
    } finally {
      await proxy.close();
    }
  });

  test('a watch cancelled by etcd for compaction resyncs instead of dying', async () => {
    const etcd = connect(server.endpoints);
    const p = uniquePrefix('compacted-watch');
    await etcd.put(`${p}/a`, '1');
    // Inside the first onSnapshot (before the watch is created from R+1) write and compact past
    // R+1, synchronously: etcd then creates the watch and cancels it as compacted.
    let compactedTo = 0n;
    const rec = recorder({
      onSnapshot: () => {
        if (compactedTo !== 0n) return;
        const etcdctl = (...args: string[]) =>
          execFileSync('etcdctl', ['--endpoints', server.endpoints.join(','), ...args], { env: { ...process.env, ETCDCTL_API: '3' } }).toString();
        etcdctl('put', `${p}/b`, '1');
        etcdctl('put', `${p}/c`, '1');
        const status = JSON.parse(etcdctl('endpoint', 'status', '-w', 'json')) as Array<{ Status: { header: { revision: number } } }>;
        compactedTo = BigInt(status[0]!.Status.header.revision);
        etcdctl('compact', compactedTo.toString());
      },
    });
    const mirror = etcd.mirror({ start: `${p}/`, end: `${p}0` }, rec.handlers);
    await mirror.start();
    await waitFor(() => rec.of('snapshot').length >= 2, { message: 'a second snapshot after the compaction' });
    expect(rec.of('resync')[0]!.reason).toContain(`compacted (etcd compacted up to ${compactedTo})`);
    expect(rec.of('snapshot')[1]!.entries.map((e) => e.key)).toEqual([`${p}/a`, `${p}/b`, `${p}/c`]);
    expect(rec.of('revision')).toEqual([]);
    const d = await etcd.put(`${p}/d`, '1');
    await waitFor(() => rec.of('revision').some((c) => c.revision === d), { message: 'watching to go on after the resync' });
    await mirror.close();
  });
});
