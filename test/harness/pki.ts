/**
 * Real certificates for tests, made with the openssl command from a private CA created in a
 * temporary directory: ECDSA P-256 or RSA 2048 leaves with chosen DNS names and validity, so a
 * test can make expired, mismatched or wildcard certificates as easily as good ones.
 *
 *   const ca = await createCa();
 *   const www = await ca.issue({ dns: ['www.mango.com'] });
 *   // www.certPem (leaf, then the CA), www.keyPem; ca.certPem for clients' trust
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll } from 'vitest';

const run = promisify(execFile);

export type KeyType = 'ec' | 'rsa';

export interface IssueOptions {
  /** DNS subjectAltNames (none: a certificate without DNS names). */
  dns: string[];
  keyType?: KeyType;
  /** Validity start and end (default: an hour ago, 90 days from now). */
  notBefore?: Date;
  notAfter?: Date;
  /** Subject CN (ignored by the router; default the first DNS name or "no-dns"). */
  cn?: string;
  /** Leave the CA out of `certPem` (a leaf without its chain). */
  leafOnly?: boolean;
  /** IP subjectAltNames (default none). */
  ip?: string[];
  /** extendedKeyUsage (default serverAuth): clientAuth for a TLS client certificate, e.g. etcd's. */
  usage?: ('serverAuth' | 'clientAuth')[];
}

export interface IssuedCert {
  /** The leaf, then the CA certificate, as PEM. */
  certPem: string;
  /** The leaf alone. */
  leafPem: string;
  keyPem: string;
}

export interface TestCa {
  readonly certPem: string;
  /** A file holding the CA certificate (for curl --cacert, openssl -CAfile, paas-agent --ca). */
  readonly certFile: string;
  readonly dir: string;
  issue(opts: IssueOptions): Promise<IssuedCert>;
  /** Writes PEM text to a file in the CA's directory and returns its path. */
  writeFile(name: string, text: string): Promise<string>;
}

/** openssl ca's date format: YYYYMMDDHHMMSSZ. */
function caDate(d: Date): string {
  return `${d.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
}

async function newKey(dir: string, name: string, type: KeyType): Promise<string> {
  const file = join(dir, `${name}.key`);
  const args = type === 'ec'
    ? ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file]
    : ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', file];
  await run('openssl', args);
  return file;
}

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

/** A new private CA (ECDSA P-256 unless said) in a temporary directory removed when the test file ends. */
export async function createCa(keyType: KeyType = 'ec'): Promise<TestCa> {
  const dir = await mkdtemp(join(tmpdir(), 'paas-pki-'));
  dirs.push(dir);
  const caKey = await newKey(dir, 'ca', keyType);
  const certFile = join(dir, 'ca.pem');
  await run('openssl', ['req', '-x509', '-new', '-key', caKey, '-subj', '/CN=paas test CA', '-days', '3650', '-sha256',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', certFile]);
  const certPem = await readFile(certFile, 'utf8');
  await writeFile(join(dir, 'index.txt'), '');
  await writeFile(join(dir, 'serial'), '1000\n');
  let n = 0;

  async function issue(opts: IssueOptions): Promise<IssuedCert> {
    const id = `leaf${++n}`;
    const key = await newKey(dir, id, opts.keyType ?? 'ec');
    const csr = join(dir, `${id}.csr`);
    const cn = opts.cn ?? opts.dns[0] ?? 'no-dns';
    await run('openssl', ['req', '-new', '-key', key, '-subj', `/CN=${cn}`, '-out', csr]);
    const ext = join(dir, `${id}.cnf`);
    const names = [...opts.dns.map((d) => `DNS:${d}`), ...(opts.ip ?? []).map((ip) => `IP:${ip}`)];
    const san = names.length > 0 ? `subjectAltName=${names.join(',')}\n` : '';
    await writeFile(ext, [
      '[ca]', 'default_ca=test', '[test]', `dir=${dir}`, 'database=$dir/index.txt', 'serial=$dir/serial',
      'new_certs_dir=$dir', 'default_md=sha256', 'policy=any', 'unique_subject=no', 'copy_extensions=none',
      'x509_extensions=leaf', '[any]', 'commonName=supplied', '[leaf]', 'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment', `extendedKeyUsage=${(opts.usage ?? ['serverAuth']).join(',')}`, san,
    ].join('\n'));
    const notBefore = opts.notBefore ?? new Date(Date.now() - 3_600_000);
    const notAfter = opts.notAfter ?? new Date(Date.now() + 90 * 86_400_000);
    const out = join(dir, `${id}.pem`);
    await run('openssl', ['ca', '-batch', '-config', ext, '-cert', certFile, '-keyfile', caKey, '-in', csr, '-out', out,
      '-notext', '-startdate', caDate(notBefore), '-enddate', caDate(notAfter)]);
    const leafPem = await readFile(out, 'utf8');
    return { leafPem, certPem: opts.leafOnly === true ? leafPem : leafPem + certPem, keyPem: await readFile(key, 'utf8') };
  }

  // `openssl ca` keeps its serial and index in files: one issue at a time, in call order.
  let queue: Promise<unknown> = Promise.resolve();
  const issueInTurn = (opts: IssueOptions): Promise<IssuedCert> => {
    const next = queue.then(() => issue(opts));
    queue = next.catch(() => undefined);
    return next;
  };

  return {
    certPem,
    certFile,
    dir,
    issue: issueInTurn,
    async writeFile(name, text) {
      const file = join(dir, name);
      await writeFile(file, text);
      return file;
    },
  };
}
