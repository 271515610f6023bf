/** The TLS listener's context cache: built at first use, least recently used dropped, a replaced certificate's context dropped at once. */
import { describe, expect, it } from 'vitest';
import { ContextCache } from '../src/listeners/tls-contexts.js';
import type { ServedCertificate } from '../src/table/cert-index.js';
import { createCa } from '../../../test/harness/pki.js';

describe('ContextCache', () => {
  it('builds once per certificate object, keeps at most its capacity, and forgets a replaced certificate', async () => {
    const ca = await createCa();
    const certs: ServedCertificate[] = [];
    for (const name of ['a.test', 'b.test', 'c.test']) {
      const c = await ca.issue({ dns: [name] });
      certs.push({ name, hosts: [name], certPem: c.certPem, keyPem: c.keyPem, notAfter: 0, fingerprint: name, createRevision: 1n });
    }
    const [a, b, c] = certs as [ServedCertificate, ServedCertificate, ServedCertificate];
    const cache = new ContextCache(2);
    const ctxA = cache.get(a);
    expect(cache.get(a)).toBe(ctxA);
    cache.get(b);
    cache.get(a); // a is now the most recently used
    cache.get(c); // evicts b
    expect(cache.size).toBe(2);
    expect(cache.built).toBe(3);
    expect(cache.get(a)).toBe(ctxA);
    expect(cache.built).toBe(3);
    cache.get(b);
    expect(cache.built).toBe(4);
    // The same name with a new certificate object (a rotation): a new context, the old one dropped.
    const rotated = { ...a, fingerprint: 'a2' };
    const ctxRotated = cache.get(rotated);
    expect(ctxRotated).not.toBe(ctxA);
    expect(cache.size).toBe(2);
    expect(cache.get(rotated)).toBe(ctxRotated);
  });

  it('throws for a key Node refuses, caching nothing', async () => {
    const ca = await createCa();
    const one = await ca.issue({ dns: ['a.test'] });
    const cache = new ContextCache(4);
    expect(() => cache.get({ name: 'bad', hosts: ['a.test'], certPem: one.certPem, keyPem: 'not a key', notAfter: 0, fingerprint: 'x', createRevision: 1n })).toThrow();
    expect(cache.size).toBe(0);
  });
});
