/**
 * etcd secured as docs/etcd-security.md says: a real etcd 3.4 of this file's own serving clients
 * over TLS only with client certificates (--client-cert-auth), auth enabled, and the users and
 * roles made by running the doc's own etcdctl block, so the doc and this test cannot drift.
 * Certificates come from a private CA made here. etcd hands out simple tokens that expire
 * TOKEN_TTL_S after their last use, so every component here also lives through token expiry;
 * a second etcd hands out JWT tokens, which a change of users or roles makes "old".
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { request } from 'undici';
import { connectEtcd, loadEtcdSecurity } from '@paas/registry';
import { runEtcdctl, startEtcd, type EtcdProcess, type StartEtcdOptions } from '../harness/etcd.js';
import { createCa, type TestCa } from '../harness/pki.js';
import { processes, startRouter, startSampleApp, type RouterProcess } from '../harness/processes.js';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.js';
import { waitFor } from '../harness/wait.js';
import { startLoad } from '../../packages/deployer/test/support/load.js';

const DOC = fileURLToPath(new URL('../../docs/etcd-security.md', import.meta.url));
const DEPLOY_BIN = fileURLToPath(new URL('../../packages/deployer/bin/paas-deploy.js', import.meta.url));
const ROUTER_BIN = fileURLToPath(new URL('../../packages/router/bin/paas-router.js', import.meta.url));
const PREFIX = '/paas';
const HOST = 'www.mango.com';
/** etcd's --auth-token-ttl: a token unused this long is gone (checked about once a second). */
const TOKEN_TTL_S = 1;

interface Identity {
  cert: string;
  key: string;
  user?: string;
  password?: string;
}

const passwords = { router: 'router-pw-1', deployer: 'deployer-pw-2', acme: 'acme-pw-3' };
let ca: TestCa;
let strangerCa: TestCa;
let tls: NonNullable<StartEtcdOptions['tls']>;
let etcd: EtcdProcess;
let proxy: TcpProxy;
let router: RouterProcess;
const id: Record<'root' | 'router' | 'deployer' | 'acme' | 'stranger', Identity> = {} as never;

async function clientCert(authority: TestCa, cn: string): Promise<{ cert: string; key: string }> {
  const issued = await authority.issue({ dns: [], cn, usage: ['clientAuth'] });
  return { cert: await authority.writeFile(`${cn}.pem`, issued.certPem), key: await authority.writeFile(`${cn}.key`, issued.keyPem) };
}

/** The block after the doc's "etcd-auth-setup" marker, exactly as an operator copies it. */
async function docSetupBlock(): Promise<string> {
  const doc = await readFile(DOC, 'utf8');
  const m = /<!-- etcd-auth-setup[^>]*-->\s*```sh\n([\s\S]*?)```/.exec(doc);
  if (!m) throw new Error(`${DOC} has no etcd-auth-setup block`);
  return m[1]!;
}

function sh(script: string, env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('bash', ['-euo', 'pipefail', '-c', script], { env: { ...process.env, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`the doc's setup failed: ${stderr.trim() || err.message}\n${stdout}`));
      else resolve(stdout);
    });
  });
}

/** The doc's etcdctl block, run as the administrator (certificate CN=root) against `server`. */
async function runDocSetup(server: EtcdProcess): Promise<void> {
  await sh(await docSetupBlock(), {
    ETCDCTL_API: '3',
    ETCDCTL_ENDPOINTS: server.endpoints.join(','),
    ETCDCTL_CACERT: ca.certFile,
    ETCDCTL_CERT: id.root.cert,
    ETCDCTL_KEY: id.root.key,
    PAAS_PREFIX: PREFIX,
    PAAS_ROUTER_PASSWORD: passwords.router,
    PAAS_DEPLOYER_PASSWORD: passwords.deployer,
    PAAS_ACME_PASSWORD: passwords.acme,
  });
}

/** etcdctl as `who`: its client certificate, and its user and password when it has them. */
function etcdctlAs(who: Identity, ...args: string[]): Promise<string> {
  return etcdctlOn(etcd, who, ...args);
}

function etcdctlOn(server: EtcdProcess, who: Identity, ...args: string[]): Promise<string> {
  const user = who.user ? ['--user', `${who.user}:${who.password}`] : [];
  return runEtcdctl(server.endpoints, ['--cacert', ca.certFile, '--cert', who.cert, '--key', who.key, ...user, ...args]);
}

function flags(who: Identity): string[] {
  return ['--etcd-ca', ca.certFile, '--etcd-cert', who.cert, '--etcd-key', who.key, ...(who.user ? ['--etcd-user', who.user] : [])];
}

async function deploy(args: string[], who: Identity = id.deployer, env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = processes.spawn(process.execPath, [DEPLOY_BIN, ...args], {
    name: `paas-deploy ${args[0]}`,
    env: {
      ETCD_ENDPOINTS: etcd.endpoints.join(','),
      PAAS_PREFIX: PREFIX,
      ETCD_CA: ca.certFile,
      ETCD_CERT: who.cert,
      ETCD_KEY: who.key,
      ETCD_USER: who.user,
      ETCD_PASSWORD: who.password,
      ...env,
    },
  });
  const { code } = await p.exited;
  return { code, stdout: p.stdout.join('\n'), stderr: p.stderr.join('\n') };
}

async function deployOk(args: string[]): Promise<string> {
  const r = await deploy(args);
  if (r.code !== 0) throw new Error(`paas-deploy ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

async function served(host: string): Promise<{ status: number; release: string }> {
  const res = await request(`${router.url}/`, { headers: { host } });
  await res.body.dump();
  return { status: res.statusCode, release: String(res.headers['x-release']) };
}

beforeAll(async () => {
  ca = await createCa();
  const server = await ca.issue({ dns: ['localhost'], cn: 'etcd', usage: ['serverAuth', 'clientAuth'] });
  tls = { certFile: await ca.writeFile('etcd.pem', server.certPem), keyFile: await ca.writeFile('etcd.key', server.keyPem), trustedCaFile: ca.certFile };
  // One at a time: `openssl ca` rewrites the CA's serial file.
  id.root = await clientCert(ca, 'root');
  id.router = { ...(await clientCert(ca, 'paas-router')), user: 'paas-router', password: passwords.router };
  id.deployer = { ...(await clientCert(ca, 'paas-deployer')), user: 'paas-deployer', password: passwords.deployer };
  id.acme = { ...(await clientCert(ca, 'paas-acme')), user: 'paas-acme', password: passwords.acme };
  // A certificate with the right name from a CA etcd does not trust.
  strangerCa = await createCa();
  id.stranger = { ...(await clientCert(strangerCa, 'paas-router')), user: 'paas-router', password: passwords.router };

  etcd = await startEtcd({ tls, extraArgs: ['--auth-token', 'simple', '--auth-token-ttl', String(TOKEN_TTL_S)] });
  await runDocSetup(etcd);
  expect((await etcdctlAs(id.root, 'user', 'list')).split('\n').filter(Boolean).sort()).toEqual(['paas-acme', 'paas-deployer', 'paas-router', 'root']);

  // The router reaches etcd through a forwarder, so a test can cut its streams.
  proxy = await startTcpProxy(`127.0.0.1:${new URL(etcd.endpoints[0]!).port}`);
  router = await startRouter({
    etcdEndpoints: [`https://localhost:${proxy.port}`],
    prefix: PREFIX,
    id: 'r1',
    // Between changes the router's only etcd calls are then its status heartbeat, every 5 s,
    // and no peer digest reads: its token expires between two heartbeats.
    extraArgs: [...flags(id.router), '--digest-check', '10m', '--lease-ttl', '30s'],
    env: { ETCD_PASSWORD: passwords.router },
  });
}, 60_000);

afterAll(async () => {
  await processes.stopAll();
  await proxy?.close();
  await etcd?.cleanup();
});

describe('etcd with TLS, client certificates and RBAC (docs/etcd-security.md)', () => {
  test('the router (user paas-router) serves and reports; the deployer (paas-deployer) registers and redeploys through it with 0 failed requests', async () => {
    await deployOk(['app', 'set', 'mango', '--host', HOST]);
    const v1 = await startSampleApp({ app: 'mango', name: 'v1-0', release: 'v1' });
    await deployOk(['register', 'mango', '--url', v1.url, '--id', 'v1-0', '--release', 'v1']);
    expect(await served(HOST)).toEqual({ status: 200, release: 'v1' });

    // The router's status record, written with its own user, as the administrator reads it.
    const record = JSON.parse(await etcdctlAs(id.root, 'get', `${PREFIX}/routers/r1`, '--print-value-only')) as { revision: string };
    expect(BigInt(record.revision)).toBeGreaterThan(0n);
    expect(await deployOk(['status'])).toMatch(/\br1\b/);

    const load = startLoad({ targets: [router.url], host: HOST, concurrency: 2, maxMs: 30_000 });
    await load.waitForRequests(50);
    const v2 = await startSampleApp({ app: 'mango', name: 'v2-0', release: 'v2' });
    await deployOk(['redeploy', 'mango', '--url', v2.url, '--release', 'v2']);
    expect(await served(HOST)).toEqual({ status: 200, release: 'v2' });
    await v1.proc.stop();
    await load.waitForRequests(100);
    const report = await load.stop();
    expect(report.non2xx, report.samples.join('\n')).toEqual({});
    expect(report.errors, report.samples.join('\n')).toEqual({});
    expect(report.releases.v1).toBeGreaterThan(0);
    expect(report.releases.v2).toBeGreaterThan(0);
  });

  test('roles: paas-router and paas-acme may not write apps/; each may write its own directories', async () => {
    const denied = /permission denied/;
    await expect(etcdctlAs(id.router, 'put', `${PREFIX}/apps/evil`, '{}')).rejects.toThrow(denied);
    // The certificate alone acts as its CN's user, with the same role.
    await expect(etcdctlAs({ cert: id.router.cert, key: id.router.key }, 'put', `${PREFIX}/apps/evil`, '{}')).rejects.toThrow(denied);
    await expect(etcdctlAs(id.router, 'put', `${PREFIX}/certs/www.mango.com`, '{}')).rejects.toThrow(denied);
    await expect(etcdctlAs(id.router, 'get', '/elsewhere')).rejects.toThrow(denied);
    await expect(etcdctlAs(id.acme, 'put', `${PREFIX}/apps/evil`, '{}')).rejects.toThrow(denied);
    await expect(etcdctlAs(id.acme, 'put', `${PREFIX}/routers/evil`, '{}')).rejects.toThrow(denied);

    expect(await etcdctlAs(id.router, 'put', `${PREFIX}/tunnels/t-test`, 'x')).toMatch(/OK/);
    expect(await etcdctlAs(id.router, 'del', `${PREFIX}/tunnels/t-test`)).toMatch(/1/);
    for (const dir of ['certs', 'acme']) {
      expect(await etcdctlAs(id.acme, 'put', `${PREFIX}/${dir}/a-test`, 'x')).toMatch(/OK/);
      expect(await etcdctlAs(id.acme, 'del', `${PREFIX}/${dir}/a-test`)).toMatch(/1/);
    }
    expect(await etcdctlAs(id.acme, 'get', `${PREFIX}/apps/mango`, '--print-value-only')).toMatch(/www\.mango\.com/);
    expect(await etcdctlAs(id.root, 'get', `${PREFIX}/apps/evil`)).toBe('');
  });

  test('a wrong password or a refused certificate: the router exits at once saying so, paas-deploy prints one line and exits 1', async () => {
    const startUp = async (who: Identity, name: string) => {
      const started = performance.now();
      const p = processes.spawn(process.execPath, [
        ROUTER_BIN, '--etcd', etcd.endpoints.join(','), '--prefix', PREFIX, '--id', name,
        '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--start-timeout', '60s', ...flags(who),
      ], { name: `router ${name}`, env: { ETCD_PASSWORD: who.password } });
      const { code } = await p.exited;
      return { code, ms: performance.now() - started, stderr: p.stderr.join('\n') };
    };
    const wrong = { ...id.router, password: 'not-the-password' };

    const badPassword = await startUp(wrong, 'r-wrong-pw');
    expect(badPassword.code).toBe(1);
    expect(badPassword.stderr).toMatch(/^paas-router: could not list .* etcd authentication failed: wrong user or password/);
    // Long before --start-timeout: waiting cannot fix a password.
    expect(badPassword.ms).toBeLessThan(20_000);

    const badCert = await startUp(id.stranger, 'r-stranger');
    expect(badCert.code).toBe(1);
    expect(badCert.stderr).toMatch(/^paas-router: could not list .* etcd TLS handshake failed: tls alert/);
    expect(badCert.ms).toBeLessThan(20_000);

    const deployWrong = await deploy(['status'], { ...id.deployer, password: 'not-the-password' });
    expect(deployWrong.code).toBe(1);
    expect(deployWrong.stderr).toMatch(/^paas-deploy: status failed: etcd authentication failed: wrong user or password/);
    expect(deployWrong.stderr.split('\n')).toHaveLength(1);

    const deployStranger = await deploy(['status'], id.stranger);
    expect(deployStranger.code).toBe(1);
    expect(deployStranger.stderr).toMatch(/^paas-deploy: status failed: etcd TLS handshake failed: tls alert/);
    expect(deployStranger.stderr.split('\n')).toHaveLength(1);

    // The other way round: the deployer does not trust etcd's server certificate.
    const untrusted = await deploy(['status'], id.deployer, { ETCD_CA: strangerCa.certFile });
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr).toBe('paas-deploy: status failed: etcd TLS handshake failed: self-signed certificate in certificate chain (check --etcd-ca, --etcd-cert, --etcd-key)');
    expect(untrusted.stderr.split('\n')).toHaveLength(1);
  });

  test("the router's token expires, its watch is cut: it authenticates again and a change made after the TTL reaches traffic", async () => {
    await deployOk(['app', 'set', 'kiwi', '--host', 'www.kiwi.com']);
    const kiwi = await startSampleApp({ app: 'kiwi', name: 'kiwi-0', release: 'k1' });
    await deployOk(['register', 'kiwi', '--url', kiwi.url, '--id', 'kiwi-0', '--release', 'k1']);
    expect(await served('www.kiwi.com')).toEqual({ status: 200, release: 'k1' });
    // Its token expires TOKEN_TTL_S (+ up to 1 s: etcd's keeper ticks every second) after its
    // last use, the status heartbeat: cut the watch after that and well before the next
    // heartbeat (5 s), so the watch, not the heartbeat, is the first to meet the dead token.
    const heartbeats = processes.spawn('etcdctl', [
      '--endpoints', etcd.endpoints.join(','), '--cacert', ca.certFile, '--cert', id.root.cert, '--key', id.root.key,
      'watch', `${PREFIX}/routers/r1`,
    ], { name: 'etcdctl watch', env: { ETCDCTL_API: '3' } });
    const puts = () => heartbeats.stdout.filter((l) => l === 'PUT').length;
    const quiet = TOKEN_TTL_S * 1000 + 1_300;
    for (;;) {
      const before = puts();
      await waitFor(() => puts() > before, { timeoutMs: 15_000, message: 'a status write of the router' });
      const last = puts();
      await new Promise((resolve) => setTimeout(resolve, quiet));
      if (puts() === last) break; // no write since: the token has been unused for `quiet` ms
    }
    const refusals = () => router.proc.stdout.filter((l) => l.includes("refused the watch's auth token")).length;
    const refusedBefore = refusals();
    const linesBefore = router.proc.stdout.length;
    proxy.cut();
    proxy.restore();
    // The watch resumed on a new connection with the old token, which etcd refused: the router
    // authenticated again (the log says so) instead of re-listing or retrying the dead token.
    await waitFor(() => refusals() > refusedBefore, { timeoutMs: 15_000, message: "the router to log etcd's refusal of its expired token" });

    // app set waits until every live router has applied the change.
    await deployOk(['app', 'set', 'kiwi', '--host', 'www.kiwi.com', '--host', 'api.kiwi.com', '--router-timeout', '15s']);
    expect(await served('api.kiwi.com')).toEqual({ status: 200, release: 'k1' });
    expect(router.proc.running).toBe(true);
    // No call went on with the dead token: the refusal of the watch is the only mention of it.
    const mentions = router.proc.stdout.slice(linesBefore).filter((l) => l.includes('invalid auth token'));
    expect(mentions.filter((l) => !l.includes("refused the watch's auth token"))).toEqual([]);

    // A clean stop revokes the status record's lease, which the router's role allows.
    await router.proc.stop();
    expect(await router.proc.exited).toEqual({ code: 0, signal: null });
    expect(await etcdctlAs(id.root, 'get', `${PREFIX}/routers/r1`)).toBe('');
  });

  test('JWT tokens: after a change of users or roles, calls and lists authenticate again ("revision of auth store is old")', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const priv = await ca.writeFile('jwt.key', privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
    const pub = await ca.writeFile('jwt.pub', publicKey.export({ type: 'spki', format: 'pem' }).toString());
    const jwtEtcd = await startEtcd({ tls, extraArgs: ['--auth-token', `jwt,pub-key=${pub},priv-key=${priv},sign-method=ES256,ttl=10m`] });
    try {
      await runDocSetup(jwtEtcd);
      const security = loadEtcdSecurity({
        endpoints: jwtEtcd.endpoints,
        ca: { value: ca.certFile, what: '--etcd-ca' },
        cert: { value: id.router.cert, what: '--etcd-cert' },
        key: { value: id.router.key, what: '--etcd-key' },
        user: { value: 'paas-router', what: '--etcd-user' },
        password: passwords.router,
      });
      const client = connectEtcd({ endpoints: jwtEtcd.endpoints, security });
      try {
        await client.put(`${PREFIX}/routers/jwt`, '1'); // authenticates: a token of this auth revision
        // Each change of roles makes every token issued before it "old" for etcd.
        const changeRoles = (n: number) => etcdctlOn(jwtEtcd, id.root, 'role', 'grant-permission', 'paas-acme', 'read', `/unrelated/${n}`);
        await changeRoles(1);
        await client.put(`${PREFIX}/routers/jwt`, '2'); // etcd3's own unary call
        await changeRoles(2);
        expect((await client.listPrefix(`${PREFIX}/routers/`)).entries.map((e) => e.value.toString())).toEqual(['2']); // our Range
        await changeRoles(3);
        expect((await client.get(`${PREFIX}/routers/jwt`))?.value.toString()).toBe('2');
      } finally {
        await client.close();
      }
    } finally {
      await jwtEtcd.cleanup();
    }
  });
});

