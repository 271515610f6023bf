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
import { randomBytes, X509Certificate } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runEtcdctl as etcdctl, uniquePrefix } from '../harness/etcd.js';
import { startPebble, type Pebble } from '../harness/pebble.js';
import { freePort } from '../harness/ports.js';
import { fileURLToPath } from 'node:url';
import { processes, startRouter, startSampleApp, type RouterProcess } from '../harness/processes.js';
import { waitFor } from '../harness/wait.js';

const run = promisify(execFile);
const DEPLOY = fileURLToPath(new URL('../../packages/deployer/bin/paas-deploy.js', import.meta.url));
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

const acmeLines = (r: TlsRouter, host: string) => r.router.proc.stdout.filter((l) => l.includes('"msg":"acme: ') && l.includes(`"host":"${host}"`));

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
  if (rootFile !== undefined) await rm(rootFile, { force: true });
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
    // The CA's validation request was answered by V, never by A.
    expect(logLines(v, 'acme: challenge answered', host).length).toBeGreaterThanOrEqual(1);
    expect(logLines(a, 'acme: challenge answered', host)).toHaveLength(0);
    expect((await getJson(`acme/state/${host}`))?.orderedBy).toBe('acme-a');
    const st = await status(a);
    const row = st.acme?.hosts.find((h) => h.host === host);
    expect(row).toMatchObject({ source: 'acme', certificate: host, lastError: null });
    expect(Date.parse(String(row?.nextRenewal))).toBeLessThan(Date.parse(String(row?.notAfter)));
  }, 60_000);

  it('two routers racing for new hosts: exactly one order per host across the fleet', async () => {
    b = await startTlsRouter('acme-b', acmeArgs(pebble));
    const hosts = ['r1.acme.test', 'r2.acme.test', 'r3.acme.test'];
    const ordersBefore = pebble.orderCount();
    await addApp('race', hosts);
    for (const host of hosts) await waitFor(() => getJson(`certs/${host}`), { timeoutMs: 30_000, message: `certs/${host}` });
    // The issuer logs after its write to etcd: on a loaded machine the line comes a little later.
    const issued = (host: string) => [...logLines(a, 'acme: certificate issued', host), ...logLines(b!, 'acme: certificate issued', host)];
    for (const host of hosts) await waitFor(() => issued(host).length > 0, { timeoutMs: 10_000, message: `the issuer's log line for ${host}` });
    for (const host of hosts) expect(issued(host), host).toHaveLength(1);
    expect(pebble.orderCount() - ordersBefore).toBe(hosts.length);
  }, 60_000);

  it('the ordering router SIGKILLed mid-order: the other resumes the same order and completes it', async () => {
    const host = 'kill.acme.test';
    const ordersBefore = pebble.orderCount();
    // V frozen: Pebble's validation request waits in V's accept queue, so the orderer is held
    // mid-order (challenge published, validation pending) for as long as the test needs.
    v.router.proc.kill('SIGSTOP');
    const published = (r: TlsRouter) => logLines(r, 'acme: challenge published', host);
    let victim: TlsRouter;
    let survivor: TlsRouter;
    try {
      await addApp('kill', [host]);
      victim = await waitFor(() => (published(a).length > 0 ? a : published(b!).length > 0 ? b! : undefined), { timeoutMs: 20_000, message: 'a router to publish the challenge' });
      survivor = victim === a ? b! : a;
      victim.router.proc.kill('SIGKILL');
      await victim.router.proc.exited;
      // The next cases run on the survivor, whatever this one finds.
      a = survivor;
      b = undefined;
      // The victim's challenge record went with its lease. V stays frozen until the survivor has
      // taken the order over and published the challenge again on its own lease: the CA's
      // request, still waiting in V's queue, then finds it whenever V gets to it.
      await waitFor(() => published(survivor).length > 0, { timeoutMs: 12_000, message: 'the survivor to publish the challenge again' });
    } finally {
      v.router.proc.kill('SIGCONT');
    }
    await waitFor(() => getJson(`certs/${host}`), { timeoutMs: 30_000, message: `certs/${host} written by the survivor` });
    const told = [...acmeLines(victim, host), ...acmeLines(survivor, host), ...[...pebble.proc.stdout, ...pebble.proc.stderr].filter((l) => /order|authz|chall|valid/i.test(l)).slice(-30)].join('\n');
    expect(logLines(survivor, 'acme: resuming the order of a router that stopped', host), told).toHaveLength(1);
    const token = (line: string | undefined) => (JSON.parse(line ?? '{}') as { token?: string }).token;
    expect(token(published(survivor)[0]), 'the same challenge of the same order').toBe(token(published(victim)[0]));
    await waitFor(() => logLines(survivor, 'acme: certificate issued', host).length > 0, { timeoutMs: 10_000, message: 'the issuer\'s log line' });
    expect(logLines(survivor, 'acme: certificate issued', host)).toHaveLength(1);
    expect((await getJson(`acme/state/${host}`))?.orderedBy).toBe(survivor.router.proc.name.replace('router ', ''));
    expect(pebble.orderCount() - ordersBefore, told).toBe(1);
    const served = await waitFor(async () => {
      const r = await curlHttps(survivor.tlsPort, host);
      return r.ok && r.status === '200' ? r : undefined;
    }, { timeoutMs: 10_000, message: `https://${host} on the survivor` });
    expect(served.version).toBe('2');
  }, 60_000);

  it('a host whose validation fails: back-off, the error in /status, plain HTTP keeps serving, no retry storm', async () => {
    const host = 'fail.acme.test';
    // Its name resolves to an address where nothing listens: Pebble's validation is refused.
    await pebble.setAddress(host, '127.0.0.2');
    const ordersBefore = pebble.orderCount();
    await addApp('fail', [host]);
    const windowMs = 9000;
    const end = Date.now() + windowMs;
    let plainOk = 0;
    const plainFailed: string[] = [];
    while (Date.now() < end) {
      const res = await request(`${a.router.url}/`, { headers: { host } });
      await res.body.dump();
      if (res.statusCode === 200) plainOk++;
      else plainFailed.push(String(res.statusCode));
      await new Promise((r) => setTimeout(r, 100));
    }
    const orders = pebble.orderCount() - ordersBefore;
    console.log(`acme: failing host, ${orders} orders in ${windowMs} ms (back-off from 2s, doubling)`);
    expect(plainFailed).toEqual([]);
    expect(plainOk).toBeGreaterThan(20);
    // 2 s, then 4 s, then 8 s between attempts: 3 in the window; a router retrying each tick would make 9 or more.
    expect(orders).toBeGreaterThanOrEqual(2);
    expect(orders).toBeLessThanOrEqual(4);
    const row = (await status(a)).acme?.hosts.find((h) => h.host === host);
    expect(row).toMatchObject({ source: 'none', certificate: null });
    expect(Number(row?.failures)).toBeGreaterThanOrEqual(2);
    expect(String(row?.lastError)).toMatch(/127\.0\.0\.2|connect|refused/i);
    // The wait recorded after the n-th failure in a row: 2 s doubled n-1 times.
    const waited = Date.parse(String(row?.nextAttemptAt)) - Date.parse(String(row?.lastErrorAt));
    expect(Math.abs(waited - 2000 * 2 ** (Number(row?.failures) - 1))).toBeLessThan(100);
    expect(await getJson(`certs/${host}`)).toBeUndefined();
    const metrics = await (await request(`${a.router.adminUrl}/metrics`)).body.text();
    expect(metrics).toMatch(/router_acme_orders_total\{result="failed"\} [1-9]/);
    expect(metrics).toMatch(/router_acme_renewals_due [1-9]/);
  }, 60_000);
});

describe('what the fleet shows and answers', () => {
  it('paas-deploy cert list shows per host the source, notAfter, next renewal and the last ACME error', async () => {
    const p = processes.spawn(process.execPath, [DEPLOY, 'cert', 'list'], { name: 'paas-deploy cert list', env: { ETCD_ENDPOINTS: endpoints.join(','), PAAS_PREFIX: prefix } });
    expect((await p.exited).code).toBe(0);
    const lines = p.stdout;
    expect(lines[0]).toMatch(/^NAME\s+HOSTS\s+NOT AFTER\s+DAYS LEFT\s+SOURCE\s+NEXT RENEWAL\s+PROBLEM$/);
    const shop = lines.find((l) => l.startsWith('shop.acme.test '));
    expect(shop).toMatch(/^shop\.acme\.test\s+shop\.acme\.test\s+\S+Z\s+\d+\s+acme\s+\S+Z$/);
    const fail = lines.find((l) => l.startsWith('fail.acme.test '));
    expect(fail).toMatch(/^fail\.acme\.test\s+fail\.acme\.test\s+-\s+-\s+acme\s+\S+Z\s+last ACME error: .+/);
  });

  it('any router answers a pending challenge from etcd, for its host only; other tokens go to the app', async () => {
    const token = 'tok-' + 'x'.repeat(40);
    await putJson(`acme/challenges/${token}`, { host: 'shop.acme.test', keyAuthorization: `${token}.thumbprint` });
    // A host no app routes yet (its app record not yet applied by the router the CA reaches): answered from etcd too.
    const early = 'tok-' + 'y'.repeat(40);
    await putJson(`acme/challenges/${early}`, { host: 'early.acme.test', keyAuthorization: `${early}.thumbprint` });
    for (const r of [v, a]) {
      const unrouted = await request(`${r.router.url}/.well-known/acme-challenge/${early}`, { headers: { host: 'early.acme.test' } });
      expect([unrouted.statusCode, await unrouted.body.text()]).toEqual([200, `${early}.thumbprint`]);
      const noRecord = await request(`${r.router.url}/.well-known/acme-challenge/unknown-token`, { headers: { host: 'early.acme.test' } });
      await noRecord.body.dump();
      expect(noRecord.statusCode).toBe(404);
    }
    for (const r of [v, a]) {
      const hit = await request(`${r.router.url}/.well-known/acme-challenge/${token}`, { headers: { host: 'shop.acme.test' } });
      expect([hit.statusCode, await hit.body.text()]).toEqual([200, `${token}.thumbprint`]);
      // Another host's request for the token, and an unknown token: routed to the app as before.
      for (const [host, path] of [['r1.acme.test', token], ['shop.acme.test', 'unknown-token']] as const) {
        const miss = await request(`${r.router.url}/.well-known/acme-challenge/${path}`, { headers: { host } });
        const body = await miss.body.text();
        expect(miss.statusCode).toBe(200);
        expect(body).not.toContain('thumbprint');
        expect(miss.headers['x-instance']).toBe('shop-1');
      }
    }
  });

  it('a wildcard host of a tls.acme app is skipped and reported, never ordered', async () => {
    await addApp('wild', ['*.wild.acme.test']);
    const row = await waitFor(async () => (await status(a)).acme?.hosts.find((h) => h.host === '*.wild.acme.test'), { timeoutMs: 10_000, message: 'the wildcard host in /status' });
    expect(row).toMatchObject({ skipped: expect.stringContaining('wildcard'), nextRenewal: null });
    await waitFor(() => logLines(a, 'acme: host skipped', '*.wild.acme.test').length === 1, { timeoutMs: 5000, message: 'the skip logged' });
    expect(logLines(a, 'acme: order created', '*.wild.acme.test')).toEqual([]);
    expect(await getJson('acme/state/*.wild.acme.test')).toBeUndefined();
  });
});

describe('renewal with short-lived certificates', () => {
  it('replaces the certificate before it expires, under load, with 0 failed requests', async () => {
    const pfx = uniquePrefix('acme-renew');
    const host = 'renew.acme.test';
    // With a key ring: the account key and the certificates' keys are stored encrypted (keyEnc).
    const ring = join(tmpdir(), `acme-ring-${process.pid}.json`);
    await writeFile(ring, JSON.stringify({ k1: randomBytes(32).toString('base64') }));
    const v2 = await startTlsRouter('renew-v', ['--key-ring', ring], pfx);
    const p2 = await startPebble({ httpPort: v2.router.port, validitySeconds: 18 });
    const root2 = await p2.issuingRoot();
    const r2 = await startTlsRouter('renew-r', [...acmeArgs(p2), '--key-ring', ring], pfx);
    try {
      await putJson(`instances/renew/i1`, { url: appUrl, state: 'ready' }, pfx);
      await putJson(`apps/renew`, { routes: [{ host }], tls: { acme: true } }, pfx);
      const leaf = (port: number) => new Promise<X509Certificate | undefined>((resolve) => {
        const socket = tlsConnect({ host: '127.0.0.1', port, servername: host, ca: root2, ALPNProtocols: ['http/1.1'] });
        socket.once('secureConnect', () => {
          resolve(socket.getPeerX509Certificate());
          socket.destroy();
        });
        socket.once('error', () => resolve(undefined));
      });
      const first = await waitFor(() => leaf(r2.tlsPort), { timeoutMs: 30_000, message: 'the first certificate' });
      const firstNotAfter = Date.parse(first.validTo);
      // Load: new TLS connections all the time on both routers, each must get a 200.
      const agents = [r2, v2].map((r) => ({ r, dispatcher: new Agent({ connect: { ca: root2, servername: host }, pipelining: 0 }) }));
      let ok = 0;
      const failed: string[] = [];
      let replacedAt: number | undefined;
      const load = async () => {
        while (replacedAt === undefined || Date.now() < replacedAt + 1000) {
          for (const { r, dispatcher } of agents) {
            try {
              const res = await request(`https://127.0.0.1:${r.tlsPort}/`, { headers: { host }, dispatcher, reset: true });
              await res.body.dump();
              if (res.statusCode === 200) ok++;
              else failed.push(`${r.router.proc.name}: ${res.statusCode}`);
            } catch (err) {
              failed.push(`${r.router.proc.name}: ${(err as Error).message}`);
            }
          }
          if (Date.now() > firstNotAfter + 2000) break;
        }
      };
      const loads = [load(), load()];
      const second = await waitFor(async () => {
        const l = await leaf(r2.tlsPort);
        return l !== undefined && l.fingerprint256 !== first.fingerprint256 ? l : undefined;
      }, { timeoutMs: 30_000, intervalMs: 100, message: 'a renewed certificate' });
      replacedAt = Date.now();
      await Promise.all(loads);
      await Promise.all(agents.map((x) => x.dispatcher.close()));
      const lifetime = firstNotAfter - Date.parse(first.validFrom);
      console.log(`acme renewal: lifetime ${lifetime} ms, replaced ${firstNotAfter - replacedAt} ms before expiry; ${ok} requests, ${failed.length} failed`);
      expect(replacedAt).toBeLessThan(firstNotAfter);
      expect(Date.parse(second.validTo)).toBeGreaterThan(firstNotAfter);
      expect(failed).toEqual([]);
      expect(ok).toBeGreaterThan(50);
      const v2leaf = await waitFor(async () => {
        const l = await leaf(v2.tlsPort);
        return l?.fingerprint256 === second.fingerprint256 ? l : undefined;
      }, { timeoutMs: 5000, message: 'V serving the renewed certificate' });
      expect(v2leaf.fingerprint256).toBe(second.fingerprint256);
      const stored = await etcdctl(endpoints, ['get', '--prefix', `${pfx}/`, '--print-value-only']);
      expect(stored).not.toContain('PRIVATE KEY');
      expect((await getJson(`certs/${host}`, pfx))?.keyEnc).toMatchObject({ kid: 'k1', alg: 'A256GCM' });
      const account = JSON.parse((await etcdctl(endpoints, ['get', '--prefix', `${pfx}/acme/accounts/`, '--print-value-only'])).trim()) as Record<string, unknown>;
      expect(account).toMatchObject({ email: 'ops@acme.test', keyEnc: { kid: 'k1', alg: 'A256GCM' } });
      expect(account.key).toBeUndefined();
    } finally {
      await Promise.all([r2.router.proc.stop(), v2.router.proc.stop()]);
      await p2.stop();
      await rm(ring, { force: true });
    }
  }, 90_000);
});
