/**
 * Automatic HTTPS end to end, offline, against a real ACME server: Pebble (test/harness/pebble.ts)
 * with pebble-challtestsrv as DNS resolving every name to 127.0.0.1, real router processes
 * sharing a real etcd, curl --http2 and undici as clients.
 *
 * Pebble's HTTP-01 validation goes to the plain listener of router V, which has no
 * --acme-directory and so never orders: every certificate issued here was validated by a router
 * that did not order it. Routers A and B are the ordering fleet.
 * Validation is real everywhere (no PEBBLE_VA_ALWAYS_VALID).
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runEtcdctl as etcdctl, uniquePrefix } from '../harness/etcd.js';
import { startPebble, type Pebble } from '../harness/pebble.js';
import { freePort } from '../harness/ports.js';
import { startRouter, startSampleApp, type RouterProcess } from '../harness/processes.js';
import { waitFor } from '../harness/wait.js';

const run = promisify(execFile);
const endpoints = inject('etcdEndpoints');
const prefix = uniquePrefix('acme');

interface TlsRouter { router: RouterProcess; tlsPort: number }

let pebble: Pebble;
let rootFile: string;
let rootPem: string;
let appUrl: string;
let v: TlsRouter;
let a: TlsRouter;
let b: TlsRouter | undefined;

async function putJson(key: string, value: unknown, pfx = prefix): Promise<void> {
  await etcdctl(endpoints, ['put', `${pfx}/${key}`, JSON.stringify(value)]);
}

async function getJson(key: string, pfx = prefix): Promise<Record<string, unknown> | undefined> {
  const out = await etcdctl(endpoints, ['get', `${pfx}/${key}`, '--print-value-only']);
  return out.trim() === '' ? undefined : (JSON.parse(out) as Record<string, unknown>);
}

async function startTlsRouter(id: string, extra: string[], pfx = prefix): Promise<TlsRouter> {
  const tlsPort = await freePort();
  const router = await startRouter({ etcdEndpoints: endpoints, prefix: pfx, id, extraArgs: ['--listen-tls', `127.0.0.1:${tlsPort}`, '--lease-ttl', '2s', ...extra] });
  return { router, tlsPort };
}

function acmeArgs(p: Pebble): string[] {
  return ['--acme-directory', p.directory, '--acme-email', 'ops@acme.test', '--acme-ca', p.caFile, '--acme-retry', '2s'];
}

/** curl --http2 over TLS, trusting Pebble's issuing root: the HTTP version and status, or curl's error. */
async function curlHttps(port: number, host: string): Promise<{ ok: true; version: string; status: string } | { ok: false; error: string }> {
  try {
    const { stdout } = await run('curl', ['-sS', '--http2', '--cacert', rootFile, '--resolve', `${host}:${port}:127.0.0.1`, '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `https://${host}:${port}/`], { timeout: 10_000 });
    const [version, status] = stdout.trim().split(' ');
    return { ok: true, version: version!, status: status! };
  } catch (err) {
    return { ok: false, error: (err as { stderr?: string }).stderr ?? String(err) };
  }
}

async function status(r: TlsRouter): Promise<{ acme: { hosts: Array<Record<string, unknown>> } | null }> {
  const res = await request(`${r.router.adminUrl}/status`);
  return (await res.body.json()) as { acme: { hosts: Array<Record<string, unknown>> } | null };
}

const logLines = (r: TlsRouter, msg: string, host?: string) =>
  r.router.proc.stdout.filter((l) => l.includes(`"msg":"${msg}"`) && (host === undefined || l.includes(`"host":"${host}"`)));

async function addApp(name: string, hosts: string[]): Promise<void> {
  await putJson(`instances/${name}/i1`, { url: appUrl, state: 'ready' });
  await putJson(`apps/${name}`, { routes: hosts.map((host) => ({ host })), tls: { acme: true } });
}

beforeAll(async () => {
  const app = await startSampleApp({ app: 'shop', name: 'shop-1' });
  appUrl = app.url;
  v = await startTlsRouter('acme-v', []);
  pebble = await startPebble({ httpPort: v.router.port });
  rootPem = await pebble.issuingRoot();
  rootFile = join(tmpdir(), `pebble-root-${process.pid}.pem`);
  await writeFile(rootFile, rootPem);
  a = await startTlsRouter('acme-a', acmeArgs(pebble));
}, 60_000);

afterAll(async () => {
  await Promise.all([a?.router.proc.stop(), b?.router.proc.stop(), v?.router.proc.stop()]);
  await pebble?.stop();
});

describe('automatic HTTPS with Pebble', () => {
  it('a new tls.acme host gets a certificate and both routers serve it over HTTP/2; the validation reached the router that did not order', async () => {
    const host = 'shop.acme.test';
    const ordersBefore = pebble.orderCount();
    const put = Date.now();
    await addApp('shop', [host]);
    const first = await waitFor(async () => {
      const r = await curlHttps(a.tlsPort, host);
      return r.ok && r.status === '200' ? r : undefined;
    }, { timeoutMs: 30_000, intervalMs: 50, message: `https://${host} on router A` });
    const putToHttpsMs = Date.now() - put;
    console.log(`acme: put-to-first-HTTPS-200 ${putToHttpsMs} ms`);
    expect(first.version).toBe('2');
    const onV = await waitFor(async () => {
      const r = await curlHttps(v.tlsPort, host);
      return r.ok && r.status === '200' ? r : undefined;
    }, { timeoutMs: 10_000, message: `https://${host} on router V` });
    expect(onV.version).toBe('2');

    const cert = await getJson(`certs/${host}`);
    expect(cert?.source).toBe('acme');
    expect(pebble.orderCount() - ordersBefore).toBe(1);
    // A ordered (its log, and the fleet's state names it); V has no --acme-directory and so cannot
    // have; Pebble validates against V's plain port only (its httpPort), and validated.
    expect(logLines(a, 'acme: certificate issued', host)).toHaveLength(1);
    expect(logLines(v, 'acme: order created')).toHaveLength(0);
    expect((await getJson(`acme/state/${host}`))?.orderedBy).toBe('acme-a');
    const st = await status(a);
    const row = st.acme?.hosts.find((h) => h.host === host);
    expect(row).toMatchObject({ source: 'acme', certificate: host, lastError: null });
    expect(Date.parse(String(row?.nextRenewal))).toBeLessThan(Date.parse(String(row?.notAfter)));
  }, 60_000);
});
