/**
 * One command-line feel for paas-router and paas-deploy (issue 13): --version and -h on both,
 * help within 100 columns, one duration syntax, exit 130 on Ctrl-C, log levels by name, and the
 * access log with client, bytes, duration, upstream and instance in a file of its own. Real
 * etcd, router and sample app processes, real clients. The deployer's exit 130 on Ctrl-C during a
 * run (after its rollback) is in test/integration/deployer-cli.test.ts.
 */
import { afterAll, describe, expect, inject, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { request } from 'undici';
import { processes, startRouter, startSampleApp } from '../harness/processes.js';
import { runEtcdctl as etcdctl, uniquePrefix } from '../harness/etcd.js';

const endpoints = inject('etcdEndpoints');
const ROUTER_BIN = fileURLToPath(new URL('../../packages/router/bin/paas-router.js', import.meta.url));
const DEPLOY_BIN = fileURLToPath(new URL('../../packages/deployer/bin/paas-deploy.js', import.meta.url));
const run = promisify(execFile);
const version = (pkg: string) => (JSON.parse(readFileSync(new URL(`../../packages/${pkg}/package.json`, import.meta.url), 'utf8')) as { version: string }).version;

/** Runs a command to its end: exit code and output (a non-zero exit is a result here, not an error). */
async function exec(bin: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [bin, ...args], { env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

afterAll(() => processes.stopAll());

/** The machines' own Node (20.20 here, end of life), older than every package's engines. */
const OLD_NODE = '/usr/bin/node';
const AGENT_BIN = fileURLToPath(new URL('../../packages/agent/bin/paas-agent.js', import.meta.url));

describe('on a Node older than engines', () => {
  it('each command stops with one line naming the Node it needs, exit 2', async () => {
    const { stdout: v } = await run(OLD_NODE, ['--version']);
    expect(Number(v.slice(1).split('.')[0]), `${OLD_NODE} is ${v.trim()}: this case needs a Node older than 22`).toBeLessThan(22);
    for (const [bin, name] of [[ROUTER_BIN, 'paas-router'], [DEPLOY_BIN, 'paas-deploy'], [AGENT_BIN, 'paas-agent']] as const) {
      const r = await run(OLD_NODE, [bin, '--version']).then(
        () => ({ code: 0, stderr: '' }),
        (err: { code: number; stderr: string }) => err,
      );
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`^${name}: Node ${v.trim().slice(1).replace(/\./g, '\\.')} is too old: it needs Node 22\\.\\d+\\.\\d+ or newer`));
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    }
  });
});

describe('both commands', () => {
  it('--version prints the package version and exits 0', async () => {
    const router = await exec(ROUTER_BIN, ['--version']);
    expect(router).toMatchObject({ code: 0, stdout: `paas-router ${version('router')} (Node ${process.version})\n` });
    const deploy = await exec(DEPLOY_BIN, ['--version']);
    expect(deploy).toMatchObject({ code: 0, stdout: `paas-deploy ${version('deployer')} (Node ${process.version})\n` });
  });

  it('-h prints help within 100 columns, for every deployer command too', async () => {
    const texts = [(await exec(ROUTER_BIN, ['-h'])).stdout, (await exec(DEPLOY_BIN, ['-h'])).stdout];
    for (const c of [['redeploy'], ['register'], ['retire'], ['app', 'set'], ['status']]) texts.push((await exec(DEPLOY_BIN, [...c, '-h'])).stdout);
    expect(texts[0]).toContain('--metrics-per-app');
    expect(texts[0]).toContain('--access-log-file');
    for (const text of texts) {
      expect(text).toMatch(/^Usage: paas-/);
      expect(text.split('\n').filter((l) => l.length > 100)).toEqual([]);
    }
  });

  it('read durations alike: Go syntax, a bare number refused (exit 2, one line naming the flag)', async () => {
    const router = await exec(ROUTER_BIN, ['--connect-timeout', '1500']);
    expect(router.code).toBe(2);
    expect(router.stderr).toBe('paas-router: --connect-timeout: "1500" has no unit (e.g. 500ms, 30s, 1m30s, 2h)\n');
    const bad = await exec(DEPLOY_BIN, ['redeploy', 'mango', '--url', 'http://127.0.0.1:1', '--router-timeout', '30']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('paas-deploy: redeploy: --router-timeout "30" has no unit (e.g. 500ms, 30s, 1m30s, 2h)\n');
    const goStyle = await exec(DEPLOY_BIN, ['redeploy', 'mango', '--url', 'http://127.0.0.1:1', '--router-timeout', '1m30s', '--etcd', 'http://127.0.0.1:1', '--lock-ttl', '2h']);
    // Parsed (it goes on to reach etcd, which is not there): not a usage error.
    expect(goStyle.code).toBe(1);
  });
});

describe('paas-router', () => {
  it('exits 130 on Ctrl-C (SIGINT) after a graceful stop, and logs levels by name', async () => {
    const router = await startRouter({ etcdEndpoints: endpoints, prefix: uniquePrefix('cli-sigint'), id: 'cli-sigint-1' });
    router.proc.kill('SIGINT');
    const { code } = await router.proc.exited;
    expect(code).toBe(130);
    const stopped = router.proc.tail(200).split('\n').map((l) => l.replace(/^\[stdout\] /, '')).filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: unknown; msg: string });
    expect(stopped.find((l) => l.msg === 'stopped')?.level).toBe('info');
    expect(stopped.every((l) => typeof l.level === 'string')).toBe(true);
  });

  it('writes the access log to its own file with client, bytes, duration, upstream and instance', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'paas-access-'));
    try {
      const file = join(dir, 'logs', 'access.log');
      const prefix = uniquePrefix('cli-access');
      const app = await startSampleApp({ app: 'mango', name: 'web-1' });
      await etcdctl(endpoints, ['put', `${prefix}/apps/mango`, JSON.stringify({ routes: [{ host: 'www.mango.com' }] })]);
      await etcdctl(endpoints, ['put', `${prefix}/instances/mango/web-1`, JSON.stringify({ url: app.url, state: 'ready' })]);
      const router = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'cli-access-1', extraArgs: ['--access-log-file', file] });
      const res = await request(`${router.url}/hello?x=1`, { headers: { host: 'www.mango.com' } });
      const body = await res.body.text();
      expect(res.statusCode).toBe(200);
      const miss = await request(`${router.url}/`, { headers: { host: 'nobody.example' } });
      const missBody = await miss.body.text();
      // Stopping flushes the file.
      await router.proc.stop();
      const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatchObject({ level: 'info', msg: 'request', client: '127.0.0.1', method: 'GET', host: 'www.mango.com', url: '/hello?x=1', status: 200, bytes: Buffer.byteLength(body), app: 'mango', instance: 'web-1', upstream: app.url, attempts: 1 });
      expect(lines[0]!.ms).toEqual(expect.any(Number));
      expect(lines[1]).toMatchObject({ status: 404, bytes: Buffer.byteLength(missBody), app: '' });
      // Not on stdout as well.
      expect(router.proc.tail(500)).not.toContain('"msg":"request"');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
