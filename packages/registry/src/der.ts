/**
 * Reads the few facts a router needs from a certificate and a private key straight from their
 * DER bytes: the leaf's DNS subjectAltNames, notAfter and public key, and the public half a
 * private key carries. Building OpenSSL objects for that (X509Certificate, createPrivateKey)
 * costs ~80 µs per certificate record, which a cold start with many certificates cannot afford
 * (README, Performance).
 *
 * The reader is strict DER and knows only the common shapes (X.509 v1-v3; PKCS#8 and SEC1 EC keys
 * on P-256/384/521 carrying their public point; PKCS#8 RSA keys). Whatever it cannot read, it
 * throws NotFastPath for, and the caller (certificate.ts) asks OpenSSL instead; so it only ever
 * decides the common valid case, and every rejection comes from OpenSSL's own verdict.
 */

/** The DER is not one of the shapes read here: use OpenSSL. */
export class NotFastPath extends Error {}

const SEQUENCE = 0x30;
const INTEGER = 0x02;
const BIT_STRING = 0x03;
const OCTET_STRING = 0x04;
const OID = 0x06;
const BOOLEAN = 0x01;
const UTC_TIME = 0x17;
const GENERALIZED_TIME = 0x18;

function fail(): never {
  throw new NotFastPath();
}

/**
 * A cursor over DER: `read()` takes the TLV at `pos` (which must end by `limit`) into `tag`,
 * `start` and `end`, and moves `pos` past it; `enter()` makes its content the range read next.
 * One object per reading, no allocation per TLV: a cold start reads every certificate record.
 */
class Der {
  pos = 0;
  limit: number;
  tag = 0;
  start = 0;
  end = 0;

  constructor(readonly b: Uint8Array) {
    this.limit = b.length;
  }

  /** Reads the next TLV; with `tag`, it must have that tag. */
  read(tag?: number): this {
    const b = this.b;
    const at = this.pos;
    if (at + 2 > this.limit) fail();
    const t = b[at]!;
    if ((t & 0x1f) === 0x1f || (tag !== undefined && t !== tag)) fail();
    let len = b[at + 1]!;
    let p = at + 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n === 0 || n > 4 || p + n > this.limit || b[p] === 0) fail();
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + b[p++]!;
      if (len < 0x80) fail();
    }
    if (p + len > this.limit) fail();
    this.tag = t;
    this.start = p;
    this.end = p + len;
    this.pos = p + len;
    if (t === OID) this.checkOid();
    else if (t === BOOLEAN && (len !== 1 || (b[p] !== 0 && b[p] !== 0xff))) fail();
    return this;
  }

  /** Minimal base-128 subidentifiers, as OpenSSL requires of an OID. */
  private checkOid(): void {
    const b = this.b;
    if (this.end === this.start || b[this.end - 1]! & 0x80) fail();
    for (let i = this.start; i < this.end; i++) if (b[i] === 0x80 && (i === this.start || !(b[i - 1]! & 0x80))) fail();
  }

  /** Whether anything is left before `limit`. */
  more(): boolean {
    return this.pos < this.limit;
  }

  /** Continues inside the TLV just read; returns where it ends, for leave(). */
  enter(): number {
    const outer = this.limit;
    this.pos = this.start;
    this.limit = this.end;
    return outer;
  }

  /** Back out of a TLV entered, which must have been read to its end. */
  leave(outer: number): void {
    if (this.pos !== this.limit) fail();
    this.limit = outer;
  }

  /** Whether the content of the TLV just read equals `bytes`. */
  is(bytes: Uint8Array): boolean {
    return bytesEqual(this.b, this.start, this.end, bytes, 0, bytes.length);
  }

  content(): Buffer {
    return Buffer.from(this.b.buffer, this.b.byteOffset + this.start, this.end - this.start);
  }
}

function bytesEqual(b1: Uint8Array, s1: number, e1: number, b2: Uint8Array, s2: number, e2: number): boolean {
  if (e1 - s1 !== e2 - s2) return false;
  for (let i = 0; i < e1 - s1; i++) if (b1[s1 + i] !== b2[s2 + i]) return false;
  return true;
}

function digits(b: Uint8Array, at: number, n: number): number {
  let v = 0;
  for (let i = 0; i < n; i++) {
    const c = b[at + i]! - 48;
    if (c < 0 || c > 9) fail();
    v = v * 10 + c;
  }
  return v;
}

/** UTCTime YYMMDDHHMMSSZ or GeneralizedTime YYYYMMDDHHMMSSZ (the DER forms) just read, in ms. */
function time(d: Der): number {
  const b = d.b;
  const len = d.end - d.start;
  let year: number;
  let p = d.start;
  if (d.tag === UTC_TIME && len === 13) {
    const yy = digits(b, p, 2);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
    p += 2;
  } else if (d.tag === GENERALIZED_TIME && len === 15) {
    year = digits(b, p, 4);
    p += 4;
  } else {
    return fail();
  }
  if (b[d.end - 1] !== 0x5a /* Z */) fail();
  const month = digits(b, p, 2);
  const day = digits(b, p + 2, 2);
  const hour = digits(b, p + 4, 2);
  const minute = digits(b, p + 6, 2);
  const second = digits(b, p + 8, 2);
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  // Date.UTC rolls over (month 13 is next January): a date that does not come back whole is not one.
  const at = new Date(ms);
  if (at.getUTCMonth() !== month - 1 || at.getUTCDate() !== day || at.getUTCHours() !== hour || at.getUTCMinutes() !== minute || at.getUTCSeconds() !== second) fail();
  return ms;
}

const SAN_OID = Uint8Array.of(0x55, 0x1d, 0x11); // 2.5.29.17
const EC_PUBLIC_KEY_OID = Uint8Array.of(0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01); // 1.2.840.10045.2.1
const RSA_ENCRYPTION_OID = Uint8Array.of(0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01); // 1.2.840.113549.1.1.1
/** Named curves (OID content) with the byte length of their private scalar: P-256, P-384, P-521. */
const CURVES: ReadonlyArray<{ oid: Uint8Array; size: number }> = [
  { oid: Uint8Array.of(0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07), size: 32 },
  { oid: Uint8Array.of(0x2b, 0x81, 0x04, 0x00, 0x22), size: 48 },
  { oid: Uint8Array.of(0x2b, 0x81, 0x04, 0x00, 0x23), size: 66 },
];

/** A public key as the certificate states it. */
interface PublicKey {
  kind: 'ec' | 'rsa';
  /** EC: the curve's OID content. */
  curve?: Buffer;
  /** EC: the point; RSA: the modulus and exponent, as their INTEGER contents. */
  point?: Buffer;
  n?: Buffer;
  e?: Buffer;
}

export interface LeafFacts {
  /** DNS names of the subjectAltName, as written (not yet normalised). */
  dnsNames: string[];
  notAfter: number;
  publicKey: PublicKey | undefined;
}

/** The SubjectPublicKeyInfo just read. */
function readSpki(d: Der): PublicKey | undefined {
  const spki = d.enter();
  const { ec, rsa, curve } = keyAlgorithm(d);
  d.read(BIT_STRING);
  if (d.b[d.start] !== 0) fail();
  let key: PublicKey | undefined;
  if (ec && curve !== undefined) {
    key = { kind: 'ec', curve, point: Buffer.from(d.b.buffer, d.b.byteOffset + d.start + 1, d.end - d.start - 1) };
  } else if (rsa) {
    d.start++; // past the unused-bits byte: the bit string holds an RSAPublicKey
    const bits = d.enter();
    const seq = d.read(SEQUENCE).enter();
    const n = d.read(INTEGER).content();
    const e = d.read(INTEGER).content();
    d.leave(seq);
    d.leave(bits);
    key = { kind: 'rsa', n, e };
  }
  d.leave(spki);
  return key;
}

/** A key's AlgorithmIdentifier (in a SubjectPublicKeyInfo or a PKCS#8 key): EC with its curve, or RSA. */
function keyAlgorithm(d: Der): { ec: boolean; rsa: boolean; curve: Buffer | undefined } {
  const alg = d.read(SEQUENCE).enter();
  d.read(OID);
  const ec = d.is(EC_PUBLIC_KEY_OID);
  const rsa = !ec && d.is(RSA_ENCRYPTION_OID);
  let curve: Buffer | undefined;
  if (d.more()) {
    params(d);
    if (ec && d.tag === OID) curve = d.content();
  }
  d.leave(alg);
  return { ec, rsa, curve };
}

/** An AlgorithmIdentifier: SEQUENCE { OID, parameters OPTIONAL }: parameters NULL or an OID here. */
function algorithm(d: Der): void {
  const alg = d.read(SEQUENCE).enter();
  d.read(OID);
  if (d.more()) params(d);
  d.leave(alg);
}

/** Reads algorithm parameters: NULL (RSA) or a named curve's OID; anything else is OpenSSL's to judge. */
function params(d: Der): void {
  const tag: number = d.read().tag;
  if (tag === 0x05 ? d.end !== d.start : tag !== OID) fail();
}

/** A Name: SEQUENCE OF SET OF SEQUENCE { OID, a primitive string }. */
function name(d: Der): void {
  const seq = d.read(SEQUENCE).enter();
  while (d.more()) {
    const set = d.read(0x31).enter();
    while (d.more()) {
      const atv = d.read(SEQUENCE).enter();
      d.read(OID);
      // The common string types, 7-bit: anything else (UTF-8 beyond ASCII included) is OpenSSL's to judge.
      const tag: number = d.read().tag;
      if (tag !== 0x0c && tag !== 0x13 && tag !== 0x16) fail();
      for (let i = d.start; i < d.end; i++) if (d.b[i]! >= 0x80) fail();
      d.leave(atv);
    }
    d.leave(set);
  }
  d.leave(seq);
}

/** Reads an X.509 certificate's DER; throws NotFastPath for anything else. */
export function readLeaf(der: Uint8Array): LeafFacts {
  const d = new Der(der);
  d.read(SEQUENCE);
  if (d.end !== der.length) fail();
  const cert = d.enter();
  d.read(SEQUENCE);
  const tbs = d.enter();
  const first: number = d.read().tag;
  if (first === 0xa0) {
    const version = d.enter();
    d.read(INTEGER);
    if (d.end - d.start !== 1 || d.b[d.start]! > 2) fail();
    d.leave(version);
    d.read(INTEGER); // serial number
  } else if (first !== INTEGER) fail();
  algorithm(d); // signature algorithm
  name(d); // issuer
  const validity = d.read(SEQUENCE).enter();
  time(d.read());
  const notAfter = time(d.read());
  d.leave(validity);
  name(d); // subject
  d.read(SEQUENCE);
  const publicKey = readSpki(d);
  let dnsNames: string[] | undefined;
  while (d.more()) {
    const tag: number = d.read().tag;
    if (tag === 0x81 || tag === 0x82) continue; // issuer/subject unique ids
    if (tag !== 0xa3) fail();
    const explicit = d.enter();
    const exts = d.read(SEQUENCE).enter();
    while (d.more()) {
      const ext = d.read(SEQUENCE).enter();
      d.read(OID);
      const san = d.is(SAN_OID);
      const critical: number = d.read().tag;
      if (critical === BOOLEAN) d.read(OCTET_STRING);
      else if (critical !== OCTET_STRING) fail();
      if (san) {
        if (dnsNames !== undefined) fail(); // two SAN extensions: let OpenSSL judge
        dnsNames = [];
        const value = d.enter();
        const names = d.read(SEQUENCE).enter();
        while (d.more()) {
          // dNSName, rfc822Name, URI (IA5String), iPAddress: any other GeneralName is OpenSSL's to judge.
          const tag: number = d.read().tag;
          if (tag === 0x82) dnsNames.push(Buffer.from(der.buffer, der.byteOffset + d.start, d.end - d.start).toString('latin1'));
          else if (tag === 0x87 ? d.end - d.start !== 4 && d.end - d.start !== 16 : tag !== 0x81 && tag !== 0x86) fail();
        }
        d.leave(names);
        d.leave(value);
      }
      d.leave(ext);
    }
    d.leave(exts);
    d.leave(explicit);
    if (d.more()) fail();
  }
  d.leave(tbs);
  algorithm(d); // signature algorithm
  d.read(BIT_STRING); // signature
  if (d.end === d.start || d.b[d.start] !== 0) fail();
  d.leave(cert);
  return { dnsNames: dnsNames ?? [], notAfter, publicKey };
}

/**
 * Whether the private key's public half equals `pub`, read from its DER (PKCS#8 `PRIVATE KEY`,
 * or SEC1 `EC PRIVATE KEY`): true only when the key carries it and it is byte for byte the
 * certificate's, which is what OpenSSL's X509_check_private_key compares. Throws NotFastPath
 * otherwise (no public point in the key, another algorithm, a different encoding of the same
 * point): the caller then asks OpenSSL, whose answer stands.
 */
export function keyMatches(der: Uint8Array, pemType: string, pub: PublicKey): true {
  const d = new Der(der);
  d.read(SEQUENCE);
  if (d.end !== der.length) fail();
  if (pemType === 'EC PRIVATE KEY') {
    if (pub.kind !== 'ec') fail();
    return ecPrivateKeyMatches(d, pub, undefined);
  }
  if (pemType !== 'PRIVATE KEY') fail();
  const top = d.enter();
  // PKCS#8 version 0, or 1 (which may add the public key after the attributes).
  d.read(INTEGER);
  if (d.end - d.start !== 1 || d.b[d.start]! > 1) fail();
  const { ec, rsa, curve } = keyAlgorithm(d);
  d.read(OCTET_STRING);
  const priv = d.enter();
  d.read(SEQUENCE);
  if (d.end !== d.limit) fail();
  if (ec && curve !== undefined && pub.kind === 'ec') {
    ecPrivateKeyMatches(d, pub, curve);
  } else if (rsa && pub.kind === 'rsa') {
    // Two-prime RSA: version, n, e, d, p, q, dp, dq, qinv.
    const seq = d.enter();
    d.read(INTEGER);
    if (d.end - d.start !== 1 || d.b[d.start] !== 0) fail(); // two-prime RSAPrivateKey: version 0
    const n = d.read(INTEGER).content();
    const e = d.read(INTEGER).content();
    for (let i = 0; i < 6; i++) d.read(INTEGER);
    d.leave(seq);
    if (!n.equals(pub.n!) || !e.equals(pub.e!)) fail();
  } else {
    fail();
  }
  d.leave(priv);
  return true;
}

/** The ECPrivateKey just read: its curve and public point must be the certificate's. */
function ecPrivateKeyMatches(d: Der, pub: PublicKey, curveFromAlg: Buffer | undefined): true {
  const key = d.enter();
  d.read(INTEGER);
  if (d.end - d.start !== 1 || d.b[d.start] !== 1) fail();
  d.read(OCTET_STRING);
  const scalarBytes = d.end - d.start;
  let curve = curveFromAlg;
  let point: Buffer | undefined;
  while (d.more()) {
    d.read();
    if (d.tag === 0xa0) {
      const params = d.enter();
      const named = d.read(OID).content();
      d.leave(params);
      if (curve !== undefined && !curve.equals(named)) fail();
      curve = named;
    } else if (d.tag === 0xa1) {
      const wrapped = d.enter();
      d.read(BIT_STRING);
      if (d.b[d.start] !== 0) fail();
      point = Buffer.from(d.b.buffer, d.b.byteOffset + d.start + 1, d.end - d.start - 1);
      d.leave(wrapped);
    } else fail();
  }
  d.leave(key);
  const known = curve === undefined ? undefined : CURVES.find((c) => curve.equals(c.oid));
  if (known === undefined || !curve!.equals(pub.curve!) || scalarBytes !== known.size || point === undefined || !point.equals(pub.point!)) fail();
  return true;
}
