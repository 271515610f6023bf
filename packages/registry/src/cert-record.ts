/**
 * MINIMAL `certs/<name>` parser for the TLS listener's branch (to be replaced by the full one
 * from the certificate-index branch at merge): `{ "cert": PEM chain, "key": PEM }`, checked as
 * CONTRACT-EDGE.md says (PEM, key matches the leaf, not expired, DNS subjectAltNames). No keyEnc.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { ParseResult } from './parse.js';

export interface CertRecordValue {
  readonly cert: string;
  readonly key: string;
  readonly hosts: readonly string[];
  readonly notAfter: number;
  readonly fingerprint: string;
}

export function parseCertRecord(raw: Uint8Array | string): ParseResult<CertRecordValue> {
  let v: { cert?: unknown; key?: unknown };
  try {
    v = JSON.parse(typeof raw === 'string' ? raw : Buffer.from(raw).toString('utf8')) as typeof v;
  } catch (err) {
    return { ok: false, error: `not valid JSON: ${(err as Error).message}` };
  }
  if (typeof v?.cert !== 'string' || typeof v.key !== 'string') return { ok: false, error: 'cert and key must be PEM strings' };
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(v.cert);
  } catch {
    return { ok: false, error: 'cert: not a PEM certificate' };
  }
  try {
    if (!leaf.checkPrivateKey(createPrivateKey(v.key))) return { ok: false, error: 'key: does not match the leaf certificate' };
  } catch {
    return { ok: false, error: 'key: not a PEM private key' };
  }
  const notAfter = Date.parse(leaf.validTo);
  if (notAfter <= Date.now()) return { ok: false, error: `cert: expired ${leaf.validTo}` };
  const hosts = (leaf.subjectAltName ?? '')
    .split(', ')
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4).toLowerCase().replace(/\.$/, ''));
  if (hosts.length === 0) return { ok: false, error: 'cert: no DNS subjectAltName' };
  return { ok: true, value: { cert: v.cert, key: v.key, hosts, notAfter, fingerprint: leaf.fingerprint256.replaceAll(':', '').toLowerCase() } };
}
