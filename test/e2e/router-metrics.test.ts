/**
 * Metrics that scale (issue 13): the series count does not grow with apps unless
 * --metrics-per-app, whose series of a deleted app go; the gauges operators alert on; and
 * `promtool check metrics` accepts the exposition (make test installs promtool:
 * scripts/ensure-deploy-tools.sh). Real etcd, routers, sample app, undici, promtool.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import { processes, startRouter, startSampleApp, type RouterProcess, type SampleApp } from '../harness/processes.js';
import { runEtcdctl as etcdctl, uniquePrefix } from '../harness/etcd.js';
import { freePort } from '../harness/ports.js';
import { waitFor } from '../harness/wait.js';
import { promtool } from '../harness/promtool.js';

const endpoints = inject('etcdEndpoints');
const APPS = 20;
const VERSION = (JSON.parse(readFileSync(new URL('../../packages/router/package.json', import.meta.url), 'utf8')) as { version: string }).version;

async function metrics(router: RouterProcess): Promise<string> {
  return (await request(`${router.adminUrl}/metrics`)).body.text();
}

const series = (text: string, name: string) => text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));


async function setUp(prefix: string, app: SampleApp): Promise<void> {
  for (let i = 0; i < APPS; i++) {
    await etcdctl(endpoints, ['put', `${prefix}/apps/app-${i}`, JSON.stringify({ routes: [{ host: `app-${i}.example` }] })]);
    await etcdctl(endpoints, ['put', `${prefix}/instances/app-${i}/web-1`, JSON.stringify({ url: app.url, state: 'ready' })]);
  }
}

async function hitEveryApp(router: RouterProcess): Promise<void> {
  for (let i = 0; i < APPS; i++) {
    const res = await request(`${router.url}/`, { headers: { host: `app-${i}.example` } });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
  }
}

describe('router metrics', () => {
  let app: SampleApp;
  beforeAll(async () => {
    app = await startSampleApp({ app: 'metrics', name: 'web-1' });
  });
  afterAll(() => processes.stopAll());

  it('by default: as many request series for 20 apps as for one, no app label, and promtool accepts the exposition', async () => {
    const prefix = uniquePrefix('metrics-default');
    await setUp(prefix, app);
    const router = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'metrics-default-1' });
    await hitEveryApp(router);
    const text = await metrics(router);
    expect(series(text, 'router_requests_total')).toEqual(['router_requests_total{status="200"} 20']);
    // 13 bounds and +Inf: one histogram, whatever the number of apps.
    expect(series(text, 'router_upstream_duration_seconds_bucket')).toHaveLength(14);
    expect(text).not.toMatch(/app="/);
    const checked = await promtool(text);
    expect(checked.output).toBe('');
    expect(checked.code).toBe(0);
  });

  it('with --metrics-per-app: a series per app, and a deleted app\'s series removed', async () => {
    const prefix = uniquePrefix('metrics-per-app');
    await setUp(prefix, app);
    const router = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'metrics-per-app-1', extraArgs: ['--metrics-per-app'] });
    await hitEveryApp(router);
    const text = await metrics(router);
    expect(series(text, 'router_requests_total')).toHaveLength(APPS);
    expect(text).toContain('router_requests_total{app="app-3",status="200"} 1');
    expect(series(text, 'router_upstream_duration_seconds_count')).toHaveLength(APPS);
    expect((await promtool(text)).code).toBe(0);

    await etcdctl(endpoints, ['del', `${prefix}/apps/app-3`]);
    const after = await waitFor(async () => {
      const t = await metrics(router);
      return t.includes('app="app-3"') ? undefined : t;
    }, { timeoutMs: 10_000, message: 'app-3 series removed' });
    expect(series(after, 'router_requests_total')).toHaveLength(APPS - 1);
    expect(series(after, 'router_upstream_duration_seconds_count')).toHaveLength(APPS - 1);
  });

  it('reports requests in flight, client connections, etcd freshness and reachability, unhealthy instances and build info', async () => {
    const prefix = uniquePrefix('metrics-gauges');
    const closed = await freePort();
    // The instance on a closed port fails its health check: unhealthy for as long as it stays so.
    await etcdctl(endpoints, ['put', `${prefix}/apps/slow`, JSON.stringify({ routes: [{ host: 'slow.example' }], healthCheck: { intervalMs: 200, timeoutMs: 500 } })]);
    await etcdctl(endpoints, ['put', `${prefix}/instances/slow/web-1`, JSON.stringify({ url: app.url, state: 'ready' })]);
    await etcdctl(endpoints, ['put', `${prefix}/instances/slow/gone`, JSON.stringify({ url: `http://127.0.0.1:${closed}`, state: 'ready' })]);
    const router = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'metrics-gauges-1' });
    const base = await metrics(router);
    expect(base).toMatch(/^router_requests_in_flight 0$/m);
    expect(base).toMatch(/^router_etcd_connected 1$/m);
    expect(base).toContain(`router_build_info{version="${VERSION}",node="${process.version}"} 1`);

    const agent = new Agent({ connections: 2 });
    try {
      await waitFor(async () => /^router_unhealthy_instances 1$/m.test(await metrics(router)), { timeoutMs: 10_000, message: 'gone fails its check' });
      const slow = request(`${router.url}/slow?ms=3000`, { headers: { host: 'slow.example' }, dispatcher: agent });
      const during = await waitFor(async () => {
        const t = await metrics(router);
        return /^router_requests_in_flight 1$/m.test(t) ? t : undefined;
      }, { timeoutMs: 10_000, message: 'one request in flight' });
      expect(Number(/^router_client_connections (\d+)$/m.exec(during)![1])).toBeGreaterThanOrEqual(1);
      expect(during).toMatch(/^router_unhealthy_instances 1$/m);
      // Progress answers arrive every 500 ms while nothing changes.
      const age = Number(/^router_etcd_last_notice_age_seconds (\S+)$/m.exec(during)![1]);
      expect(age).toBeGreaterThanOrEqual(0);
      expect(age).toBeLessThan(5);
      expect((await (await slow).body.text()).length).toBeGreaterThan(0);
    } finally {
      await agent.close();
    }
    await waitFor(async () => /^router_requests_in_flight 0$/m.test(await metrics(router)), { timeoutMs: 10_000, message: 'in flight back to 0' });
  });
});
