/**
 * What makes a certificate record valid (docs/CONTRACT.md, "Certificate record"): PEM text, a
 * leaf with DNS subjectAltNames that has not expired, and a private key matching it, given in
 * clear (`key`) or encrypted with a key of the routers' key ring (`keyEnc`, AES-256-GCM). The
 * router (through parseRecord) and `paas-deploy cert set` both judge a record with this code.
 *
 * Facts are read from the DER directly (der.ts) where it can; whatever that fast path cannot
 * read, OpenSSL (X509Certificate, createPrivateKey, checkPrivateKey) judges, so a record is only
 * ever rejected on OpenSSL's word.
 */
import { createCipheriv, createDecipheriv, createPrivateKey, hash, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { keyMatches, NotFastPath, readLeaf, type LeafFacts } from './der.js';
import { hostError } from './names.js';
import type { ParseResult } from './parse.js';
import type { EncryptedKey } from './schema.js';

/** Key id → the 32-byte AES-256 key. */
export type KeyRing = ReadonlyMap<string, Buffer>;

/** What judging a record needs beyond its bytes: the key ring, and the clock expiry is read from. */
export interface ParseContext {
  readonly keyRing: KeyRing;
  /** Milliseconds since the epoch. */
  now(): number;
}

/** No key ring and the wall clock: what a caller that has no key ring judges records with. */
export const DEFAULT_PARSE_CONTEXT: ParseContext = { keyRing: new Map(), now: Date.now };

/** The leaf's facts as the table keeps them. */
export interface CertificateFacts {
  /** DNS subjectAltNames, lower-case, without a trailing dot, each once. */
  hosts: string[];
  notAfter: number;
  /** SHA-256 of the leaf's DER, lower-case hex. */
  fingerprint: string;
}

interface PemBlock {
  type: string;
  der: Buffer;
}

const BEGIN = '-----BEGIN ';
const DASHES = '-----';
/** Base64 characters and line breaks, with padding only at the end (Buffer's decoder would skip anything else). */
const BASE64_BODY = /^[A-Za-z0-9+/\r\n]*={0,2}[\r\n]*$/;
const PEM_TYPE = /^[A-Z0-9 ]+$/;

/**
 * The PEM blocks of `text`, in order; text around them is ignored, as OpenSSL does. Empty when a
 * block is malformed. Cut with indexOf rather than one regex: a cold start reads every record.
 */
function pemBlocks(text: string): PemBlock[] {
  const out: PemBlock[] = [];
  for (let at = text.indexOf(BEGIN); at >= 0; at = text.indexOf(BEGIN, at)) {
    const typeEnd = text.indexOf(DASHES, at + BEGIN.length);
    if (typeEnd < 0) return [];
    const type = text.slice(at + BEGIN.length, typeEnd);
    const end = `-----END ${type}-----`;
    const bodyStart = typeEnd + DASHES.length;
    const bodyEnd = text.indexOf(end, bodyStart);
    if (bodyEnd < 0 || !PEM_TYPE.test(type)) return [];
    const body = text.slice(bodyStart, bodyEnd);
    if (!BASE64_BODY.test(body)) return [];
    out.push({ type, der: Buffer.from(body, 'base64') });
    at = bodyEnd + end.length;
  }
  return out;
}

/** The DNS names of Node's subjectAltName text (`DNS:a, DNS:"b,c", IP Address:...`). */
function dnsNamesOf(san: string | undefined): string[] {
  const out: string[] = [];
  if (san === undefined) return out;
  const re = /(?:^|, )([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)/g;
  for (let m = re.exec(san); m !== null; m = re.exec(san)) {
    if (m[1] !== 'DNS') continue;
    out.push(m[2]!.startsWith('"') ? (JSON.parse(m[2]!) as string) : m[2]!);
  }
  return out;
}

function normaliseHosts(names: string[]): ParseResult<string[]> {
  const hosts = new Set<string>();
  for (const name of names) {
    const h = name.toLowerCase().replace(/\.$/, '');
    const err = hostError(h, true);
    if (err !== undefined) return { ok: false, error: `cert: subjectAltName DNS name ${JSON.stringify(name)} is not a host name (${err})` };
    hosts.add(h);
  }
  if (hosts.size === 0) return { ok: false, error: 'cert: the leaf certificate has no DNS subjectAltName' };
  return { ok: true, value: [...hosts] };
}

/** A certificate's facts through OpenSSL, for what the fast path does not read; `which` names the block. */
function leafBySsl(der: Buffer, which = 'the first PEM block'): ParseResult<{ facts: LeafFacts; x509: X509Certificate }> {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(der);
  } catch (err) {
    return { ok: false, error: `cert: ${which} is not an X.509 certificate (${(err as Error).message})` };
  }
  let facts: LeafFacts;
  try {
    facts = { dnsNames: dnsNamesOf(x509.subjectAltName), notAfter: Date.parse(x509.validTo), publicKey: undefined };
  } catch (err) {
    return { ok: false, error: `cert: the leaf certificate cannot be read (${(err as Error).message})` };
  }
  if (Number.isNaN(facts.notAfter)) return { ok: false, error: `cert: the leaf's notAfter cannot be read (${JSON.stringify(x509.validTo)})` };
  return { ok: true, value: { x509, facts } };
}

export interface Leaf {
  facts: CertificateFacts;
  der: Buffer;
  /** The fast path's reading, or OpenSSL's object when the fast path could not read it. */
  read: LeafFacts | X509Certificate;
}

/** Reads and checks the `cert` PEM text: certificates only, the first one with DNS names. */
export function readCertificate(certPem: string): ParseResult<Leaf> {
  const blocks = pemBlocks(certPem);
  if (blocks.length === 0) return { ok: false, error: 'cert: not PEM (no -----BEGIN CERTIFICATE----- block)' };
  const other = blocks.find((b) => b.type !== 'CERTIFICATE');
  if (other !== undefined) return { ok: false, error: `cert: not PEM certificates (a ${JSON.stringify(other.type)} block)` };
  const der = blocks[0]!.der;
  let facts: LeafFacts;
  let read: LeafFacts | X509Certificate;
  try {
    read = facts = readLeaf(der);
    for (let i = 1; i < blocks.length; i++) readLeaf(blocks[i]!.der);
  } catch (err) {
    if (!(err instanceof NotFastPath)) throw err;
    for (let i = 1; i < blocks.length; i++) {
      const chained = leafBySsl(blocks[i]!.der, `PEM block ${i + 1}`);
      if (!chained.ok) return chained;
    }
    const ssl = leafBySsl(der);
    if (!ssl.ok) return ssl;
    facts = ssl.value.facts;
    read = ssl.value.x509;
  }
  const hosts = normaliseHosts(facts.dnsNames);
  if (!hosts.ok) return hosts;
  const fingerprint = hash('sha256', der, 'hex');
  return { ok: true, value: { facts: { hosts: hosts.value, notAfter: facts.notAfter, fingerprint }, der, read } };
}

/** Checks that `keyPem` is a private key matching the leaf. */
export function checkKey(leaf: Leaf, keyPem: string): string | undefined {
  const blocks = pemBlocks(keyPem);
  const block = blocks[0];
  if (block === undefined || !block.type.endsWith('PRIVATE KEY')) return 'key: not PEM (no -----BEGIN PRIVATE KEY----- block)';
  if (!(leaf.read instanceof X509Certificate) && leaf.read.publicKey !== undefined) {
    try {
      if (keyMatches(block.der, block.type, leaf.read.publicKey)) return undefined;
    } catch (err) {
      if (!(err instanceof NotFastPath)) throw err;
    }
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    return `key: not a usable PEM private key (${(err as Error).message})`;
  }
  let x509: X509Certificate;
  try {
    x509 = leaf.read instanceof X509Certificate ? leaf.read : new X509Certificate(leaf.der);
  } catch (err) {
    return `cert: the first PEM block is not an X.509 certificate (${(err as Error).message})`;
  }
  return x509.checkPrivateKey(key) ? undefined : 'key does not match the leaf certificate';
}

const KID = /^[A-Za-z0-9._-]{1,64}$/;
const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Reads a key ring file's text (`{ "<kid>": "<base64 of 32 bytes>" }`); throws with the reason. */
export function parseKeyRing(text: string): KeyRing {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`not JSON (${(err as Error).message})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error('must be a JSON object { "<kid>": "<base64 of 32 bytes>" }');
  const ring = new Map<string, Buffer>();
  for (const [kid, value] of Object.entries(json)) {
    if (!KID.test(kid)) throw new Error(`kid ${JSON.stringify(kid)} must match ${KID.source}`);
    if (typeof value !== 'string' || !STRICT_BASE64.test(value)) throw new Error(`key ${JSON.stringify(kid)} is not base64 text`);
    const key = Buffer.from(value, 'base64');
    if (key.length !== 32) throw new Error(`key ${JSON.stringify(kid)} is ${key.length} bytes, not 32`);
    ring.set(kid, key);
  }
  if (ring.size === 0) throw new Error('holds no key');
  return ring;
}

const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Encrypts a private key's PEM text for a record's `keyEnc` (a fresh random 12-byte IV). */
export function encryptKey(keyPem: string, kid: string, ring: KeyRing): EncryptedKey {
  const key = ring.get(kid);
  if (key === undefined) throw new Error(`kid ${JSON.stringify(kid)} is not in the key ring (${[...ring.keys()].join(', ')})`);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  const data = Buffer.concat([cipher.update(keyPem, 'utf8'), cipher.final(), cipher.getAuthTag()]);
  return { kid, alg: 'A256GCM', iv: iv.toString('base64'), data: data.toString('base64') };
}

/** The PEM text of an encrypted key, or why it cannot be had. */
export function decryptKey(enc: EncryptedKey, ring: KeyRing): ParseResult<string> {
  const key = ring.get(enc.kid);
  if (key === undefined) {
    const known = ring.size === 0 ? 'this router has no --key-ring' : `the key ring has ${[...ring.keys()].join(', ')}`;
    return { ok: false, error: `keyEnc: unknown kid ${JSON.stringify(enc.kid)} (${known})` };
  }
  if (!STRICT_BASE64.test(enc.iv) || !STRICT_BASE64.test(enc.data)) return { ok: false, error: 'keyEnc: iv and data must be base64' };
  const iv = Buffer.from(enc.iv, 'base64');
  const data = Buffer.from(enc.data, 'base64');
  if (iv.length !== IV_BYTES) return { ok: false, error: `keyEnc.iv: ${iv.length} bytes, not ${IV_BYTES}` };
  if (data.length <= TAG_BYTES) return { ok: false, error: `keyEnc.data: shorter than the ${TAG_BYTES}-byte tag` };
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
    decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
    const plain = Buffer.concat([decipher.update(data.subarray(0, data.length - TAG_BYTES)), decipher.final()]);
    return { ok: true, value: plain.toString('utf8') };
  } catch {
    return { ok: false, error: `keyEnc: does not decrypt with key ${JSON.stringify(enc.kid)} (another key, or altered data)` };
  }
}

/** The one verdict on an expired leaf (parseCertRecord, and the router's expiry timer). */
export function expiredError(notAfter: number): { ok: false; error: string } {
  return { ok: false, error: `cert: the leaf expired at ${new Date(notAfter).toISOString()}` };
}
