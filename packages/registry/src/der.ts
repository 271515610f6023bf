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

interface Tlv {
  tag: number;
  /** Where the TLV starts (its tag byte). */
  at: number;
  /** Its content: [start, end). */
  start: number;
  end: number;
}

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

/** One TLV at `at`, which must end by `limit`; definite, minimal lengths only. */
function tlv(b: Uint8Array, at: number, limit: number): Tlv {
  if (at + 2 > limit) fail();
  const tag = b[at]!;
  if ((tag & 0x1f) === 0x1f) fail();
  let len = b[at + 1]!;
  let p = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || p + n > limit || b[p] === 0) fail();
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[p++]!;
    if (len < 0x80) fail();
  }
  if (p + len > limit) fail();
  return { tag, at, start: p, end: p + len };
}

/** The TLVs that make up `parent`'s content, exactly. */
function children(b: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let p = parent.start; p < parent.end; ) {
    const t = tlv(b, p, parent.end);
    out.push(t);
    p = t.end;
  }
  return out;
}

function expect(t: Tlv | undefined, tag: number): Tlv {
  if (t === undefined || t.tag !== tag) fail();
  return t;
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

/** UTCTime YYMMDDHHMMSSZ or GeneralizedTime YYYYMMDDHHMMSSZ (the DER forms), in ms. */
function time(b: Uint8Array, t: Tlv): number {
  const len = t.end - t.start;
  let year: number;
  let p = t.start;
  if (t.tag === UTC_TIME && len === 13) {
    const yy = digits(b, p, 2);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
    p += 2;
  } else if (t.tag === GENERALIZED_TIME && len === 15) {
    year = digits(b, p, 4);
    p += 4;
  } else {
    return fail();
  }
  if (b[t.end - 1] !== 0x5a /* Z */) fail();
  const ms = Date.UTC(year, digits(b, p, 2) - 1, digits(b, p + 2, 2), digits(b, p + 4, 2), digits(b, p + 6, 2), digits(b, p + 8, 2));
  return Number.isNaN(ms) ? fail() : ms;
}

const SAN_OID = Uint8Array.of(0x55, 0x1d, 0x11); // 2.5.29.17
const EC_PUBLIC_KEY_OID = Uint8Array.of(0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01); // 1.2.840.10045.2.1
const RSA_ENCRYPTION_OID = Uint8Array.of(0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01); // 1.2.840.113549.1.1.1
/** Named curves by OID content (hex), with the byte length of their private scalar. */
const CURVES = new Map<string, number>([
  ['2a8648ce3d030107', 32], // P-256
  ['2b81040022', 48], // P-384
  ['2b81040023', 66], // P-521
]);

function isOid(b: Uint8Array, t: Tlv, oid: Uint8Array): boolean {
  return t.tag === OID && bytesEqual(b, t.start, t.end, oid, 0, oid.length);
}

function hex(b: Uint8Array, t: Tlv): string {
  return Buffer.from(b.buffer, b.byteOffset + t.start, t.end - t.start).toString('hex');
}

/** A public key as the certificate states it. */
interface PublicKey {
  kind: 'ec' | 'rsa';
  /** EC: the curve's OID content (hex). */
  curve?: string;
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

function slice(b: Uint8Array, t: Tlv): Buffer {
  return Buffer.from(b.buffer, b.byteOffset + t.start, t.end - t.start);
}

function readSpki(b: Uint8Array, spki: Tlv): PublicKey | undefined {
  const [alg, bits] = children(b, spki);
  const [oid, params] = children(b, expect(alg, SEQUENCE));
  expect(bits, BIT_STRING);
  if (b[bits!.start] !== 0) fail();
  const key: Tlv = { tag: BIT_STRING, at: bits!.at, start: bits!.start + 1, end: bits!.end };
  if (oid !== undefined && isOid(b, oid, EC_PUBLIC_KEY_OID) && params !== undefined && params.tag === OID) {
    return { kind: 'ec', curve: hex(b, params), point: slice(b, key) };
  }
  if (oid !== undefined && isOid(b, oid, RSA_ENCRYPTION_OID)) {
    const [n, e] = children(b, expect(tlv(b, key.start, key.end), SEQUENCE));
    return { kind: 'rsa', n: slice(b, expect(n, INTEGER)), e: slice(b, expect(e, INTEGER)) };
  }
  return undefined;
}

/** Reads an X.509 certificate's DER; throws NotFastPath for anything else. */
export function readLeaf(der: Uint8Array): LeafFacts {
  const cert = expect(tlv(der, 0, der.length), SEQUENCE);
  if (cert.end !== der.length) fail();
  const [tbs, sigAlg, sig, extra] = children(der, cert);
  if (extra !== undefined) fail();
  expect(sigAlg, SEQUENCE);
  expect(sig, BIT_STRING);
  const f = children(der, expect(tbs, SEQUENCE));
  let i = f[0]?.tag === 0xa0 ? 1 : 0;
  expect(f[i++], INTEGER);
  expect(f[i++], SEQUENCE); // signature algorithm
  expect(f[i++], SEQUENCE); // issuer
  const validity = children(der, expect(f[i++], SEQUENCE));
  if (validity.length !== 2) fail();
  time(der, validity[0]!);
  const notAfter = time(der, validity[1]!);
  expect(f[i++], SEQUENCE); // subject
  const publicKey = readSpki(der, expect(f[i++], SEQUENCE));
  let dnsNames: string[] | undefined;
  for (; i < f.length; i++) {
    const t = f[i]!;
    if (t.tag === 0x81 || t.tag === 0x82) continue; // issuer/subject unique ids
    if (t.tag !== 0xa3 || i !== f.length - 1) fail();
    const [exts, more] = children(der, t);
    if (more !== undefined) fail();
    for (const ext of children(der, expect(exts, SEQUENCE))) {
      const parts = children(der, expect(ext, SEQUENCE));
      const oid = expect(parts[0], OID);
      const value = parts[parts.length - 1]!;
      if (parts.length === 3) expect(parts[1], BOOLEAN);
      else if (parts.length !== 2) fail();
      expect(value, OCTET_STRING);
      if (!isOid(der, oid, SAN_OID)) continue;
      if (dnsNames !== undefined) fail(); // two SAN extensions: let OpenSSL judge
      dnsNames = [];
      const names = expect(tlv(der, value.start, value.end), SEQUENCE);
      if (names.end !== value.end) fail();
      for (const name of children(der, names)) {
        if (name.tag === 0x82) dnsNames.push(Buffer.from(der.buffer, der.byteOffset + name.start, name.end - name.start).toString('latin1'));
      }
    }
  }
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
  const top = expect(tlv(der, 0, der.length), SEQUENCE);
  if (top.end !== der.length) fail();
  if (pemType === 'EC PRIVATE KEY') {
    if (pub.kind !== 'ec') fail();
    return ecPrivateKeyMatches(der, top, pub, undefined);
  }
  if (pemType !== 'PRIVATE KEY') fail();
  const [version, alg, priv] = children(der, top);
  expect(version, INTEGER);
  const [oid, params] = children(der, expect(alg, SEQUENCE));
  const inner = expect(tlv(der, expect(priv, OCTET_STRING).start, priv!.end), SEQUENCE);
  if (inner.end !== priv!.end) fail();
  if (oid !== undefined && isOid(der, oid, EC_PUBLIC_KEY_OID) && params?.tag === OID && pub.kind === 'ec') {
    return ecPrivateKeyMatches(der, inner, pub, hex(der, params));
  }
  if (oid !== undefined && isOid(der, oid, RSA_ENCRYPTION_OID) && pub.kind === 'rsa') {
    const ints = children(der, inner);
    // Two-prime RSA: version, n, e, d, p, q, dp, dq, qinv.
    if (ints.length !== 9 || ints.some((t) => t.tag !== INTEGER)) fail();
    if (slice(der, ints[1]!).equals(pub.n!) && slice(der, ints[2]!).equals(pub.e!)) return true;
  }
  return fail();
}

function ecPrivateKeyMatches(der: Uint8Array, ecKey: Tlv, pub: PublicKey, curveFromAlg: string | undefined): true {
  const [version, scalar, ...rest] = children(der, ecKey);
  if (expect(version, INTEGER).end - version!.start !== 1 || der[version!.start] !== 1) fail();
  expect(scalar, OCTET_STRING);
  let curve = curveFromAlg;
  let point: Buffer | undefined;
  for (const t of rest) {
    if (t.tag === 0xa0) curve ??= hex(der, expect(tlv(der, t.start, t.end), OID));
    else if (t.tag === 0xa1) {
      const bits = expect(tlv(der, t.start, t.end), BIT_STRING);
      if (der[bits.start] !== 0) fail();
      point = Buffer.from(der.buffer, der.byteOffset + bits.start + 1, bits.end - bits.start - 1);
    } else fail();
  }
  const size = curve === undefined ? undefined : CURVES.get(curve);
  if (size === undefined || curve !== pub.curve || scalar!.end - scalar!.start !== size || point === undefined || !point.equals(pub.point!)) fail();
  return true;
}
