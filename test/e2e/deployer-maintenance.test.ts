/**
 * paas-deploy maintenance on/off (issue 13, item 7): a maintenance override written by the
 * command, served by a real router, listed by `paas-deploy status`, ending by itself with --for
 * (its etcd lease expires), and off refusing to delete an override that routes to an app. Real
 * etcd, router, sample app, the real paas-deploy command and undici.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runEtcdctl as etcdctl, uniquePrefix } from '../harness/etcd.js';
import { processes, startRouter, startSampleApp, type RouterProcess } from '../harness/processes.js';
import { waitFor } from '../harness/wait.js';

const endpoints = inject('etcdEndpoints');
const DEPLOY_BIN = fileURLToPath(new URL('../../packages/deployer/bin/paas-deploy.js', import.meta.url));
const prefix = uniquePrefix('maintenance');
const run = promisify(execFile);

async function deploy(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [DEPLOY_BIN, ...args], { env: { ...process.env, ETCD_ENDPOINTS: endpoints.join(','), PAAS_PREFIX: prefix } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function answer(router: RouterProcess, host: string): Promise<{ status: number; body: string }> {
  const res = await request(`${router.url}/`, { headers: { host } });
  return { status: res.statusCode, body: await res.body.text() };
}

describe('paas-deploy maintenance', () => {
  let router: RouterProcess;

  beforeAll(async () => {
    const app = await startSampleApp({ app: 'kiwi', name: 'kiwi-1' });
    await etcdctl(endpoints, ['put', `${prefix}/apps/kiwi`, JSON.stringify({ routes: [{ host: 'www.kiwi.com' }, { host: 'beta.kiwi.com' }] })]);
    await etcdctl(endpoints, ['put', `${prefix}/instances/kiwi/kiwi-1`, JSON.stringify({ url: app.url, state: 'ready' })]);
    await etcdctl(endpoints, ['put', `${prefix}/overrides/beta.kiwi.com`, JSON.stringify({ app: 'kiwi' })]);
    router = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'maint-1' });
    await waitFor(async () => (await answer(router, 'www.kiwi.com')).status === 200, { timeoutMs: 10_000, message: 'kiwi served' });
  });
  afterAll(() => processes.stopAll());

  it('puts a host under maintenance for a while: served by the router, listed by status, gone when its lease ends', async () => {
    // 10 s: `paas-deploy status` below must read the override before it ends, on a loaded machine too.
    const on = await deploy(['maintenance', 'on', 'www.kiwi.com', '--for', '10s', '--message', 'Back soon', '--status', '503']);
    expect(on.code, on.stderr).toBe(0);
    expect(on.stdout).toMatch(/maintenance on www\.kiwi\.com: .*overrides\/www\.kiwi\.com at revision \d+, ends by itself at \d{4}-/);
    // The command returned once the router applied it: the next request gets the maintenance answer.
    expect(await answer(router, 'www.kiwi.com')).toEqual({ status: 503, body: 'Back soon' });

    const status = await deploy(['status']);
    expect(status.stdout).toContain('OVERRIDES (2)');
    const ends = /www\.kiwi\.com\s+maintenance 503: Back soon\s+(?:in (\d+)s|now)/.exec(status.stdout);
    expect(ends, status.stdout).not.toBeNull();
    expect(Number(ends![1] ?? 0)).toBeLessThanOrEqual(10);
    expect(status.stdout).toMatch(/beta\.kiwi\.com\s+app kiwi\s+-/);

    // Nobody turns it off: etcd removes the key when the lease expires, and the app is back.
    await waitFor(async () => (await answer(router, 'www.kiwi.com')).status === 200, { timeoutMs: 25_000, intervalMs: 100, message: 'the override to end with its lease' });
    expect((await etcdctl(endpoints, ['get', '--print-value-only', `${prefix}/overrides/www.kiwi.com`])).trim()).toBe('');
  });

  it('without --for lasts until maintenance off; off refuses an override that routes to an app, and bad input', async () => {
    expect((await deploy(['maintenance', 'on', 'www.kiwi.com'])).code).toBe(0);
    expect(await answer(router, 'www.kiwi.com')).toEqual({ status: 503, body: 'Down for maintenance' });
    const off = await deploy(['maintenance', 'off', 'www.kiwi.com']);
    expect(off.code, off.stderr).toBe(0);
    expect(off.stdout).toMatch(/maintenance off www\.kiwi\.com: .*overrides\/www\.kiwi\.com deleted at revision \d+/);
    expect((await answer(router, 'www.kiwi.com')).status).toBe(200);

    const refused = await deploy(['maintenance', 'off', 'beta.kiwi.com']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('sends beta.kiwi.com to app kiwi, it is not a maintenance override: nothing deleted');
    expect((await etcdctl(endpoints, ['get', '--print-value-only', `${prefix}/overrides/beta.kiwi.com`])).trim()).toBe('{"app":"kiwi"}');

    const none = await deploy(['maintenance', 'off', 'www.kiwi.com']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('does not exist (no override for www.kiwi.com)');
    const badHost = await deploy(['maintenance', 'on', 'Not A Host']);
    expect(badHost.code).toBe(2);
    expect(badHost.stderr.trim().split('\n')).toHaveLength(1);
    const badStatus = await deploy(['maintenance', 'on', 'www.kiwi.com', '--status', '99']);
    expect(badStatus.code).toBe(2);
    expect(badStatus.stderr).toContain('--status 99: must be from 200 to 599');
  });
});
