/**
 * What an operator sees of records and instances (issue 13): a route without host or path is
 * rejected, unknown fields are warned about, ejected and failing instances are reported with
 * reason and time, and an idle fleet shows LAG 0. Real etcd, real routers and sample apps, the
 * real paas-deploy command, etcdctl and undici.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { request } from 'undici';
import { processes, startRouter, startSampleApp, type RouterProcess, type SampleApp } from '../harness/processes.js';
import { runEtcdctl as etcdctl, uniquePrefix } from '../harness/etcd.js';
import { freePort } from '../harness/ports.js';
import { waitFor } from '../harness/wait.js';

const endpoints = inject('etcdEndpoints');
const DEPLOY_BIN = fileURLToPath(new URL('../../packages/deployer/bin/paas-deploy.js', import.meta.url));
const SAMPLE_APP = fileURLToPath(new URL('../apps/sample-app.mjs', import.meta.url));
const run = promisify(execFile);

interface Status {
  revision: string;
  currentRevision: string;
  rejected: { key: string; error: string }[];
  warnings: { key: string; revision: string; unknownFields: string[] }[];
  warningsCount: number;
  unhealthy: { instance: string; problem: string; reason: string; since: string; until?: string }[];
  unhealthyCount: number;
}

async function status(router: RouterProcess): Promise<Status> {
  return (await (await request(`${router.adminUrl}/status`)).body.json()) as Status;
}

async function putJson(key: string, value: unknown): Promise<void> {
  await etcdctl(endpoints, ['put', key, JSON.stringify(value)]);
}

async function deploy(prefix: string, args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [DEPLOY_BIN, ...args], { env: { ...process.env, ETCD_ENDPOINTS: endpoints.join(','), PAAS_PREFIX: prefix } });
  return stdout;
}

async function statusRecord(prefix: string, id: string): Promise<Status> {
  const out = await etcdctl(endpoints, ['get', '--print-value-only', `${prefix}/routers/${id}`]);
  return JSON.parse(out) as Status;
}

describe('record safety: catch-alls, unknown fields, allowed values', () => {
  const prefix = uniquePrefix('ops-records');
  let router: RouterProcess;

  beforeAll(async () => {
    router = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'ops-rec-1' });
  });
  afterAll(() => processes.stopAll());

  it('rejects a route with neither host nor path (a typo must not make a catch-all)', async () => {
    await putJson(`${prefix}/apps/kiwi`, { routes: [{ hots: 'www.kiwi.com' }] });
    const s = await waitFor(async () => {
      const st = await status(router);
      return st.rejected.some((r) => r.key === `${prefix}/apps/kiwi`) ? st : undefined;
    }, { timeoutMs: 10_000, message: 'kiwi rejected' });
    expect(s.rejected.find((r) => r.key === `${prefix}/apps/kiwi`)!.error).toBe('routes.0: needs a host or a path (a catch-all is written {"path": "/"})');
    // An unmatched host is not sent to kiwi.
    const res = await request(`${router.url}/`, { headers: { host: 'anything.example' } });
    expect(res.statusCode).toBe(404);
    await res.body.dump();
  });

  it('says which values a field allows', async () => {
    await putJson(`${prefix}/instances/kiwi/k1`, { url: 'http://127.0.0.1:1', state: 'runing' });
    const s = await waitFor(async () => {
      const st = await status(router);
      return st.rejected.some((r) => r.key === `${prefix}/instances/kiwi/k1`) ? st : undefined;
    }, { timeoutMs: 10_000, message: 'k1 rejected' });
    expect(s.rejected.find((r) => r.key === `${prefix}/instances/kiwi/k1`)!.error).toBe('state: must be one of starting, ready, draining');
  });

  it('accepts unknown fields and reports them with key and field: log, /status, status record, metric, paas-deploy status', async () => {
    const key = `${prefix}/apps/mango`;
    await putJson(key, { routes: [{ host: 'www.mango.com', pth: '/api' }], balanse: 'random' });
    const s = await waitFor(async () => {
      const st = await status(router);
      return st.warnings.some((w) => w.key === key) ? st : undefined;
    }, { timeoutMs: 10_000, message: 'mango warned about' });
    expect(s.warnings).toEqual([{ key, revision: expect.stringMatching(/^\d+$/), unknownFields: ['routes.0.pth', 'balanse'] }]);
    expect(s.warningsCount).toBe(1);
    // Accepted: the route works.
    expect(s.rejected.some((r) => r.key === key)).toBe(false);

    const line = await router.proc.waitForLine((l) => l.includes('record accepted with unknown fields'));
    expect(JSON.parse(line)).toMatchObject({ level: 'warn', key, unknownFields: ['routes.0.pth', 'balanse'] });

    const record = await waitFor(async () => {
      const r = await statusRecord(prefix, 'ops-rec-1');
      return r.warningsCount === 1 ? r : undefined;
    }, { timeoutMs: 10_000, message: 'the status record carries the warning' });
    expect(record.warnings[0]!.unknownFields).toEqual(['routes.0.pth', 'balanse']);

    const metrics = await (await request(`${router.adminUrl}/metrics`)).body.text();
    expect(metrics).toMatch(/^router_record_warnings 1$/m);

    const text = await deploy(prefix, ['status']);
    expect(text).toContain(`warning: ${key} (revision ${s.warnings[0]!.revision}): unknown fields ignored: routes.0.pth, balanse`);
    expect(text).toContain('warning: unknown fields in the app record (ignored): routes.0.pth, balanse');

    // Fixed: the warning goes.
    await putJson(key, { routes: [{ host: 'www.mango.com', path: '/api' }] });
    await waitFor(async () => (await status(router)).warningsCount === 0, { timeoutMs: 10_000, message: 'warning gone once fixed' });
  });
});

describe('instance health: ejected and failing instances with reason and since when', () => {
  const prefix = uniquePrefix('ops-health');
  let router: RouterProcess;
  let good: SampleApp;
  let sick: SampleApp;
  let closed: number;

  beforeAll(async () => {
    good = await startSampleApp({ app: 'pear', name: 'good' });
    sick = await startSampleApp({ app: 'plum', name: 'sick', unhealthy: true });
    closed = await freePort();
    await putJson(`${prefix}/apps/pear`, { routes: [{ host: 'pear.example' }] });
    await putJson(`${prefix}/instances/pear/good`, { url: good.url, state: 'ready' });
    await putJson(`${prefix}/instances/pear/gone`, { url: `http://127.0.0.1:${closed}`, state: 'ready' });
    await putJson(`${prefix}/apps/plum`, { routes: [{ host: 'plum.example' }], healthCheck: { path: '/healthz', intervalMs: 200, timeoutMs: 500 } });
    await putJson(`${prefix}/instances/plum/sick`, { url: sick.url, state: 'ready' });
    router = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'ops-health-1' });
  });
  afterAll(() => processes.stopAll());

  it('reports an instance refusing connections as ejected, and one failing its check as failing, in /status, the record, the log and paas-deploy status', async () => {
    // Round robin over good and gone: requests reach gone, are refused and fail over (each round
    // sends some, so an ejection that ran out on a slow machine is renewed before /status is read).
    const s = await waitFor(async () => {
      for (let i = 0; i < 4; i++) {
        const res = await request(`${router.url}/`, { headers: { host: 'pear.example' } });
        expect(res.statusCode).toBe(200);
        await res.body.dump();
      }
      const st = await status(router);
      return st.unhealthy.some((u) => u.instance === 'pear/gone') && st.unhealthy.some((u) => u.instance === 'plum/sick') ? st : undefined;
    }, { timeoutMs: 10_000, message: 'pear/gone ejected and plum/sick failing' });
    const gone = s.unhealthy.find((u) => u.instance === 'pear/gone')!;
    expect(gone).toMatchObject({ problem: 'ejected', reason: 'ECONNREFUSED' });
    expect(Date.parse(gone.until!)).toBeGreaterThan(Date.parse(gone.since));
    const sickEntry = s.unhealthy.find((u) => u.instance === 'plum/sick')!;
    expect(sickEntry).toMatchObject({ problem: 'failing', reason: 'status 503' });
    expect(Date.now() - Date.parse(sickEntry.since)).toBeLessThan(60_000);
    expect(s.unhealthy.some((u) => u.instance === 'pear/good')).toBe(false);

    const ejectedLine = JSON.parse(await router.proc.waitForLine((l) => l.includes('"instance ejected"')));
    expect(ejectedLine).toMatchObject({ app: 'pear', instance: 'gone', reason: 'ECONNREFUSED' });
    const failingLine = JSON.parse(await router.proc.waitForLine((l) => l.includes('instance fails its health check')));
    expect(failingLine).toMatchObject({ app: 'plum', instance: 'sick', reason: 'status 503' });

    const record = await waitFor(async () => {
      const r = await statusRecord(prefix, 'ops-health-1');
      return r.unhealthy?.some((u) => u.instance === 'plum/sick') ? r : undefined;
    }, { timeoutMs: 10_000, message: 'the status record lists plum/sick' });
    expect(record.unhealthyCount).toBeGreaterThanOrEqual(1);

    const text = await deploy(prefix, ['status', 'plum']);
    expect(text).toMatch(/sick\s+ready\s+-\s+http:\/\/127\.0\.0\.1:\d+\s+-\s+ops-health-1: failing since \S+ \(status 503\)/);
  });

  it('logs one line when an ejected instance answers again, and lists it no more', async () => {
    // Something listens on the refused port now: once its ejection runs out, a request reaches it.
    const revived = processes.spawn(process.execPath, [SAMPLE_APP, '--port', String(closed), '--app', 'pear', '--name', 'gone'], { name: 'sample-app gone' });
    await revived.waitForLine((l, stream) => stream === 'stdout' && l.includes('"listening"'));
    const back = await waitFor(async () => {
      const res = await request(`${router.url}/`, { headers: { host: 'pear.example' } });
      expect(res.statusCode).toBe(200);
      await res.body.dump();
      return router.proc.tail(400).split('\n').find((l) => l.includes('instance back'));
    }, { timeoutMs: 20_000, message: 'pear/gone back' });
    expect(JSON.parse(back.replace(/^\[stdout\] /, ''))).toMatchObject({ level: 'info', app: 'pear', instance: 'gone', ejectedForMs: expect.any(Number) });
    expect((await status(router)).unhealthy.some((u) => u.instance === 'pear/gone')).toBe(false);
  });
});

describe('LAG on an idle fleet', () => {
  const prefix = uniquePrefix('ops-lag');
  let r1: RouterProcess;
  let r2: RouterProcess;

  beforeAll(async () => {
    await putJson(`${prefix}/apps/fig`, { routes: [{ host: 'fig.example' }] });
    r1 = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'ops-lag-1' });
    r2 = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'ops-lag-2' });
  });
  afterAll(() => processes.stopAll());

  it('is known current past writes outside its watched range (progress answers), and shows LAG 0 after the routers\' status writes', async () => {
    // Each router's own status writes move etcd's revision past the last routing change.
    const get = async (id: string) => JSON.parse(await etcdctl(endpoints, ['get', '-w', 'json', `${prefix}/routers/${id}`])) as { kvs: { mod_revision: number }[]; header: { revision: number } };
    const firstWrites = Math.max((await get('ops-lag-1')).kvs[0]!.mod_revision, (await get('ops-lag-2')).kvs[0]!.mod_revision);
    // Known current past those writes without any routing change:
    await waitFor(async () => {
      const [a, b] = [await status(r1), await status(r2)];
      return BigInt(a.currentRevision) > BigInt(firstWrites) && BigInt(b.currentRevision) > BigInt(firstWrites);
    }, { timeoutMs: 15_000, message: 'both routers known current past the status writes' });
    // ...while the revision each applied (its list's) stays below them: nothing routing changed.
    const applied = [(await status(r1)).revision, (await status(r2)).revision];
    for (const rev of applied) expect(BigInt(rev)).toBeLessThan(BigInt(firstWrites));

    // paas-deploy reads the records after more status writes (heartbeats) landed.
    const out = await waitFor(async () => {
      const json = JSON.parse(await deploy(prefix, ['status', '--json'])) as { revision: string; routers: { id: string; lag: string; revision: string }[] };
      return json.routers.length === 2 && BigInt(json.revision) > BigInt(firstWrites) + 2n ? json : undefined;
    }, { timeoutMs: 20_000, message: 'two routers and later status writes' });
    expect(out.routers.map((r) => [r.id, r.lag])).toEqual([['ops-lag-1', '0'], ['ops-lag-2', '0']]);
    expect(out.routers.map((r) => r.revision)).toEqual(applied);
    const text = await deploy(prefix, ['status']);
    expect(text).toMatch(/ops-lag-1\s+\d+\s+0\s/);
    expect(text).toMatch(/ops-lag-2\s+\d+\s+0\s/);
  });

  it('publishes its load in the status record, and paas-deploy status shows it per router', async () => {
    interface Load { requestsPerSecond: number; connections: number; eventLoopUtilization: number; cpu: number; rssBytes: number; loadAverage: number; sampledAt: string }
    // A sample every 5 s, written with the next status record (at least every 3.3 s with the default lease).
    const load = await waitFor(async () => (JSON.parse(await etcdctl(endpoints, ['get', '--print-value-only', `${prefix}/routers/ops-lag-1`])) as { load?: Load }).load, { timeoutMs: 20_000, intervalMs: 200, message: 'a load sample in the status record' });
    expect(load.connections).toBeGreaterThanOrEqual(0);
    expect(load.eventLoopUtilization).toBeGreaterThanOrEqual(0);
    expect(load.eventLoopUtilization).toBeLessThanOrEqual(1);
    expect(load.rssBytes).toBeGreaterThan(20 * 1024 * 1024);
    expect(Date.parse(load.sampledAt)).not.toBeNaN();
    const text = await deploy(prefix, ['status']);
    expect(text).toMatch(/ops-lag-1 load: [\d.]+ req\/s, \d+ connections, event loop \d+%, CPU [\d.]+ cores, RSS \d+ MB, load average [\d.]+/);
  });
});

describe('GET /routes on the admin listener', () => {
  const prefix = uniquePrefix('ops-routes');
  let router: RouterProcess;
  let web: SampleApp;

  beforeAll(async () => {
    web = await startSampleApp({ app: 'mango', name: 'web-1' });
    await putJson(`${prefix}/apps/mango`, { routes: [{ host: 'www.mango.com' }, { host: '*.mango.com', path: '/api' }] });
    await putJson(`${prefix}/apps/mango-old`, { routes: [{ host: 'www.mango.com' }] });
    await putJson(`${prefix}/apps/kiwi`, { routes: [{ host: 'kiwi.example', path: '/shop' }] });
    await putJson(`${prefix}/apps/fallback`, { routes: [{ path: '/' }] });
    await putJson(`${prefix}/instances/mango/web-1`, { url: web.url, state: 'ready', weight: 3 });
    await putJson(`${prefix}/instances/mango/web-2`, { url: 'http://127.0.0.1:9', state: 'draining' });
    await putJson(`${prefix}/overrides/kiwi.example`, { maintenance: { status: 503, message: 'back soon' } });
    router = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'ops-routes-1' });
  });
  afterAll(() => processes.stopAll());

  interface View {
    revision: string;
    total: number;
    truncated: boolean;
    override: unknown;
    routes: { host: string; path: string; app: string; losers: string[]; instances: { id: string; url: string; state: string; weight: number; health: string; inflight: number }[] }[];
  }
  const get = async (query: string, headers: Record<string, string> = {}) => {
    const res = await request(`${router.adminUrl}/routes${query}`, { headers });
    return { status: res.statusCode, type: String(res.headers['content-type']), body: await res.body.text() };
  };

  it('lists host and path -> app -> instances with state, weight, health and in-flight, filtered by host', async () => {
    const res = await get('?host=api.mango.com');
    expect(res.status).toBe(200);
    expect(res.type).toMatch(/application\/json/);
    const view = JSON.parse(res.body) as View;
    // The wildcard route and the host-less one serve api.mango.com; www.mango.com's does not.
    expect(view.routes.map((r) => [r.host, r.path, r.app])).toEqual([['*.mango.com', '/api', 'mango'], ['', '/', 'fallback']]);
    expect(view.routes[0]!.instances).toEqual([
      { id: 'web-1', url: web.url, state: 'ready', weight: 3, health: 'ok', inflight: 0 },
      { id: 'web-2', url: 'http://127.0.0.1:9', state: 'draining', weight: 1, health: 'ok', inflight: 0 },
    ]);
    expect(view.total).toBe(4);
    expect(view.override).toBeNull();

    const www = JSON.parse((await get('?host=WWW.Mango.com:8080')).body) as View;
    expect(www.routes.map((r) => [r.host, r.path, r.app, r.losers])).toEqual([
      ['www.mango.com', '/', 'mango', ['mango-old']],
      ['*.mango.com', '/api', 'mango', []],
      ['', '/', 'fallback', []],
    ]);
    const kiwi = JSON.parse((await get('?host=kiwi.example')).body) as View;
    expect(kiwi.override).toEqual({ maintenance: { status: 503, message: 'back soon' } });
  });

  it('filters by app, lists everything without a filter, and answers plain text for a terminal', async () => {
    const mango = JSON.parse((await get('?app=mango')).body) as View;
    expect(mango.routes.map((r) => `${r.host}${r.path}`).sort()).toEqual(['*.mango.com/api', 'www.mango.com/']);
    const both = JSON.parse((await get('?app=mango&host=mango.com')).body) as View;
    expect(both.routes).toEqual([]);
    const sub = JSON.parse((await get('?app=mango&host=shop.mango.com')).body) as View;
    expect(sub.routes.map((r) => `${r.host}${r.path}`)).toEqual(['*.mango.com/api']);
    const all = JSON.parse((await get('')).body) as View;
    expect(all.routes).toHaveLength(4);
    const limited = JSON.parse((await get('?limit=2')).body) as View;
    expect([limited.routes.length, limited.truncated]).toEqual([2, true]);

    for (const text of [await get('?app=mango&format=text'), await get('?app=mango', { accept: 'text/plain' })]) {
      expect(text.type).toMatch(/text\/plain/);
      expect(text.body).toMatch(/^revision \d+  routes 2 of 4\n/);
      expect(text.body).toMatch(/HOST\s+PATH\s+APP\s+INSTANCE\s+STATE\s+WEIGHT\s+HEALTH\s+IN-FLIGHT\s+URL/);
      expect(text.body).toMatch(/\*\.mango\.com\s+\/api\s+mango\s+web-1\s+ready\s+3\s+ok\s+0\s+http:\/\/127\.0\.0\.1:\d+/);
      expect(text.body).toMatch(/www\.mango\.com\s+\/\s+mango \(over mango-old\)\s+web-2\s+draining\s+1\s+ok\s+0\s+http:\/\/127\.0\.0\.1:9/);
    }
    expect((await get('?limit=0')).status).toBe(400);
    expect((await get('?format=xml')).status).toBe(400);
  });
});
