/**
 * The paas-deploy command line as an operator runs it (packages/deployer/bin, built), against the
 * real shared etcd with fake routers: exit codes, output, environment variables, a deployer killed
 * mid-redeploy and two redeploys at once.
 */
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, test } from 'vitest';
import { sharedEtcdEndpoints, uniquePrefix } from '../harness/etcd.js';
import { processes, type ManagedProcess } from '../harness/processes.js';
import { waitFor } from '../harness/wait.js';
import { World } from '../../packages/deployer/test/support/world.js';

const BIN = fileURLToPath(new URL('../../packages/deployer/bin/paas-deploy.js', import.meta.url));

let world: World;
afterEach(async () => {
  await world?.close();
});

async function setup(name: string): Promise<World> {
  world = new World(sharedEtcdEndpoints(), uniquePrefix(`deployer-cli-${name}`));
  return world;
}

/** App mango served by one ready instance (v1-a), and a stand-in router `routerId` reporting on it. */
async function mangoOnOneInstance(name: string, routerId: string) {
  const w = await setup(name);
  await w.app('mango');
  const a = await w.instance();
  await w.put('mango', 'v1-a', { url: a.url, state: 'ready' });
  return { w, router: await w.router(routerId) };
}

function cli(w: World | undefined, args: string[], env: Record<string, string> = {}): ManagedProcess {
  return processes.spawn(process.execPath, [BIN, ...args], {
    name: `paas-deploy ${args.slice(0, 2).join(' ')}`,
    env: { ETCD_ENDPOINTS: w?.endpoints.join(',') ?? 'http://127.0.0.1:9', PAAS_PREFIX: w?.prefix ?? '/paas', ...env },
  });
}

async function run(w: World | undefined, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const t0 = performance.now();
  const p = cli(w, args, env);
  const { code } = await p.exited;
  return { code, stdout: p.stdout.join('\n'), stderr: p.stderr.join('\n'), ms: performance.now() - t0 };
}

describe('paas-deploy', () => {
  test('bad usage exits 2 with one clear line on stderr', async () => {
    for (const args of [
      ['redeploy', 'mango', '--url', 'http://h:1', '--bogus'],
      ['redeploy', 'mango', '--url', 'not a url'],
      ['redeploy', 'Bad_App', '--url', 'http://h:1'],
      ['frobnicate'],
    ]) {
      const r = await run(undefined, args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr).toMatch(/^paas-deploy: /);
      expect(r.stdout).toBe('');
    }
    const help = await run(undefined, ['redeploy', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('PAAS_DEPLOY_ROUTER_TIMEOUT');
  });

  test('app set, register, redeploy, status and retire through the environment variables', async () => {
    const w = await setup('flow');
    await w.router('r1');
    await w.router('r2');
    const set = await run(w, ['app', 'set', 'mango', '--host', 'www.mango.com', '--path', '/api']);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toContain('app mango: created at revision');
    // Keeps fields it is not given.
    expect((await run(w, ['app', 'set', 'mango', '--balance', 'random'])).code).toBe(0);
    expect(JSON.parse((await w.etcd.get(w.layout.app('mango')))!.value.toString())).toEqual({ routes: [{ host: 'www.mango.com', path: '/api' }], balance: 'random' });

    const a = await w.instance();
    const reg = await run(w, ['register', 'mango', '--url', a.url, '--id', 'web-1'], { PAAS_DEPLOY_RELEASE: 'v1' });
    expect(reg.code, reg.stderr).toBe(0);
    expect(reg.stdout).toMatch(/register mango\/web-1: ready at revision \d+, confirmed by 2 routers/);

    const n1 = await w.instance();
    const n2 = await w.instance();
    const rd = await run(w, ['redeploy', 'mango', '--release', 'v2'], { PAAS_DEPLOY_URLS: `${n1.url},${n2.url}` });
    expect(rd.code, rd.stderr).toBe(0);
    // Plain progress lines as it goes, then the summary with step timings.
    expect(rd.stdout).toMatch(/\[confirm\] routers apply the new instances \.\.\./);
    expect(rd.stdout).toMatch(/router r1 applied revision \d+ after/);
    expect(rd.stdout).toMatch(/redeploy mango \(release v2\): done in/);
    expect(rd.stdout).toMatch(/routers confirmed the new instances \(revision \d+\) in [\d.]+m?s: r[12] [\d.]+m?s, r[12] [\d.]+m?s/);
    expect(rd.stdout).toContain('retired: web-1');
    console.log(`[timing] CLI redeploy: ${rd.stdout.split('\n').find((l) => l.includes('routers confirmed the new instances'))?.trim()}`);

    const st = await run(w, ['status']);
    expect(st.code, st.stderr).toBe(0);
    expect(st.stdout).toMatch(/ROUTERS \(2\)/);
    expect(st.stdout).toMatch(/r1\s+\d+\s+\d+/);
    expect(st.stdout).toContain('APP mango  routes www.mango.com/api  balance random');
    expect(st.stdout).toMatch(/v2-[a-z0-9]{6}\s+ready\s+v2\s+http:\/\/127\.0\.0\.1:\d+/);
    const json = JSON.parse((await run(w, ['status', 'mango', '--json'])).stdout) as { routers: unknown[]; apps: { instances: unknown[] }[] };
    expect(json.routers).toHaveLength(2);
    expect(json.apps[0]!.instances).toHaveLength(2);

    const id = [...(await w.read('mango')).keys()][0]!;
    const rt = await run(w, ['retire', 'mango', id]);
    expect(rt.code, rt.stderr).toBe(0);
    expect(rt.stdout).toContain(`retire mango/${id}: deleted at revision`);
    const last = [...(await w.read('mango')).keys()][0]!;
    const refused = await run(w, ['retire', 'mango', last]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('last ready instance');
  });

  test('a stuck router: exit 1 naming it, rolled back', async () => {
    const { w, router: stuck } = await mangoOnOneInstance('stuck', 'r-stuck');
    stuck.freeze();
    const n1 = await w.instance();
    const r = await run(w, ['redeploy', 'mango', '--url', n1.url, '--router-timeout', '1s']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^paas-deploy: redeploy mango failed: router r-stuck did not apply revision \d+ within 1\.00s/);
    expect(r.stderr).toMatch(/rolled back: removed [a-z0-9-]+ \(revision \d+\); old instances untouched/);
    expect([...(await w.read('mango')).keys()]).toEqual(['v1-a']);
  });

  test('two redeploys at once: one proceeds, the other fails fast naming the holder', async () => {
    const { w, router: r1 } = await mangoOnOneInstance('twice', 'r1');
    r1.freeze();
    const n1 = await w.instance();
    const n2 = await w.instance();
    const first = cli(w, ['redeploy', 'mango', '--url', n1.url, '--router-timeout', '20s']);
    await first.waitForLine((l) => l.includes('[confirm] routers apply the new instances ...'));
    const second = await run(w, ['redeploy', 'mango', '--url', n2.url]);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`held by pid ${first.pid} on host`);
    expect(second.stderr).toContain('(redeploy mango)');
    // Fast: it did not wait for the lock, which the first run (held by a frozen router) still has.
    expect(first.running).toBe(true);
    await r1.resume();
    expect((await first.exited).code).toBe(0);
    expect([...(await w.read('mango')).values()].map((r) => r.url)).toEqual([n1.url]);
  });

  test('a deployer killed while draining: its lock expires and a second run finishes the job', async () => {
    const { w, router: r1 } = await mangoOnOneInstance('killed', 'r1');
    await r1.setInflight('mango', 'v1-a', 1); // a long request keeps the drain waiting
    const n1 = await w.instance();
    // The lock outlives its dead holder long enough for the next CLI to start, even on a loaded machine.
    const first = cli(w, ['redeploy', 'mango', '--url', n1.url, '--lock-ttl', '8s', '--drain-timeout', '60s']);
    await first.waitForLine((l) => l.includes('[inflight] wait for in-flight requests ...'));
    first.kill('SIGKILL');
    await first.exited;
    const left = await w.read('mango');
    expect(left.get('v1-a')?.state).toBe('draining');
    const newId = [...left.keys()].find((k) => k !== 'v1-a')!;
    expect(left.get(newId)?.state).toBe('ready');

    // While the dead run's lock lives, a second run is refused; once it expired, the run finishes.
    const refused = await run(w, ['redeploy', 'mango', '--url', n1.url]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('another deployment of mango is running');
    await waitFor(async () => (await w.etcd.get(w.layout.lock('mango'))) === undefined, { timeoutMs: 20_000, message: 'the dead run lock to expire' });
    await r1.setInflight('mango', 'v1-a', 0);
    const second = await run(w, ['redeploy', 'mango', '--url', n1.url]);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain(`serving: ${newId} ${n1.url} (reused)`);
    expect(second.stdout).toContain('retired: v1-a');
    expect([...(await w.read('mango')).keys()]).toEqual([newId]);
  });

  test('a deployer killed while waiting for routers: the next run reuses its instances', async () => {
    const { w, router: r1 } = await mangoOnOneInstance('killed-early', 'r1');
    r1.freeze();
    const n1 = await w.instance();
    const first = cli(w, ['redeploy', 'mango', '--url', n1.url, '--lock-ttl', '1s', '--router-timeout', '60s']);
    await first.waitForLine((l) => l.includes('[confirm] routers apply the new instances ...'));
    first.kill('SIGKILL');
    await first.exited;
    expect([...(await w.read('mango')).values()].map((r) => r.state)).toEqual(['ready', 'ready']);
    await r1.resume();
    await waitFor(async () => (await w.etcd.get(w.layout.lock('mango'))) === undefined, { timeoutMs: 20_000, message: 'the dead run lock to expire' });
    const second = await run(w, ['redeploy', 'mango', '--url', n1.url]);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain('(reused)');
    expect([...(await w.read('mango')).values()].map((r) => r.url)).toEqual([n1.url]);
  });

  test('Ctrl-C during the wait rolls back and exits 130', async () => {
    const { w, router: r1 } = await mangoOnOneInstance('sigint', 'r1');
    r1.freeze();
    const n1 = await w.instance();
    const p = cli(w, ['redeploy', 'mango', '--url', n1.url, '--router-timeout', '60s']);
    await p.waitForLine((l) => l.includes('[confirm] routers apply the new instances ...'));
    p.kill('SIGINT');
    const { code } = await p.exited;
    expect(code).toBe(130);
    expect(p.stderr.join('\n')).toContain('interrupted by SIGINT');
    expect(p.stderr.join('\n')).toMatch(/rolled back: removed/);
    expect([...(await w.read('mango')).keys()]).toEqual(['v1-a']);
    expect(await w.etcd.get(w.layout.lock('mango'))).toBeUndefined();
  });
});
