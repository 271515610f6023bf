/**
 * Certificates end to end: `paas-deploy cert set/list/rm` (a bad file refused before anything is
 * written, the key encrypted with a key ring), real routers with `--key-ring` showing them in
 * /status and /metrics, a bad update with etcdctl rejected with its key and reason while the last
 * good certificate stays, on a router that saw it and on one started afterwards alike.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { request } from 'undici';
import { runEtcdctl, uniquePrefix } from '../harness/etcd.js';
import { createCa, type IssuedCert, type TestCa } from '../harness/pki.js';
import { processes, startRouter, type RouterProcess } from '../harness/processes.js';
import { waitFor } from '../harness/wait.js';

const endpoints = inject('etcdEndpoints');
const prefix = uniquePrefix('certs-e2e');
const DEPLOY = fileURLToPath(new URL('../../packages/deployer/bin/paas-deploy.js', import.meta.url));
const ROUTER = fileURLToPath(new URL('../../packages/router/bin/paas-router.js', import.meta.url));
const DAY = 86_400_000;

interface CertStatus { name: string; hosts: string[]; notAfter: string; daysLeft: number; fingerprint: string; source: string; expiringSoon: boolean }
interface Status {
  revision: string;
  digest: string;
  rejected: Array<{ key: string; revision: string; error: string; kept?: string | null }>;
  certificates: { count: number; expiringSoon: number; list: CertStatus[]; uncoveredHosts: string[]; uncoveredHostsCount: number };
}

let ca: TestCa;
let www: IssuedCert;
let soon: IssuedCert;
let stranger: IssuedCert;
let keyRing: string;
const files: Record<string, string> = {};
const routers: RouterProcess[] = [];

async function deploy(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = processes.spawn(process.execPath, [DEPLOY, ...args], { name: `paas-deploy ${args.slice(0, 2).join(' ')}`, env: { ETCD_ENDPOINTS: endpoints.join(','), PAAS_PREFIX: prefix } });
  const { code } = await p.exited;
  return { code, stdout: p.stdout.join('\n'), stderr: p.stderr.join('\n') };
}

const status = async (r: RouterProcess) => (await (await request(`${r.adminUrl}/status`)).body.json()) as Status;
const metrics = async (r: RouterProcess) => (await request(`${r.adminUrl}/metrics`)).body.text();
const etcdGet = (key: string) => runEtcdctl(endpoints, ['get', key, '--print-value-only']);

beforeAll(async () => {
  ca = await createCa();
  www = await ca.issue({ dns: ['www.certs.com', 'certs.com'] });
  soon = await ca.issue({ dns: ['*.soon.com'], notAfter: new Date(Date.now() + 5 * DAY + 3_600_000) });
  stranger = await ca.issue({ dns: ['stranger.com'] });
  keyRing = await ca.writeFile('ring.json', JSON.stringify({ k1: Buffer.alloc(32, 1).toString('base64'), k2: Buffer.alloc(32, 2).toString('base64') }));
  for (const [name, text] of Object.entries({ wwwCert: www.certPem, wwwKey: www.keyPem, soonCert: soon.certPem, soonKey: soon.keyPem, strangerKey: stranger.keyPem })) {
    files[name] = await ca.writeFile(`${name}.pem`, text);
  }
  await runEtcdctl(endpoints, ['put', `${prefix}/apps/shop`, JSON.stringify({ routes: [{ host: 'www.certs.com' }, { host: 'api.certs.com' }, { host: '*.soon.com', path: '/x' }] })]);
});

afterAll(() => processes.stopAll());

describe('paas-deploy cert', () => {
  it('refuses a key that does not match, and a file it cannot read, with one line and exit 2, writing nothing', async () => {
    const bad = await deploy(['cert', 'set', 'www', '--cert', files.wwwCert!, '--key', files.strangerKey!]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe(`paas-deploy: cert set www: key does not match the leaf certificate (--cert ${files.wwwCert}, --key ${files.strangerKey}); nothing was written`);
    const missing = await deploy(['cert', 'set', 'www', '--cert', join(ca.dir, 'nope.pem'), '--key', files.wwwKey!]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(`paas-deploy: cert set: --cert ${join(ca.dir, 'nope.pem')}: ENOENT`);
    const notPem = await deploy(['cert', 'set', 'www', '--cert', keyRing, '--key', files.wwwKey!]);
    expect([notPem.code, notPem.stderr]).toEqual([2, expect.stringContaining('cert: not PEM (no -----BEGIN CERTIFICATE----- block)')]);
    expect(await etcdGet(`${prefix}/certs/www`)).toBe('');
  });

  it('writes a certificate with its key, and one with its key encrypted (keyEnc) with a key ring', async () => {
    const plain = await deploy(['cert', 'set', 'www', '--cert', files.wwwCert!, '--key', files.wwwKey!]);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toMatch(new RegExp(`^${prefix}/certs/www written at revision \\d+: www.certs.com, certs.com; notAfter \\S+ \\((89|90) days left\\)$`));
    const enc = await deploy(['cert', 'set', 'soon', '--cert', files.soonCert!, '--key', files.soonKey!, '--key-ring', keyRing, '--kid', 'k2']);
    expect(enc.code).toBe(0);
    expect(enc.stdout).toContain('(key encrypted: keyEnc)');
    const stored = JSON.parse(await etcdGet(`${prefix}/certs/soon`)) as { key?: string; keyEnc: { kid: string; alg: string; iv: string; data: string } };
    expect(stored.key).toBeUndefined();
    expect(stored.keyEnc).toMatchObject({ kid: 'k2', alg: 'A256GCM' });
    expect(Buffer.from(stored.keyEnc.iv, 'base64')).toHaveLength(12);
    expect(JSON.stringify(stored)).not.toContain('PRIVATE KEY');

    const list = await deploy(['cert', 'list']);
    expect(list.code).toBe(0);
    const lines = list.stdout.split('\n');
    expect(lines[0]).toMatch(/^NAME\s+HOSTS\s+NOT AFTER\s+DAYS LEFT\s+SOURCE\s+NEXT RENEWAL\s+PROBLEM$/);
    expect(lines[1]).toMatch(/^soon\s+\*\.soon\.com\s+\S+\s+5\s+etcd\s+-$/);
    expect(lines[2]).toMatch(/^www\s+www\.certs\.com,certs\.com\s+\S+\s+(89|90)\s+etcd\s+-$/);
  });
});

describe('routers serving certificate records', () => {
  it('show them in /status (hosts, days left, fingerprint, source, uncovered app hosts, expiring soon) and /metrics', async () => {
    const r1 = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'certs-1', extraArgs: ['--key-ring', keyRing, '--digest-check', '300ms'] });
    routers.push(r1);
    const s = await status(r1);
    expect(s.rejected).toEqual([]);
    expect(s.certificates).toMatchObject({ count: 2, expiringSoon: 1, uncoveredHosts: ['api.certs.com'], uncoveredHostsCount: 1 });
    expect(s.certificates.list.map((c) => [c.name, c.hosts, c.daysLeft, c.source, c.expiringSoon])).toEqual([
      ['soon', ['*.soon.com'], 5, 'etcd', true],
      ['www', ['www.certs.com', 'certs.com'], 89, 'etcd', false],
    ]);
    const { X509Certificate } = await import('node:crypto');
    const leaf = new X509Certificate(www.leafPem);
    const w = s.certificates.list[1]!;
    expect(w.fingerprint).toBe(leaf.fingerprint256.replaceAll(':', '').toLowerCase());
    expect(w.notAfter).toBe(new Date(leaf.validTo).toISOString());

    const text = await metrics(r1);
    expect(text).toContain(`router_certificate_expiry_timestamp_seconds{name="www"} ${Date.parse(leaf.validTo) / 1000}`);
    expect(text).toMatch(/router_certificate_expiry_timestamp_seconds\{name="soon"\} \d+/);
    expect(text).toMatch(/^router_certificates_expiring_soon 1$/m);
    const record = JSON.parse(await etcdGet(`${prefix}/routers/certs-1`)) as { certificatesExpiringSoon?: number };
    expect(record.certificatesExpiringSoon).toBe(1);
  });

  it('reject a bad update with its key and reason and keep the last good certificate, as a router started afterwards does', async () => {
    const r1 = routers[0]!;
    const before = (await status(r1)).certificates.list.find((c) => c.name === 'www')!.fingerprint;
    const key = `${prefix}/certs/www`;
    const bad = JSON.stringify({ cert: www.certPem, keyEnc: { kid: 'k9', alg: 'A256GCM', iv: Buffer.alloc(12).toString('base64'), data: Buffer.alloc(64).toString('base64') } });
    await runEtcdctl(endpoints, ['put', key, bad]);
    const error = 'keyEnc: unknown kid "k9" (the key ring has k1, k2)';
    await waitFor(async () => (await status(r1)).rejected.some((r) => r.key === key), { timeoutMs: 10_000, message: 'the bad certificate rejected' });
    const s1 = await status(r1);
    expect(s1.rejected).toEqual([{ key, revision: expect.any(String), error, kept: expect.stringMatching(/^\d+$/) }]);
    expect(s1.certificates.list.find((c) => c.name === 'www')?.fingerprint).toBe(before);
    expect(await metrics(r1)).toMatch(/^router_rejected_records 1$/m);
    await r1.proc.waitForLine((line) => line.includes('"record rejected; keeping the last good value"') && line.includes(key) && line.includes(JSON.stringify(error).slice(1, -1)));
    const record = JSON.parse(await etcdGet(`${prefix}/routers/certs-1`)) as Status;
    expect(record.rejected.map((r) => [r.key, r.error])).toEqual([[key, error]]);

    const r2 = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'certs-2', extraArgs: ['--key-ring', keyRing, '--digest-check', '300ms'] });
    routers.push(r2);
    // Both past one more write (status records and progress notices move the applied revision on).
    const marker = BigInt(JSON.parse(await runEtcdctl(endpoints, ['put', `${prefix}/apps/marker`, '{"routes":[]}', '-w', 'json'])).header.revision);
    for (const r of [r1, r2]) await waitFor(async () => BigInt((await status(r)).revision) >= marker, { timeoutMs: 10_000, message: 'both routers at the marker' });
    const [a, b] = [await status(r1), await status(r2)];
    expect(b.certificates.list.find((c) => c.name === 'www')?.fingerprint).toBe(before);
    expect([b.digest, b.rejected, b.certificates.list]).toEqual([a.digest, a.rejected, a.certificates.list]);
  });

  it('drop a removed certificate (cert rm) from /status and its metric series; rm of a missing one fails', async () => {
    const rm = await deploy(['cert', 'rm', 'soon']);
    expect(rm.code).toBe(0);
    expect(rm.stdout).toMatch(new RegExp(`^${prefix}/certs/soon deleted at revision \\d+$`));
    for (const r of routers) {
      await waitFor(async () => (await status(r)).certificates.count === 1, { timeoutMs: 10_000, message: 'soon removed' });
      const text = await metrics(r);
      expect(text).not.toContain('name="soon"');
      expect(text).toMatch(/^router_certificates_expiring_soon 0$/m);
      expect((await status(r)).certificates.uncoveredHosts).toEqual(['*.soon.com', 'api.certs.com']);
    }
    const again = await deploy(['cert', 'rm', 'soon']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`no certificate soon (${prefix}/certs/soon does not exist)`);
  });

  it('a router refuses a bad --key-ring file with one line and exit 2', async () => {
    const bad = await ca.writeFile('bad-ring.json', JSON.stringify({ k1: Buffer.alloc(16).toString('base64') }));
    const p = processes.spawn(process.execPath, [ROUTER, '--etcd', endpoints.join(','), '--prefix', prefix, '--key-ring', bad], { name: 'router bad key ring' });
    const { code } = await p.exited;
    expect(code).toBe(2);
    expect(p.stderr).toEqual([`paas-router: --key-ring: ${JSON.stringify(bad)}: key "k1" is 16 bytes, not 32`]);
  });
});
