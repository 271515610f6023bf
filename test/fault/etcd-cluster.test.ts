/**
 * Routers on a 3-member etcd cluster (test/harness/etcd-cluster.ts: peer traffic through
 * forwarders the test cuts; election timeout 500 ms) while members are partitioned, killed,
 * stopped and restarted, under HTTP load through two real router processes:
 * - a member partitioned from its peers while routers watch through it: noticed within 3 s,
 *   a change written to the majority served by every router within 5 s;
 * - a member frozen (SIGSTOP): noticed within 3 s by its unanswered progress requests;
 * - the leader killed under load;
 * - quorum lost for 15 s: the last table keeps serving, /status says etcd is unreachable;
 * - every member restarted one by one under load: at most one re-list per router (0 expected);
 * - a redeploy while the leader is killed.
 * A lost watch is resumed from the last applied revision, so none of these re-lists
 * (router_resyncs_total) unless a compaction passed it.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { connectEtcd, KeyLayout, type Etcd } from '@paas/registry';
import { DeployError, redeploy, register, type RedeployResult } from '@paas/deployer';
import { startEtcdCluster, type EtcdCluster } from '../harness/etcd-cluster.js';
import { ProcessGroup, startRouter, startSampleApp, type RouterProcess, type SampleApp } from '../harness/processes.js';
import { waitFor } from '../harness/wait.js';
import { startLoad, type Load, type LoadReport } from '../../packages/deployer/test/support/load.js';

interface Status { revision: string; etcd: { connected: boolean; downSince: string | null } }

const prefix = '/cluster';
const layout = new KeyLayout(prefix);
const group = new ProcessGroup();
let cluster: EtcdCluster;
let etcd: Etcd;
let app: SampleApp;
let routers: RouterProcess[];

async function status(r: RouterProcess): Promise<Status> {
  return (await (await request(`${r.adminUrl}/status`)).body.json()) as Status;
}

async function metric(r: RouterProcess, name: string): Promise<number> {
  const text = await (await request(`${r.adminUrl}/metrics`)).body.text();
  return Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1] ?? '0');
}

const resyncs = (r: RouterProcess) => metric(r, 'router_resyncs_total');

async function serves(r: RouterProcess, host: string): Promise<boolean> {
  const res = await request(`${r.url}/`, { headers: { host } });
  await res.body.dump();
  return res.statusCode === 200;
}

async function addApp(name: string, client: Etcd = etcd): Promise<bigint> {
  await client.put(layout.app(name), JSON.stringify({ routes: [{ host: `${name}.example.com` }] }));
  return client.put(layout.instance(name, 'i1'), JSON.stringify({ url: app.url, state: 'ready' }));
}

/** Watch streams open on a member, from etcd's own gauge. */
async function watchStreams(clientUrl: string): Promise<number> {
  const text = await (await request(`${clientUrl}/metrics`)).body.text();
  return Number(/^etcd_debugging_mvcc_watch_stream_total (\d+)/m.exec(text)?.[1] ?? '0');
}

/** Router log lines (pino JSON) saying its etcd watch was lost, with their time. */
function watchLosses(r: RouterProcess, since: number): { time: number; message: string }[] {
  return r.proc.stdout
    .map((line) => {
      try {
        const parsed = JSON.parse(line) as { time: string | number; msg: string; err?: { message?: string } };
        return { ...parsed, time: typeof parsed.time === 'number' ? parsed.time : Date.parse(parsed.time) };
      } catch {
        return undefined;
      }
    })
    .filter((l) => l !== undefined && l.time >= since && (l.err?.message ?? '').startsWith('etcd watch lost'))
    .map((l) => ({ time: l!.time, message: l!.err!.message! }));
}

/** Waits for the router to apply `rev`; on a timeout the error carries its /status and last lines. */
async function applied(r: RouterProcess, rev: bigint): Promise<void> {
  try {
    await waitFor(async () => BigInt((await status(r)).revision) >= rev, { timeoutMs: 10_000, message: `${r.url} to apply ${rev}` });
  } catch (err) {
    const now = await status(r).then((s) => JSON.stringify(s), (e: Error) => e.message);
    throw new Error(`${(err as Error).message}\n/status: ${now}\n${r.proc.tail(30)}`);
  }
}

function expectClean(report: LoadReport): void {
  expect(report.non2xx, report.samples.join('\n')).toEqual({});
  expect(report.errors, report.samples.join('\n')).toEqual({});
  expect(report.ok).toBeGreaterThan(0);
}

function loadOn(host: string): Load {
  return startLoad({ targets: routers.map((r) => r.url), host, concurrency: 4, maxMs: 55_000 });
}

beforeAll(async () => {
  cluster = await startEtcdCluster();
  etcd = connectEtcd({ endpoints: cluster.endpoints });
  app = await startSampleApp({ app: 'any', name: 'c1', group });
  await addApp('first');
  routers = await Promise.all(['r1', 'r2'].map((id) => startRouter({ etcdEndpoints: cluster.endpoints, prefix, id, group, extraArgs: ['--lease-ttl', '10s'] })));
});

// Each case starts from three healthy members, even after a case that failed with some down.
beforeEach(async () => {
  const down = cluster.members.filter((m) => !m.running);
  if (down.length === 0) return;
  await Promise.all(down.map((m) => m.start()));
  await cluster.waitHealthy();
});

afterAll(async () => {
  await group.stopAll();
  await etcd?.close();
  await cluster?.cleanup();
});

/**
 * The member that carries most of the routers' watch streams (the test's own client watches
 * nothing), the routers' re-list counts before, and a client of the other members.
 */
async function busiestMember(): Promise<{ before: number[]; streams: number[]; target: number; majority: Etcd }> {
  const before = await Promise.all(routers.map(resyncs));
  // After the previous case's fault, the routers may still be opening their new watches.
  const streams = await waitFor(async () => {
    const counts = await Promise.all(cluster.members.map((m) => watchStreams(m.clientUrl)));
    return Math.max(...counts) > 0 ? counts : undefined;
  }, { timeoutMs: 10_000, message: 'a member holding a watch stream' });
  const target = streams.indexOf(Math.max(...streams));
  const others = cluster.members.filter((m) => m.index !== target).map((m) => m.clientUrl);
  return { before, streams, target, majority: connectEtcd({ endpoints: others }) };
}

describe('routers on a 3-member etcd cluster', () => {
  it('a member partitioned from its peers: its routers notice within 3 s and serve a change written to the majority within 5 s', async () => {
    const { before, streams, target, majority } = await busiestMember();
    try {
      const cutAt = Date.now();
      cluster.isolate(target);
      const written = await waitFor(() => addApp('after-partition', majority), { timeoutMs: 10_000, message: 'a write to the majority' });
      const writtenAt = Date.now();
      for (const r of routers) {
        await waitFor(() => serves(r, 'after-partition.example.com'), { timeoutMs: 5_000, intervalMs: 20, message: `${r.url} to serve the change written to the majority` });
        expect(BigInt((await status(r)).revision)).toBeGreaterThanOrEqual(written);
      }
      const servedMs = Date.now() - writtenAt;
      // Routers that watched through the partitioned member logged the loss within 3 s of the cut.
      const losses = routers.flatMap((r) => watchLosses(r, cutAt));
      expect(losses.length, 'a router logged its watch loss').toBeGreaterThanOrEqual(streams[target]!);
      for (const l of losses) expect(l.time - cutAt, l.message).toBeLessThanOrEqual(3_000);
      expect(losses.map((l) => l.message).join('\n')).toMatch(/no leader|stalled/);
      expect(await watchStreams(cluster.members[target]!.clientUrl)).toBe(0);
      console.log(`[partition] member m${target} held ${streams[target]} watch streams; noticed after ${losses.map((l) => l.time - cutAt).join(', ')} ms; change served by both routers ${servedMs} ms after the write`);
      expect(await Promise.all(routers.map(resyncs))).toEqual(before);
    } finally {
      cluster.heal(target);
      await majority.close();
    }
    await cluster.waitHealthy();
  });

  it('a member frozen (SIGSTOP) while routers watch through it: its routers notice within 3 s (progress requests unanswered) and serve a change within 5 s', async () => {
    const { before, streams, target, majority } = await busiestMember();
    try {
      const frozenAt = Date.now();
      await cluster.members[target]!.kill('SIGSTOP');
      const written = await waitFor(() => addApp('after-freeze', majority), { timeoutMs: 10_000, message: 'a write to the other members' });
      const writtenAt = Date.now();
      for (const r of routers) {
        await waitFor(() => serves(r, 'after-freeze.example.com'), { timeoutMs: 5_000, intervalMs: 20, message: `${r.url} to serve the change written while a member is frozen` });
        expect(BigInt((await status(r)).revision)).toBeGreaterThanOrEqual(written);
      }
      const losses = routers.flatMap((r) => watchLosses(r, frozenAt));
      expect(losses.length, 'a router logged its watch loss').toBeGreaterThanOrEqual(1);
      for (const l of losses) expect(l.time - frozenAt, l.message).toBeLessThanOrEqual(3_000);
      expect(losses.map((l) => l.message).join('\n')).toMatch(/stalled/);
      console.log(`[freeze] member m${target} held ${streams[target]} watch streams; noticed after ${losses.map((l) => l.time - frozenAt).join(', ')} ms; change served ${Date.now() - writtenAt} ms after the write`);
      expect(await Promise.all(routers.map(resyncs))).toEqual(before);
    } finally {
      await cluster.members[target]!.kill('SIGCONT');
      await majority.close();
    }
    await cluster.waitHealthy();
  });

  it('the leader killed under load: no failed request, no re-list, later changes served', async () => {
    const before = await Promise.all(routers.map(resyncs));
    const load = loadOn('first.example.com');
    await load.waitForRequests(200);
    const leader = await cluster.waitLeader();
    await cluster.members[leader]!.kill('SIGKILL');
    const rev = await waitFor(() => addApp('after-leader-kill'), { timeoutMs: 10_000, message: 'a write after the leader was killed' });
    for (const r of routers) await applied(r, rev);
    await load.waitForRequests(200);
    const report = await load.stop();
    expectClean(report);
    for (const r of routers) expect(await serves(r, 'after-leader-kill.example.com')).toBe(true);
    expect(await Promise.all(routers.map(resyncs))).toEqual(before);
    await cluster.members[leader]!.start();
    await cluster.waitHealthy();
  });

  it('quorum lost for 15 s: the last table keeps serving, /status says etcd is unreachable, then it catches up without a re-list', async () => {
    const before = await Promise.all(routers.map(resyncs));
    const load = loadOn('first.example.com');
    await load.waitForRequests(200);
    const down = [0, 1].map((i) => cluster.members[i]!);
    await Promise.all(down.map((m) => m.kill('SIGKILL')));
    const lostAt = Date.now();
    for (const r of routers) {
      await waitFor(async () => (await status(r)).etcd.connected === false, { timeoutMs: 10_000, message: `${r.url} /status to say etcd is unreachable` });
    }
    console.log(`[quorum] both routers said etcd unreachable ${Date.now() - lostAt} ms after quorum was lost`);
    // 15 s without quorum, polled: /status keeps saying so, the old table keeps serving.
    await waitFor(
      async () => {
        for (const r of routers) {
          const s = await status(r);
          expect(s.etcd.connected).toBe(false);
          expect(s.etcd.downSince).not.toBeNull();
          expect(await serves(r, 'after-leader-kill.example.com')).toBe(true);
        }
        return Date.now() - lostAt >= 15_000;
      },
      { timeoutMs: 25_000, intervalMs: 500, message: '15 s without quorum' },
    );
    await Promise.all(down.map((m) => m.start()));
    await cluster.waitHealthy();
    const rev = await addApp('after-quorum');
    for (const r of routers) {
      await applied(r, rev);
      expect((await status(r)).etcd.connected).toBe(true);
    }
    const report = await load.stop();
    expectClean(report);
    expect(await Promise.all(routers.map(resyncs))).toEqual(before);
  });

  it('every member restarted one by one under load: at most one re-list per router, changes keep arriving', async () => {
    const before = await Promise.all(routers.map(resyncs));
    const load = loadOn('first.example.com');
    await load.waitForRequests(200);
    for (const member of cluster.members) {
      await member.stop();
      const rev = await waitFor(() => addApp(`roll-${member.name}`), { timeoutMs: 10_000, message: `a write while ${member.name} is down` });
      for (const r of routers) await applied(r, rev);
      await member.start();
      await cluster.waitHealthy();
    }
    const report = await load.stop();
    expectClean(report);
    const after = await Promise.all(routers.map(resyncs));
    console.log(`[roll] re-lists per router during the rolling restart: ${after.map((a, i) => a - before[i]!).join(', ')}`);
    for (const [i, a] of after.entries()) expect(a - before[i]!).toBeLessThanOrEqual(1);
    for (const r of routers) for (const m of cluster.members) expect(await serves(r, `roll-${m.name}.example.com`)).toBe(true);
  });

  it('a redeploy while the etcd leader is killed: it completes, no failed request through either router', async () => {
    const host = 'mango.example.com';
    await etcd.put(layout.app('mango'), JSON.stringify({ routes: [{ host }], healthCheck: { path: '/healthz' } }));
    const v1 = await Promise.all([0, 1].map((i) => startSampleApp({ app: 'mango', name: `v1-${i}`, release: 'v1', group })));
    for (const [i, a] of v1.entries()) await register(etcd, layout, { app: 'mango', url: a.url, id: `v1-${i}`, release: 'v1' });
    for (const r of routers) await waitFor(() => serves(r, host), { message: `${r.url} to serve mango` });
    const load = loadOn(host);
    await load.waitForRequests(200);

    const v2 = await Promise.all([0, 1].map((i) => startSampleApp({ app: 'mango', name: `v2-${i}`, release: 'v2', group })));
    const leader = await cluster.waitLeader();
    let killed: Promise<void> | undefined;
    const options = { app: 'mango', urls: v2.map((a) => a.url), release: 'v2' };
    let result: RedeployResult;
    try {
      result = await redeploy(etcd, layout, options, () => {
        // At the first step of the redeploy: its lock, writes and waits all cross the election.
        killed ??= cluster.members[leader]!.kill('SIGKILL');
      });
    } catch (err) {
      // A write in flight to the killed leader is lost and its answer never comes: the call
      // fails at its deadline and the deployer rolls back what it wrote. A second run must finish.
      if (!(err instanceof DeployError)) throw err;
      expect(err.message).toMatch(/etcd/);
      console.log(`[redeploy] the run across the election failed and was run again: ${err.message}; rollback ${JSON.stringify(err.rollback)}`);
      result = await redeploy(etcd, layout, options);
    }
    expect(killed).toBeDefined();
    await killed;
    expect(result.confirm.routers.map((r) => r.id).sort()).toEqual(['r1', 'r2']);
    for (const r of routers) {
      for (let i = 0; i < 4; i++) {
        const res = await request(`${r.url}/`, { headers: { host } });
        await res.body.dump();
        expect(res.headers['x-release']).toBe('v2');
      }
    }
    await load.waitForRequests(200);
    const report = await load.stop();
    expectClean(report);
    await cluster.members[leader]!.start();
    await cluster.waitHealthy();
  });

  it('a member that is down: every list through a client of all members still succeeds', async () => {
    // etcd3 moves its own unary calls off an UNAVAILABLE member; the registry's own Range call
    // must too, or a deployer's list fails whenever the pool picks the dead member (1 in 3).
    const down = (await cluster.waitLeader() + 1) % cluster.members.length;
    await cluster.members[down]!.kill('SIGKILL');
    const client = connectEtcd({ endpoints: cluster.members.map((m) => m.clientUrl) });
    try {
      for (let i = 0; i < 12; i++) {
        const { entries } = await client.listPrefix(layout.appsDir);
        expect(entries.length).toBeGreaterThan(0);
      }
    } finally {
      await client.close();
      await cluster.members[down]!.start();
      await cluster.waitHealthy();
    }
  });
});
