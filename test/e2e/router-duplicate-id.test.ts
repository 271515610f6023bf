/**
 * Two real router processes with the same --id: the second refuses to start (one line on stderr,
 * exit 1) and leaves the first's status record alone; the id is free again once the first's
 * lease is gone (clean stop: at once; SIGKILL: after its TTL). A router whose lease lapsed while
 * another took its id stops instead of overwriting that router's record. With --workers, the
 * worker ids (<id>-w<k>) are claimed the same way.
 */
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, test } from 'vitest';
import { request } from 'undici';
import { connectEtcd, KeyLayout, type Etcd } from '@paas/registry';
import { sharedEtcdEndpoints, uniquePrefix } from '../harness/etcd.js';
import { freePorts } from '../harness/ports.js';
import { ProcessGroup, startRouter, startSampleApp, type ManagedProcess } from '../harness/processes.js';
import { waitFor } from '../harness/wait.js';

const ROUTER_BIN = fileURLToPath(new URL('../../packages/router/bin/paas-router.js', import.meta.url));
const HOST = 'www.mango.com';

let group: ProcessGroup;
let etcd: Etcd;
afterEach(async () => {
  await group.stopAll();
  await etcd.close();
});

async function setup(name: string): Promise<{ endpoints: string[]; prefix: string; layout: KeyLayout }> {
  const endpoints = sharedEtcdEndpoints();
  const prefix = uniquePrefix(`dup-id-${name}`);
  group = new ProcessGroup();
  etcd = connectEtcd({ endpoints });
  const layout = new KeyLayout(prefix);
  const app = await startSampleApp({ app: 'mango', name: 'm1', group });
  await etcd.put(layout.app('mango'), JSON.stringify({ routes: [{ host: HOST }] }));
  await etcd.put(layout.instance('mango', 'm1'), JSON.stringify({ url: app.url, state: 'ready' }));
  return { endpoints, prefix, layout };
}

/** A router process started without waiting for it to be ready (it may refuse to start). */
async function spawnRouter(endpoints: string[], prefix: string, id: string, extra: string[] = []): Promise<ManagedProcess> {
  const [port, adminPort] = (await freePorts(2)) as [number, number];
  const args = ['--etcd', endpoints.join(','), '--prefix', prefix, '--listen', `127.0.0.1:${port}`, '--admin', `127.0.0.1:${adminPort}`, '--id', id, ...extra];
  return group.spawn(process.execPath, [ROUTER_BIN, ...args], { name: `router ${id} (second)` });
}

async function record(layout: KeyLayout, id: string): Promise<{ startedAt: string; lease: string; createRevision: bigint } | undefined> {
  const e = await etcd.get(layout.router(id));
  if (!e) return undefined;
  return { startedAt: (JSON.parse(e.value.toString()) as { startedAt: string }).startedAt, lease: e.lease, createRevision: e.createRevision };
}

const refusalLine = (prefix: string, id: string) =>
  new RegExp(
    `^paas-router: router id ${id} is in use: ${prefix}/routers/${id} belongs to another running router \\(started \\S+, lease \\d+\\); stop it or start this one with another --id`,
  );

describe('two routers with the same --id', { timeout: 180_000 }, () => {
  test('the second refuses with one line and exit 1; the first keeps its record and serves; free again after a clean stop', async () => {
    const { endpoints, prefix, layout } = await setup('refuse');
    const first = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'r1', group, readyTimeoutMs: 60_000 });
    const before = await record(layout, 'r1');
    expect(before).toBeDefined();

    const second = await spawnRouter(endpoints, prefix, 'r1');
    const { code } = await second.exited;
    expect(code, second.tail()).toBe(1);
    expect(second.stderr).toHaveLength(1);
    expect(second.stderr[0]).toMatch(refusalLine(prefix, 'r1'));
    expect(second.stderr[0]).toContain(`started ${before!.startedAt}`);

    // The first router's record is untouched and it still serves.
    const after = await record(layout, 'r1');
    expect(after).toMatchObject({ startedAt: before!.startedAt, lease: before!.lease, createRevision: before!.createRevision });
    expect((await request(`${first.url}/`, { headers: { host: HOST } })).statusCode).toBe(200);

    // A clean stop revokes the lease: the id is free at once.
    await first.proc.stop();
    expect(await record(layout, 'r1')).toBeUndefined();
    const third = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'r1', group, readyTimeoutMs: 60_000 });
    expect((await request(`${third.url}/`, { headers: { host: HOST } })).statusCode).toBe(200);
    expect((await record(layout, 'r1'))!.startedAt).not.toBe(before!.startedAt);
  });

  test('after a SIGKILL the id is held until the dead router\'s lease expires, then free', async () => {
    const { endpoints, prefix, layout } = await setup('killed');
    // A TTL long enough that the next router surely starts (a few seconds here) while it lives.
    const first = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'r1', extraArgs: ['--lease-ttl', '30s'], group, readyTimeoutMs: 60_000 });
    first.proc.kill('SIGKILL');
    await first.proc.exited;
    const early = await spawnRouter(endpoints, prefix, 'r1');
    expect((await early.exited).code, early.tail()).toBe(1);
    expect(early.stderr[0]).toMatch(refusalLine(prefix, 'r1'));

    await waitFor(async () => (await record(layout, 'r1')) === undefined, { timeoutMs: 60_000, message: 'the dead router\'s lease to expire' });
    const next = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'r1', group, readyTimeoutMs: 60_000 });
    expect((await request(`${next.url}/`, { headers: { host: HOST } })).statusCode).toBe(200);
  });

  test('a router whose lease lapsed while another took its id stops (exit 1) and leaves that record alone', async () => {
    const { endpoints, prefix, layout } = await setup('taken');
    const a = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'r1', extraArgs: ['--lease-ttl', '2s'], group, readyTimeoutMs: 60_000 });
    a.proc.kill('SIGSTOP');
    try {
      await waitFor(async () => (await record(layout, 'r1')) === undefined, { timeoutMs: 10_000, message: 'the frozen router\'s lease to expire' });
    } catch (err) {
      a.proc.kill('SIGCONT');
      throw err;
    }
    const b = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'r1', group, readyTimeoutMs: 60_000 });
    const bs = await record(layout, 'r1');
    a.proc.kill('SIGCONT');

    const { code } = await a.proc.exited;
    expect(code, a.proc.tail()).toBe(1);
    const line = a.proc.stderr.find((l) => l.startsWith('paas-router: '));
    expect(line).toMatch(refusalLine(prefix, 'r1'));
    expect(line).toMatch(/: stopping$/);
    expect(await record(layout, 'r1')).toMatchObject(bs!);
    expect((await request(`${b.url}/`, { headers: { host: HOST } })).statusCode).toBe(200);
  });

  test('--workers 2: each worker claims <id>-w<k>; a second cluster with the same id refuses to start', async () => {
    const { endpoints, prefix, layout } = await setup('workers');
    const first = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'c1', extraArgs: ['--workers', '2'], group, readyTimeoutMs: 60_000 });
    const w1 = await record(layout, 'c1-w1');
    const w2 = await record(layout, 'c1-w2');
    expect(w1).toBeDefined();
    expect(w2).toBeDefined();

    const second = await spawnRouter(endpoints, prefix, 'c1', ['--workers', '2']);
    const { code } = await second.exited;
    expect(code, second.tail()).toBe(1);
    // Each refusing worker names its own id; the primary says a worker failed to start.
    expect(second.stderr.some((l) => /^paas-router: router id c1-w[12] is in use: /.test(l)), second.tail()).toBe(true);
    expect(second.stderr.at(-1)).toMatch(/^paas-router: worker c1-w[12] exited during start-up \(code 1/);
    expect(await record(layout, 'c1-w1')).toMatchObject(w1!);
    expect(await record(layout, 'c1-w2')).toMatchObject(w2!);
    expect((await request(`${first.url}/`, { headers: { host: HOST } })).statusCode).toBe(200);
  });
});
