import { X509Certificate, createPrivateKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createCa } from '../harness/pki.js';

describe('test PKI', () => {
  it('issues ECDSA and RSA leaves signed by the CA with the names and dates asked for', async () => {
    const ca = await createCa();
    const caCert = new X509Certificate(ca.certPem);
    const ec = await ca.issue({ dns: ['www.mango.com', '*.mango.com'] });
    const leaf = new X509Certificate(ec.leafPem);
    expect(leaf.verify(caCert.publicKey)).toBe(true);
    expect(leaf.subjectAltName).toBe('DNS:www.mango.com, DNS:*.mango.com');
    expect(leaf.checkPrivateKey(createPrivateKey(ec.keyPem))).toBe(true);
    expect(createPrivateKey(ec.keyPem).asymmetricKeyType).toBe('ec');
    expect(ec.certPem.startsWith(ec.leafPem)).toBe(true);

    const rsa = await ca.issue({ dns: ['a.com'], keyType: 'rsa', notBefore: new Date('2020-01-01'), notAfter: new Date('2020-02-01') });
    const old = new X509Certificate(rsa.leafPem);
    expect(createPrivateKey(rsa.keyPem).asymmetricKeyType).toBe('rsa');
    expect(new Date(old.validTo).getTime()).toBe(Date.parse('2020-02-01T00:00:00Z'));

    const bare = await ca.issue({ dns: [], cn: 'only-cn' });
    // Issued at once, as tests do with Promise.all: each gets its own serial and names.
    const many = await Promise.all(['a', 'b', 'c', 'd', 'e', 'f'].map((n) => ca.issue({ dns: [`${n}.example.com`] })));
    expect(new Set(many.map((c) => new X509Certificate(c.leafPem).serialNumber)).size).toBe(6);
    expect(many.map((c) => new X509Certificate(c.leafPem).subjectAltName)).toEqual(['a', 'b', 'c', 'd', 'e', 'f'].map((n) => `DNS:${n}.example.com`));
    expect(new X509Certificate(bare.leafPem).subjectAltName).toBeUndefined();
  });
});
