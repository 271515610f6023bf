import { describe, expect, it } from 'vitest';
import { CertIndex, certCovers, sanCovers, type ServedCertificate } from '../src/table/cert-index.js';

function cert(name: string, hosts: string[], notAfter = 1000, createRevision = 1n): ServedCertificate {
  return { name, hosts, certPem: `cert ${name}`, keyPem: `key ${name}`, notAfter, fingerprint: name, createRevision };
}

describe('CertIndex', () => {
  it('finds an exact name before a wildcard, and a wildcard one label up only', () => {
    const idx = new CertIndex();
    idx.set(cert('wild', ['*.mango.com']));
    idx.set(cert('www', ['www.mango.com']));
    expect(idx.forHost('www.mango.com')?.name).toBe('www');
    expect(idx.forHost('api.mango.com')?.name).toBe('wild');
    expect(idx.forHost('a.b.mango.com')).toBeUndefined();
    expect(idx.forHost('mango.com')).toBeUndefined();
    expect(idx.forHost('localhost')).toBeUndefined();
  });

  it('prefers the later notAfter, then the lower create revision, and recomputes on delete', () => {
    const idx = new CertIndex();
    idx.set(cert('old', ['a.com'], 1000, 5n));
    idx.set(cert('new', ['a.com'], 2000, 9n));
    expect(idx.forHost('a.com')?.name).toBe('new');
    idx.set(cert('twin', ['a.com'], 2000, 3n));
    expect(idx.forHost('a.com')?.name).toBe('twin');
    idx.delete('twin');
    expect(idx.forHost('a.com')?.name).toBe('new');
    idx.delete('new');
    idx.delete('old');
    expect(idx.forHost('a.com')).toBeUndefined();
    expect(idx.size).toBe(0);
  });

  it('replaces a certificate of the same name, dropping the hosts it no longer covers', () => {
    const idx = new CertIndex();
    idx.set(cert('site', ['a.com', 'b.com']));
    idx.set(cert('site', ['b.com', 'c.com'], 3000));
    expect(idx.forHost('a.com')).toBeUndefined();
    expect(idx.forHost('b.com')?.notAfter).toBe(3000);
    expect(idx.forHost('c.com')?.name).toBe('site');
    expect([...idx.all()].map((c) => c.name)).toEqual(['site']);
  });

  it('says whether a certificate covers a host as TLS clients check it', () => {
    expect(sanCovers('*.mango.com', 'www.mango.com')).toBe(true);
    expect(sanCovers('*.mango.com', 'a.www.mango.com')).toBe(false);
    expect(sanCovers('*.mango.com', 'mango.com')).toBe(false);
    expect(certCovers(cert('x', ['a.com', '*.b.com']), 'q.b.com')).toBe(true);
    expect(certCovers(cert('x', ['a.com', '*.b.com']), 'c.com')).toBe(false);
  });
});
