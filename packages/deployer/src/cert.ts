/**
 * cert set / list / rm: certificate records under <prefix>/certs/<name>. `set` judges the record
 * with the routers' own code (parseCertRecord of @paas/registry) before it writes anything, so a
 * file a router would reject is refused here with the same reason; with a key ring and a kid it
 * writes the key encrypted (`keyEnc`) instead of in the clear.
 */
import { readFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { encryptKey, isCertName, parseAcmeHostState, parseCertRecord, parseKeyRing, readCertificate, renewalAt, CERT_NAME_PATTERN, type AcmeHostState, type CertRecord, type Etcd, type KeyLayout, type KeyRing } from '@paas/registry';
import { DeployError, UsageError } from './errors.js';

const DAY_MS = 86_400_000;

export interface CertSetOptions {
  name: string;
  certFile: string;
  keyFile: string;
  /** Both or neither: encrypt the key with key `kid` of this key ring file. */
  keyRingFile?: string | undefined;
  kid?: string | undefined;
  /** The clock expiry is judged by (default: now). */
  now?: () => number;
}

export interface CertSummary {
  name: string;
  hosts: string[];
  notAfter: number;
  daysLeft: number;
  source: string;
  /** Why a listed record is not valid (its certificate alone is judged: the key may need a key ring). */
  error?: string;
  /** ACME hosts (source "acme"): when the fleet renews it, or its next attempt after a failure. */
  nextRenewal?: number;
  /** ACME hosts: the last failed order's error, while the host is failing. */
  lastError?: string;
}

export interface CertSetResult extends CertSummary {
  key: string;
  revision: bigint;
  encrypted: boolean;
}

function requireCertName(name: string): void {
  if (!isCertName(name)) throw new UsageError(`cert: bad certificate name ${JSON.stringify(name)}: must match ${CERT_NAME_PATTERN}`);
}

async function readText(file: string, flag: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cert set: ${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

async function readKeyRing(file: string): Promise<KeyRing> {
  try {
    return parseKeyRing(await readText(file, '--key-ring'));
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`cert set: --key-ring ${file}: ${(err as Error).message}`);
  }
}

/** The record `set` writes, judged as a router judges it; a UsageError naming the reason otherwise. */
export async function certRecordFromFiles(opts: CertSetOptions): Promise<{ value: string; summary: CertSummary; encrypted: boolean }> {
  requireCertName(opts.name);
  if ((opts.keyRingFile === undefined) !== (opts.kid === undefined)) throw new UsageError('cert set: --key-ring and --kid go together');
  const cert = await readText(opts.certFile, '--cert');
  const key = await readText(opts.keyFile, '--key');
  const ring = opts.keyRingFile !== undefined ? await readKeyRing(opts.keyRingFile) : new Map<string, Buffer>();
  let record: CertRecord;
  if (opts.kid !== undefined) {
    if (!ring.has(opts.kid)) throw new UsageError(`cert set: --kid ${opts.kid} is not in ${opts.keyRingFile} (${[...ring.keys()].join(', ')})`);
    record = { cert, keyEnc: encryptKey(key, opts.kid, ring) };
  } else {
    record = { cert, key };
  }
  const value = JSON.stringify(record);
  const now = opts.now ?? Date.now;
  const parsed = parseCertRecord(value, { keyRing: ring, now });
  if (!parsed.ok) throw new UsageError(`cert set ${opts.name}: ${parsed.error} (--cert ${opts.certFile}, --key ${opts.keyFile}); nothing was written`);
  const v = parsed.value;
  return { value, encrypted: opts.kid !== undefined, summary: { name: opts.name, hosts: v.hosts, notAfter: v.notAfter, daysLeft: Math.floor((v.notAfter - now()) / DAY_MS), source: v.source } };
}

export async function setCert(etcd: Etcd, layout: KeyLayout, opts: CertSetOptions): Promise<CertSetResult> {
  const { value, summary, encrypted } = await certRecordFromFiles(opts);
  const key = layout.cert(opts.name);
  const revision = await etcd.put(key, value);
  return { ...summary, key, revision, encrypted };
}

/** Every certificate record, judged by its certificate alone (hosts, notAfter), sorted by name. */
export async function listCerts(etcd: Etcd, layout: KeyLayout, now = Date.now()): Promise<CertSummary[]> {
  const { entries } = await etcd.listPrefix(layout.certsDir);
  const states = await etcd.listPrefix(layout.acmeStatesDir);
  return certSummaries(entries, states.entries, layout, now);
}

/** listCerts over records already read: `certs/` entries and the `acme/state/` entries. */
export function certSummaries(entries: { key: string; value: Buffer }[], stateEntries: { key: string; value: Buffer }[], layout: KeyLayout, now = Date.now()): CertSummary[] {
  const out: CertSummary[] = [];
  for (const e of entries) {
    const name = e.key.slice(layout.certsDir.length);
    let rec: Partial<CertRecord>;
    try {
      rec = JSON.parse(e.value.toString('utf8')) as Partial<CertRecord>;
    } catch {
      out.push({ name, hosts: [], notAfter: NaN, daysLeft: NaN, source: '-', error: 'not valid JSON' });
      continue;
    }
    const leaf = typeof rec.cert === 'string' ? readCertificate(rec.cert) : { ok: false as const, error: 'cert: missing' };
    const source = typeof rec.source === 'string' ? rec.source : 'etcd';
    if (!leaf.ok) {
      out.push({ name, hosts: [], notAfter: NaN, daysLeft: NaN, source, error: leaf.error });
      continue;
    }
    const { hosts, notAfter, fingerprint } = leaf.value.facts;
    const row: CertSummary = { name, hosts, notAfter, daysLeft: Math.floor((notAfter - now) / DAY_MS), source, ...(notAfter <= now ? { error: 'expired' } : {}) };
    if (source === 'acme') row.nextRenewal = renewalAt(Date.parse(new X509Certificate(leaf.value.der).validFrom), notAfter, fingerprint);
    out.push(row);
  }
  // The fleet's ACME state: the next attempt and last error of failing hosts, and hosts still without a certificate.
  for (const e of stateEntries) {
    const host = e.key.slice(layout.acmeStatesDir.length);
    const st = parseAcmeHostState(e.value);
    if (!st.ok) continue;
    let row = out.find((c) => c.name === host);
    if (row === undefined) {
      row = { name: host, hosts: [host], notAfter: NaN, daysLeft: NaN, source: 'acme' };
      out.push(row);
    }
    if (row.source === 'acme') applyAcmeState(row, st.value);
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : 1));
}

function applyAcmeState(row: CertSummary, st: AcmeHostState): void {
  if (st.failures === 0 || st.lastError === undefined) return;
  row.lastError = st.lastError;
  const next = Date.parse(st.nextAttemptAt ?? '');
  if (!Number.isNaN(next) && (row.nextRenewal === undefined || next > row.nextRenewal)) row.nextRenewal = next;
}

export async function removeCert(etcd: Etcd, layout: KeyLayout, name: string): Promise<{ key: string; revision: bigint }> {
  requireCertName(name);
  const key = layout.cert(name);
  if ((await etcd.get(key)) === undefined) throw new DeployError('not-found', `no certificate ${name} (${key} does not exist)`);
  return { key, revision: await etcd.delete(key) };
}

export function formatCertSet(r: CertSetResult): string {
  return `${r.key} written at revision ${r.revision}${r.encrypted ? ' (key encrypted: keyEnc)' : ''}: ${r.hosts.join(', ')}; notAfter ${new Date(r.notAfter).toISOString()} (${r.daysLeft} days left)`;
}

export function formatCertList(list: CertSummary[]): string {
  if (list.length === 0) return 'no certificates';
  const rows = [['NAME', 'HOSTS', 'NOT AFTER', 'DAYS LEFT', 'SOURCE', 'NEXT RENEWAL', 'PROBLEM']];
  for (const c of list) {
    const problem = [c.error, c.lastError === undefined ? undefined : `last ACME error: ${c.lastError.replace(/\s+/g, ' ')}`].filter(Boolean).join('; ');
    rows.push([c.name, c.hosts.join(',') || '-', Number.isNaN(c.notAfter) ? '-' : new Date(c.notAfter).toISOString(), Number.isNaN(c.daysLeft) ? '-' : String(c.daysLeft), c.source, c.nextRenewal === undefined ? '-' : new Date(c.nextRenewal).toISOString(), problem]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}
