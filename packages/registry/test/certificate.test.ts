/**
 * Certificate records judged with real certificates made by openssl (test/harness/pki.ts): every
 * rejection reason of the contract, keys in the clear and encrypted with a key ring, and the DER
 * fast path agreeing with OpenSSL's own reading.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { encryptKey, parseKeyRing, type KeyRing, type ParseContext } from '../src/certificate.js';
import { keyMatches, readLeaf } from '../src/der.js';
import { KeyLayout } from '../src/keys.js';
import { hostError } from '../src/names.js';
import { parseRecord } from '../src/kinds.js';
import { parseCertRecord } from '../src/parse.js';
import { createCa, type IssuedCert, type IssueOptions, type TestCa } from '../../../test/harness/pki.js';

const ring: KeyRing = parseKeyRing(JSON.stringify({ k1: Buffer.alloc(32, 1).toString('base64'), k2: Buffer.alloc(32, 2).toString('base64') }));
const ctx: ParseContext = { keyRing: ring, now: Date.now };
const json = (v: unknown) => JSON.stringify(v);
/** One at a time: `openssl ca` keeps a database file that concurrent runs corrupt. */
async function issueAll<T extends IssueOptions[]>(list: [...T]): Promise<{ [K in keyof T]: IssuedCert }> {
  const out: IssuedCert[] = [];
  for (const opts of list) out.push(await ca.issue(opts));
  return out as { [K in keyof T]: IssuedCert };
}

let ca: TestCa;
let ec: IssuedCert;
let rsa: IssuedCert;
let other: IssuedCert;
let noDns: IssuedCert;
let expired: IssuedCert;
let soon: IssuedCert;

beforeAll(async () => {
  ca = await createCa();
  [ec, rsa, other, noDns, expired, soon] = await issueAll([
    { dns: ['www.mango.com', '*.mango.com', 'WWW.Apple.com'] },
    { dns: ['rsa.mango.com'], keyType: 'rsa' },
    { dns: ['other.mango.com'] },
    { dns: [] },
    { dns: ['old.mango.com'], notBefore: new Date(Date.now() - 10 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) },
    { dns: ['soon.mango.com'], notAfter: new Date(Date.now() + 3_600_000) },
  ]);
});

describe('a valid certificate record', () => {
  it.each(['ec', 'rsa'] as const)('gives the leaf facts OpenSSL reads (%s)', (type) => {
    const c = type === 'ec' ? ec : rsa;
    const r = parseCertRecord(json({ cert: c.certPem, key: c.keyPem }), ctx);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const x = new X509Certificate(c.leafPem);
    expect(r.value.notAfter).toBe(Date.parse(x.validTo));
    expect(r.value.fingerprint).toBe(x.fingerprint256.replaceAll(':', '').toLowerCase());
    expect(r.value.hosts).toEqual(type === 'ec' ? ['www.mango.com', '*.mango.com', 'www.apple.com'] : ['rsa.mango.com']);
    expect(r.value.certPem).toBe(c.certPem);
    expect(r.value.keyPem).toBe(c.keyPem);
    expect(r.value.source).toBe('etcd');
  });

  it('is read from the DER without OpenSSL objects for the common shapes (ECDSA and RSA leaves, PKCS#8 and SEC1 keys)', () => {
    const der = (pem: string) => Buffer.from(pem.split('-----')[2]!, 'base64');
    for (const c of [ec, rsa]) {
      const facts = readLeaf(der(c.leafPem));
      expect(facts.notAfter).toBe(Date.parse(new X509Certificate(c.leafPem).validTo));
      expect(keyMatches(der(c.keyPem), 'PRIVATE KEY', facts.publicKey!)).toBe(true);
    }
    const sec1 = createPrivateKey(ec.keyPem).export({ type: 'sec1', format: 'der' });
    expect(keyMatches(sec1, 'EC PRIVATE KEY', readLeaf(der(ec.leafPem)).publicKey!)).toBe(true);
    // Not the key of this leaf: the fast path does not decide, OpenSSL does (and rejects it).
    expect(() => keyMatches(der(other.keyPem), 'PRIVATE KEY', readLeaf(der(ec.leafPem)).publicKey!)).toThrow();
  });

  it('takes keys in SEC1 and PKCS#1 PEM too, and keeps a record\'s source', () => {
    const sec1 = createPrivateKey(ec.keyPem).export({ type: 'sec1', format: 'pem' }) as string;
    const pkcs1 = createPrivateKey(rsa.keyPem).export({ type: 'pkcs1', format: 'pem' }) as string;
    expect(parseCertRecord(json({ cert: ec.certPem, key: sec1 }), ctx).ok).toBe(true);
    expect(parseCertRecord(json({ cert: rsa.certPem, key: pkcs1 }), ctx).ok).toBe(true);
    const acme = parseCertRecord(json({ cert: ec.leafPem, key: ec.keyPem, source: 'acme' }), ctx);
    expect(acme.ok && acme.value.source).toBe('acme');
  });

  it('is a record kind under certs/<name>, names of letters, digits, "-" and "."', () => {
    const layout = new KeyLayout('/paas');
    const ref = layout.parse('/paas/certs/www.mango.com');
    expect(ref).toEqual({ ok: true, ref: { kind: 'cert', name: 'www.mango.com' } });
    const parsed = ref.ok ? parseRecord(ref.ref, json({ cert: ec.certPem, key: ec.keyPem }), ctx) : undefined;
    expect(parsed?.ok).toBe(true);
    expect(layout.parse('/paas/certs/Mango')).toEqual({ ok: false, error: 'certificate name "Mango" does not match ^[a-z0-9.-]{1,253}$' });
    expect(layout.parse('/paas/certs/a/b')).toEqual({ ok: false, error: 'expected certs/<name>' });
    expect(layout.parse(`/paas/certs/${'a'.repeat(254)}`).ok).toBe(false);
  });
});

describe('rejections, each with its reason', () => {
  const reject = (value: unknown, c: ParseContext = ctx) => {
    const r = parseCertRecord(typeof value === 'string' ? value : json(value), c);
    expect(r.ok).toBe(false);
    return { error: r.ok ? '' : r.error };
  };

  it('not PEM: the certificate, a broken block, the key', () => {
    expect(reject({ cert: 'hello', key: ec.keyPem }).error).toBe('cert: not PEM (no -----BEGIN CERTIFICATE----- block)');
    expect(reject({ cert: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', key: ec.keyPem }).error).toMatch(/^cert: the first PEM block is not an X.509 certificate/);
    expect(reject({ cert: ec.keyPem, key: ec.keyPem }).error).toBe('cert: not PEM certificates (a "PRIVATE KEY" block)');
    expect(reject({ cert: `${ec.leafPem}-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n`, key: ec.keyPem }).error).toMatch(/^cert: PEM block 2 is not an X.509 certificate/);
    expect(reject({ cert: ec.certPem, key: 'nope' }).error).toBe('key: not PEM (no -----BEGIN PRIVATE KEY----- block)');
    expect(reject({ cert: ec.certPem, key: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n' }).error).toMatch(/^key: not a usable PEM private key/);
  });

  it('a key that does not match the leaf (same algorithm, or another one)', () => {
    expect(reject({ cert: ec.certPem, key: other.keyPem }).error).toBe('key does not match the leaf certificate');
    expect(reject({ cert: ec.certPem, key: rsa.keyPem }).error).toBe('key does not match the leaf certificate');
    expect(reject({ cert: rsa.certPem, key: ec.keyPem }).error).toBe('key does not match the leaf certificate');
  });

  it('an expired leaf, judged by the context\'s clock', () => {
    const r = reject({ cert: expired.certPem, key: expired.keyPem });
    expect(r.error).toMatch(/^cert: the leaf expired at \d{4}-\d\d-\d\dT/);
    // The clock is the context's: the same record an hour and a half later.
    const later: ParseContext = { keyRing: ring, now: () => Date.now() + 5_400_000 };
    expect(parseCertRecord(json({ cert: soon.certPem, key: soon.keyPem }), ctx).ok).toBe(true);
    expect(reject({ cert: soon.certPem, key: soon.keyPem }, later).error).toMatch(/^cert: the leaf expired at /);
    // Any other fault is reported first: "expired" is said only of a record valid but for time.
    expect(reject({ cert: expired.certPem, key: other.keyPem }).error).toBe('key does not match the leaf certificate');
  });

  it('no DNS subjectAltName', () => {
    expect(reject({ cert: noDns.certPem, key: noDns.keyPem }).error).toBe('cert: the leaf certificate has no DNS subjectAltName');
  });

  it('neither or both of key and keyEnc; bad shapes', () => {
    expect(reject({ cert: ec.certPem }).error).toBe('a certificate record has either "key" or "keyEnc", exactly one');
    expect(reject({ cert: ec.certPem, key: ec.keyPem, keyEnc: encryptKey(ec.keyPem, 'k1', ring) }).error).toBe('a certificate record has either "key" or "keyEnc", exactly one');
    expect(reject({ key: ec.keyPem }).error).toMatch(/^cert: /);
    expect(reject({ cert: ec.certPem, key: ec.keyPem, source: 'Not Valid' }).error).toMatch(/^source: /);
  });
});

describe('keyEnc: the key encrypted with the routers\' key ring', () => {
  it('round-trips with either kid of the ring', () => {
    for (const kid of ['k1', 'k2']) {
      const keyEnc = encryptKey(ec.keyPem, kid, ring);
      expect(Buffer.from(keyEnc.iv, 'base64')).toHaveLength(12);
      const r = parseCertRecord(json({ cert: ec.certPem, keyEnc }), ctx);
      expect(r.ok && r.value.keyPem).toBe(ec.keyPem);
    }
  });

  it('rejects an unknown kid, altered data, a wrong key and a bad iv', () => {
    const keyEnc = encryptKey(ec.keyPem, 'k1', ring);
    const r = (enc: object, c: ParseContext = ctx) => {
      const p = parseCertRecord(json({ cert: ec.certPem, keyEnc: enc }), c);
      return p.ok ? 'accepted' : p.error;
    };
    expect(r({ ...keyEnc, kid: 'k9' })).toBe('keyEnc: unknown kid "k9" (the key ring has k1, k2)');
    expect(r(keyEnc, { keyRing: new Map(), now: Date.now })).toBe('keyEnc: unknown kid "k1" (this router has no --key-ring)');
    const data = Buffer.from(keyEnc.data, 'base64');
    data[5]! ^= 1;
    expect(r({ ...keyEnc, data: data.toString('base64') })).toBe('keyEnc: does not decrypt with key "k1" (another key, or altered data)');
    expect(r({ ...keyEnc, kid: 'k2' })).toBe('keyEnc: does not decrypt with key "k2" (another key, or altered data)');
    expect(r({ ...keyEnc, iv: Buffer.alloc(16).toString('base64') })).toBe('keyEnc.iv: 16 bytes, not 12');
    expect(r({ ...keyEnc, alg: 'A128GCM' })).toMatch(/^keyEnc\.alg: /);
  });

  it('key ring files: what is refused', () => {
    expect(() => parseKeyRing('nope')).toThrow(/^not JSON/);
    expect(() => parseKeyRing('[]')).toThrow('must be a JSON object');
    expect(() => parseKeyRing('{}')).toThrow('holds no key');
    expect(() => parseKeyRing(json({ k1: Buffer.alloc(16).toString('base64') }))).toThrow('key "k1" is 16 bytes, not 32');
    expect(() => parseKeyRing(json({ k1: 'not base64!' }))).toThrow('key "k1" is not base64 text');
    expect(() => parseKeyRing(json({ 'a b': Buffer.alloc(32).toString('base64') }))).toThrow(/^kid "a b" must match/);
  });
});

describe('the DER fast path never decides against OpenSSL', () => {
  const der = (pem: string) => Buffer.from(pem.split('-----')[2]!, 'base64');
  const pem = (type: string, bytes: Buffer) => `-----BEGIN ${type}-----\n${bytes.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END ${type}-----\n`;
  /**
   * OpenSSL's verdict alone: it reads the leaf and the key, they match, not expired; plus the
   * contract's own rule on names: at least one DNS name, each a host name.
   */
  const byOpenSsl = (certPem: string, keyPem: string): boolean => {
    try {
      const x = new X509Certificate(certPem);
      const dns = [...(x.subjectAltName ?? '').matchAll(/(?:^|, )DNS:([^,]*)/g)].map((m) => m[1]!.toLowerCase().replace(/\.$/, ''));
      return x.checkPrivateKey(createPrivateKey(keyPem)) && dns.length > 0 && dns.every((h) => hostError(h, true) === undefined) && Date.parse(x.validTo) > Date.now();
    } catch {
      return false;
    }
  };

  it('accepts or rejects a leaf or key with one byte changed exactly as OpenSSL does', () => {
    const cases = [
      { c: ec, type: 'PRIVATE KEY' },
      { c: rsa, type: 'PRIVATE KEY' },
    ];
    fc.assert(
      fc.property(fc.constantFrom(0, 1), fc.boolean(), fc.nat(), fc.integer({ min: 1, max: 255 }), (which, inKey, at, xor) => {
        const { c, type } = cases[which]!;
        const leaf = der(c.leafPem);
        const key = der(c.keyPem);
        const target = inKey ? key : leaf;
        target[at % target.length]! ^= xor;
        const certPem = pem('CERTIFICATE', leaf);
        const keyPem = pem(type, key);
        const r = parseCertRecord(json({ cert: certPem, key: keyPem }), ctx);
        expect(r.ok).toBe(byOpenSsl(certPem, keyPem));
      }),
      { numRuns: 1000 },
    );
  });
});
