/**
 * `--workers 2`: a cluster primary owning the admin listener and two workers, each a router
 * `<id>-w<k>` with its own etcd watch and status record, sharing the traffic port.
 * Runs its own etcd (this is the unit project: no shared etcd).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import http from 'node:http';
import { promisify } from 'node:util';
import { request } from 'undici';
import { startEtcd, uniquePrefix, type EtcdProcess } from '../../../test/harness/etcd.js';
import { processes, startRouter, startSampleApp, type RouterProcess } from '../../../test/harness/processes.js';
import { waitFor } from '../../../test/harness/wait.js';

interface WorkerStatus {
  id: string;
  pid: number;
  ready: boolean;
  revision: string;
  digest: string;
  inflight: Record<string, number>;
}
interface ClusterStatus {
  id: string;
  ready: boolean;
  revision: string;
  workers: WorkerStatus[];
}

let etcd: EtcdProcess;
let router: RouterProcess;
const prefix = uniquePrefix('workers');
const host = 'workers.example.com';

async function status(): Promise<ClusterStatus> {
  return (await (await request(`${router.adminUrl}/status`)).body.json()) as ClusterStatus;
}

/** On a new connection: connections a killed worker held are reset with it. */
function getFresh(): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(`${router.url}/`, { headers: { host }, agent: false, timeout: 3000 }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      })
      .on('timeout', () => reject(new Error('no answer within 3 s')))
      .on('error', reject);
  });
}

async function get(path = '/'): Promise<number> {
  const res = await request(`${router.url}${path}`, { headers: { host } });
  await res.body.dump();
  return res.statusCode;
}

beforeAll(async () => {
  etcd = await startEtcd();
  const app = await startSampleApp({ app: 'wk', name: 'wk1' });
  await etcd.etcdctl('put', `${prefix}/apps/wk`, JSON.stringify({ routes: [{ host }] }));
  await etcd.etcdctl('put', `${prefix}/instances/wk/wk1`, JSON.stringify({ url: app.url, state: 'ready' }));
  router = await startRouter({ etcdEndpoints: etcd.endpoints, prefix, id: 'wr', extraArgs: ['--workers', '2', '--log-level', 'warn', '--lease-ttl', '60s'] });
}, 60_000);

afterAll(async () => {
  await processes.stopAll();
  await etcd?.cleanup();
});

describe('--workers 2', { timeout: 15_000 }, () => {
  it('serves through both workers, each with its own status record, and aggregates /status and /metrics', async () => {
    for (let i = 0; i < 20; i++) expect(await get()).toBe(200);
    const s = await status();
    expect(s.ready).toBe(true);
    expect(s.workers.map((w) => w.id).sort()).toEqual(['wr-w1', 'wr-w2']);
    expect(new Set(s.workers.map((w) => w.digest)).size).toBe(1);
    expect(s.revision).toBe(s.workers.map((w) => w.revision).sort()[0]);
    const keys = (await etcd.etcdctl('get', '--prefix', `${prefix}/routers/`, '--keys-only')).split('\n').filter(Boolean);
    expect(keys.sort()).toEqual([`${prefix}/routers/wr-w1`, `${prefix}/routers/wr-w2`]);
    const metrics = await (await request(`${router.adminUrl}/metrics`)).body.text();
    const served = /router_requests_total\{status="200"\} (\d+)/.exec(metrics);
    expect(Number(served?.[1])).toBe(20);
    // One build_info line for the cluster, not one per worker.
    expect(metrics.split('\n').filter((l) => l.startsWith('router_build_info{'))).toHaveLength(1);
  });

  it('lists routes through a worker (the primary holds no table)', async () => {
    const res = await request(`${router.adminUrl}/routes?host=${host}`);
    expect(res.statusCode).toBe(200);
    const view = (await res.body.json()) as { routes: { host: string; app: string; instances: { id: string }[] }[] };
    expect(view.routes.map((r) => [r.host, r.app])).toEqual([[host, 'wk']]);
  });

  it('applies a change in every worker', async () => {
    await etcd.etcdctl('put', `${prefix}/overrides/${host}`, JSON.stringify({ maintenance: { status: 503, message: 'later' } }));
    await waitFor(async () => {
      const codes = await Promise.all(Array.from({ length: 8 }, () => get()));
      return codes.every((c) => c === 503);
    }, { timeoutMs: 5000, message: 'maintenance in both workers' });
    await etcd.etcdctl('del', `${prefix}/overrides/${host}`);
    await waitFor(async () => (await Promise.all(Array.from({ length: 8 }, () => get()))).every((c) => c === 200), { timeoutMs: 5000, message: 'override gone in both workers' });
  });

  // The lease TTL is 60 s: a new worker that waited for its predecessor's record to expire
  // would miss the 15 s below. /status is asked while the primary has not yet read that the
  // worker died, when a message to it fails (EPIPE) instead of being answered.
  it('starts a worker again when it dies, at once, and keeps serving and answering /status meanwhile', async () => {
    const before = await status();
    const victim = before.workers[0]!;
    process.kill(victim.pid, 'SIGKILL');
    const during = await Promise.all(Array.from({ length: 20 }, (_, i) => new Promise((r) => setTimeout(r, i * 2)).then(status)));
    for (const s of during) expect(s.workers).toHaveLength(2);
    for (let i = 0; i < 10; i++) expect(await getFresh()).toBe(200);
    await waitFor(async () => {
      const s = await status();
      return s.workers.length === 2 && s.workers.every((w) => w.ready) && !s.workers.some((w) => w.pid === victim.pid);
    }, { timeoutMs: 15_000, message: 'worker restarted' });
    const keys = (await etcd.etcdctl('get', '--prefix', `${prefix}/routers/`, '--keys-only')).split('\n').filter(Boolean);
    expect(keys.sort()).toEqual([`${prefix}/routers/wr-w1`, `${prefix}/routers/wr-w2`]);
  }, 30_000);

  it('on SIGTERM stops every worker, revokes their records and exits 0', async () => {
    router.proc.kill('SIGTERM');
    expect((await router.proc.exited).code).toBe(0);
    expect(await etcd.etcdctl('get', '--prefix', `${prefix}/routers/`, '--keys-only')).toBe('');
  });
});

describe('--workers 2 start-up failure', () => {
  it('exits 1 naming etcd when the workers cannot load within the start timeout', async () => {
    const bin = new URL('../bin/paas-router.js', import.meta.url).pathname;
    const run = promisify(execFile);
    const res = await run(process.execPath, [bin, '--workers', '2', '--etcd', 'http://127.0.0.1:1', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--start-timeout', '1500ms', '--log-level', 'silent']).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect((res as { code: number }).code).toBe(1);
    expect((res as { stderr: string }).stderr).toMatch(/127\.0\.0\.1:1/);
    expect((res as { stderr: string }).stderr).toMatch(/exited during start-up/);
  }, 20_000);
});
