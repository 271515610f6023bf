/**
 * The fleet page (`paas-deploy ui`) in a real browser: Debian's chromium driven by playwright-core,
 * over the real command, a real etcd and two real routers. What etcdctl writes appears on the open
 * page without a reload; a rejected record shows with its reason; records holding markup show as
 * text; a burst of etcd revisions reaches a browser as a few coalesced views; Ctrl-C exits 130.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { request } from 'undici';
import { connectEtcd, KeyLayout, type Etcd } from '@paas/registry';
import { runEtcdctl as etcdctl, uniquePrefix } from '../harness/etcd.js';
import { processes, startRouter, startSampleApp, type ManagedProcess, type RouterProcess } from '../harness/processes.js';
import { createCa } from '../harness/pki.js';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.js';
import { waitFor } from '../harness/wait.js';

const endpoints = inject('etcdEndpoints');
const DEPLOY_BIN = fileURLToPath(new URL('../../packages/deployer/bin/paas-deploy.js', import.meta.url));
const run = promisify(execFile);
/** Page conditions are awaited this long: the machine is shared. */
const DOM_TIMEOUT_MS = 15_000;

const prefix = uniquePrefix('ui');
const layout = new KeyLayout(prefix);
let etcd: Etcd;
let ui: ManagedProcess;
let pageUrl: string;
let browser: Browser;
let page: Page;
let routers: RouterProcess[];
/** The page's way to etcd, to cut. */
let proxy: TcpProxy;
/** A request held open through router ui-r1 to mango/m1 until the screenshot is taken. */
let held: Promise<string> | undefined;

async function deploy(args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [DEPLOY_BIN, ...args], { env: { ...process.env, ETCD_ENDPOINTS: endpoints.join(','), PAAS_PREFIX: prefix } });
  return stdout;
}

async function putJson(key: string, value: unknown): Promise<void> {
  await etcdctl(endpoints, ['put', key, JSON.stringify(value)]);
}

/** What the functions run in the page touch of its globals (the tests compile without the DOM library). */
interface PageGlobals {
  document: { querySelector(selector: string): { textContent: string | null } | null };
  notReloaded?: boolean;
  pwned?: number;
}

/** The text of the element `selector` once it equals or includes `want` (the DOM is polled: no fixed sleeps). */
async function waitForText(selector: string, want: { equals: string } | { includes: string }, what: string): Promise<string> {
  const handle = await page
    .waitForFunction(
      ([sel, equals, includes]) => {
        const text = (globalThis as unknown as PageGlobals).document.querySelector(sel)?.textContent ?? null;
        if (text === null) return null;
        return (equals !== null && text === equals) || (includes !== null && text.includes(includes)) ? text : null;
      },
      [selector, 'equals' in want ? want.equals : null, 'includes' in want ? want.includes : null] as const,
      { timeout: DOM_TIMEOUT_MS, polling: 50 },
    )
    .catch((err: unknown) => {
      throw new Error(`${what}: ${(err as Error).message}`);
    });
  return (await handle.jsonValue()) as string;
}

beforeAll(async () => {
  etcd = connectEtcd({ endpoints });
  const good = await startSampleApp({ app: 'mango', name: 'm1' });
  await putJson(layout.app('mango'), { routes: [{ host: 'www.mango.com' }] });
  await putJson(layout.instance('mango', 'm1'), { url: good.url, state: 'ready', release: 'v1' });
  const sick = await startSampleApp({ app: 'plum', name: 'p1', unhealthy: true });
  await putJson(layout.app('plum'), { routes: [{ host: 'plum.example' }], healthCheck: { path: '/healthz', intervalMs: 200, timeoutMs: 500 } });
  await putJson(layout.instance('plum', 'p1'), { url: sick.url, state: 'ready', release: 'v3' });
  routers = await Promise.all(['ui-r1', 'ui-r2'].map((id) => startRouter({ etcdEndpoints: endpoints, prefix, id, readyTimeoutMs: 30_000 })));
  // Port 0: the command says where it serves, so no port is guessed free.
  proxy = await startTcpProxy(endpoints[0]!);
  ui = processes.spawn(process.execPath, [DEPLOY_BIN, 'ui', '--listen', '127.0.0.1:0'], { name: 'paas-deploy ui', env: { ETCD_ENDPOINTS: proxy.url, PAAS_PREFIX: prefix } });
  const line = await ui.waitForLine((l) => l.includes('the fleet page is at'), { timeoutMs: 20_000, stream: 'stdout' });
  pageUrl = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(line)![1]!;
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  await page.goto(pageUrl);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await etcd?.close();
  await proxy?.close();
});

describe('paas-deploy ui: the fleet page in a browser', () => {
  it('shows both routers, current, and the app with its instance on each router', async () => {
    for (const id of ['ui-r1', 'ui-r2']) {
      await waitForText(`[data-router="${id}"] [data-col="lag"]`, { equals: '0' }, `router ${id} shown current`);
    }
    expect(await waitForText('[data-instance="mango/m1"] [data-col="state"]', { equals: 'ready' }, 'mango/m1 ready')).toBe('ready');
    for (const id of ['ui-r1', 'ui-r2']) {
      expect(await page.textContent(`[data-instance="mango/m1"] [data-router-cell="${id}"]`)).toBe('ok 0 in flight');
    }
    expect(await page.textContent('[data-app="mango"] .routes')).toBe('www.mango.com');
    expect(await page.textContent('#live')).toBe('live');
  });

  it('shows per router the health of each instance and the requests in flight to it', async () => {
    for (const id of ['ui-r1', 'ui-r2']) {
      await waitForText(`[data-instance="plum/p1"] [data-router-cell="${id}"]`, { includes: 'failing: status 503' }, `plum/p1 failing on ${id}`);
    }
    expect(await page.textContent('[data-tile="unhealthy"] .n')).toBe('1');
    held = request(`${routers[0]!.url}/hold?id=ui`, { headers: { host: 'www.mango.com' } }).then((r) => r.body.text());
    await waitForText('[data-instance="mango/m1"] [data-router-cell="ui-r1"]', { equals: 'ok 1 in flight' }, 'the held request on ui-r1');
    expect(await page.textContent('[data-instance="mango/m1"] [data-router-cell="ui-r2"]')).toBe('ok 0 in flight');
    expect(await page.textContent('[data-instance="mango/m1"] [data-col="inflight"]')).toBe('1');
  });

  it('shows a change made with etcdctl without a reload', async () => {
    await page.evaluate(() => {
      (globalThis as unknown as PageGlobals).notReloaded = true;
    });
    await putJson(layout.app('kiwi'), { routes: [{ host: 'kiwi.example', path: '/shop' }] });
    await putJson(layout.instance('kiwi', 'k1'), { url: 'http://127.0.0.1:9', state: 'starting', release: 'v7' });
    await waitForText('[data-instance="kiwi/k1"] [data-col="state"]', { equals: 'starting' }, 'kiwi/k1 appears, starting');
    const revision = await etcd.put(layout.instance('kiwi', 'k1'), JSON.stringify({ url: 'http://127.0.0.1:9', state: 'draining', release: 'v7' }));
    await waitForText('[data-instance="kiwi/k1"] [data-col="state"]', { equals: 'draining' }, 'kiwi/k1 turns draining');
    expect(BigInt((await page.textContent('#revision'))!)).toBeGreaterThanOrEqual(revision);
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).notReloaded)).toBe(true);
  });

  it('shows a rejected record with its reason and the routers rejecting it', async () => {
    const key = layout.instance('kiwi', 'k2');
    await putJson(key, { url: 'http://127.0.0.1:9', state: 'runing' });
    const row = `#rejected tr[data-key="${key}"]`;
    await waitForText(row, { includes: 'ui-r1, ui-r2' }, 'k2 rejected by both routers');
    expect(await page.textContent(`${row} td:nth-child(3)`)).toBe('state: must be one of starting, ready, draining');
    expect(await page.textContent('[data-tile="rejected"] .n')).toBe('1');
    expect(await page.textContent('[data-instance="kiwi/k2"] [data-col="state"]')).toBe('invalid');
  });

  it('shows records holding markup as text, and runs none of it', async () => {
    const evilName = '<img src=x onerror="window.pwned=1">';
    const evilHost = '<script>window.pwned=2</script>';
    await etcdctl(endpoints, ['put', `${layout.appsDir}${evilName}`, JSON.stringify({ routes: [{ host: evilHost }] })]);
    await putJson(layout.instance('kiwi', 'k3'), { url: 'http://127.0.0.1:9', state: 'ready', note: '</td><script>window.pwned=3</script>' });
    const card = await page.waitForSelector(`[data-app='${evilName.replace(/'/g, "\\'")}']`, { timeout: DOM_TIMEOUT_MS });
    expect(await card.$eval('h3', (h) => h.textContent)).toBe(evilName);
    await waitForText('[data-instance="kiwi/k3"]', { includes: 'unknown fields: note' }, 'k3 with its unknown field');
    // The router rejects the evil key; its reason names it, shown as text.
    await waitForText('#rejected', { includes: '<img src=x onerror="window.pwned=1">' }, 'the evil key listed as rejected');
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).pwned)).toBeUndefined();
    expect(await page.locator('main img').count()).toBe(0);
    expect(await page.locator('script').count()).toBe(1);
  });

  it('serves the view as JSON, refuses foreign Host names, and sends the page with a strict CSP', async () => {
    const res = await request(`${pageUrl}fleet.json`);
    expect(res.statusCode).toBe(200);
    const view = (await res.body.json()) as { prefix: string; routers: { id: string }[]; apps: { name: string }[] };
    expect(view.prefix).toBe(prefix);
    expect(view.routers.map((r) => r.id)).toEqual(['ui-r1', 'ui-r2']);
    expect(view.apps.map((a) => a.name)).toContain('kiwi');

    const rebound = await request(pageUrl, { headers: { host: 'attacker.example:8081' } });
    expect(rebound.statusCode).toBe(403);
    await rebound.body.dump();

    const html = await request(pageUrl);
    expect(html.headers['content-security-policy']).toMatch(/^default-src 'none'; script-src 'sha256-[^']+'; style-src 'sha256-[^']+'; connect-src 'self'/);
    await html.body.dump();
  });

  it('shows overrides, certificates and tunnel tokens once they exist', async () => {
    expect(await page.locator('#certs, #tunnels').count()).toBe(0);
    const ca = await createCa();
    const www = await ca.issue({ dns: ['www.mango.com'] });
    await deploy(['cert', 'set', 'mango-www', '--cert', await ca.writeFile('www.pem', www.certPem), '--key', await ca.writeFile('www.key', www.keyPem)]);
    const token = /token (\S+),/.exec(await deploy(['tunnel-token', 'create', 'kiwi', '--expires', '720h']))![1]!;
    await deploy(['maintenance', 'on', 'shop.kiwi.example', '--message', 'Back at 14:00', '--for', '30m']);
    await waitForText('#certs', { includes: 'www.mango.com' }, 'the certificate listed');
    await waitForText('#tunnels', { includes: token }, 'the tunnel token listed');
    await waitForText('#overrides', { includes: 'maintenance 503: Back at 14:00' }, 'the override listed');
  });

  it('saves a screenshot of the page', async () => {
    // A settled fleet: both routers have applied everything written above.
    for (const id of ['ui-r1', 'ui-r2']) await waitForText(`[data-router="${id}"] [data-col="lag"]`, { equals: '0' }, `router ${id} current`);
    const path = join(mkdtempSync(join(tmpdir(), 'paas-ui-')), 'fleet-page.png');
    await page.screenshot({ path, fullPage: true });
    console.log(`fleet page screenshot: ${path}`);
    const release = await request(`${routers[0]!.url}/release?id=ui`, { headers: { host: 'www.mango.com' } });
    expect(await release.body.text()).toBe('released 1');
    await held;
    await waitForText('[data-instance="mango/m1"] [data-col="inflight"]', { equals: '0' }, 'nothing in flight once released');
  });

  it('coalesces a burst of etcd revisions into a few views', async () => {
    const BURST = 100;
    const res = await request(`${pageUrl}events`);
    expect(res.headers['content-type']).toBe('text/event-stream');
    let views = 0;
    let buffered = '';
    let last: { apps: { name: string; instances: unknown[] }[] } | undefined;
    const reading = (async () => {
      for await (const chunk of res.body) {
        buffered += chunk.toString();
        let cut: number;
        while ((cut = buffered.indexOf('\n\n')) >= 0) {
          const message = buffered.slice(0, cut);
          buffered = buffered.slice(cut + 2);
          const data = /^data: (.*)$/m.exec(message);
          if (message.startsWith('event: fleet') && data) {
            views++;
            last = JSON.parse(data[1]!) as typeof last;
          }
        }
      }
    })();
    await waitFor(() => views >= 1, { message: 'the current view, first' });
    const before = views;
    // One revision each, all at once.
    await Promise.all(Array.from({ length: BURST }, (_, i) => etcd.put(layout.instance('burst', `b${i}`), JSON.stringify({ url: `http://127.0.0.1:${10_000 + i}`, state: 'ready' }))));
    await waitFor(() => last?.apps.find((a) => a.name === 'burst')?.instances.length === BURST, { timeoutMs: DOM_TIMEOUT_MS, message: 'the burst in one view' });
    const pushed = views - before;
    res.body.destroy();
    await reading.catch(() => {});
    console.log(`${BURST} revisions reached the stream as ${pushed} views`);
    expect(pushed).toBeGreaterThanOrEqual(1);
    expect(pushed).toBeLessThan(BURST / 4);
    await waitForText('[data-app="burst"] .sub', { includes: `${BURST} ready` }, 'the page shows the burst');
  });

  it('says when etcd is out of reach, and catches up once it is back', async () => {
    proxy.cut();
    await waitForText('#live', { includes: 'etcd unreachable: as of revision' }, 'the page says etcd is out of reach');
    await putJson(layout.instance('kiwi', 'k4'), { url: 'http://127.0.0.1:9', state: 'ready', release: 'v8' });
    proxy.restore();
    await waitForText('[data-instance="kiwi/k4"] [data-col="state"]', { equals: 'ready' }, 'the change made meanwhile shown');
    await waitForText('#live', { equals: 'live' }, 'live again');
  });

  it('exits 130 on Ctrl-C, and 2 with one line on a bad --listen', async () => {
    ui.kill('SIGINT');
    expect((await ui.exited).code).toBe(130);
    expect(ui.stderr.at(-1)).toBe('paas-deploy: SIGINT: stopping (closing the fleet page); SIGINT again to quit at once');
    const bad = await run(process.execPath, [DEPLOY_BIN, 'ui', '--listen', 'localhost:8081']).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => err,
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('paas-deploy: ui: --listen "localhost:8081" is not IP:PORT (e.g. 127.0.0.1:8081 or [::1]:8081)\n');
  });
});
