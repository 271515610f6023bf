/**
 * The TLS listener's context cache: built at first use, least recently used dropped, a replaced
 * certificate's context dropped at once; with spare contexts, each filled with its certificate,
 * checked through real handshakes against a private CA.
 */
import { X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { connect, createServer } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { SpareContexts } from '../src/listeners/spare-contexts.js';
import { ContextCache } from '../src/listeners/tls-contexts.js';
import type { ServedCertificate } from '../src/table/cert-index.js';
import { createCa } from '../../../test/harness/pki.js';
import { waitFor } from '../../../test/harness/wait.js';

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

/** A TLS server answering every handshake from `cache`, the certificate chosen by server name. */
async function sniServer(cache: ContextCache, byHost: Map<string, ServedCertificate>): Promise<{ port: number; close: () => Promise<void> }> {
  const server = createServer({
    SNICallback(servername, cb) {
      const cert = byHost.get(servername);
      if (cert === undefined) return cb(new Error(`no certificate for ${servername}`));
      try {
        cb(null, cache.get(cert));
      } catch (err) {
        cb(err as Error);
      }
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return { port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** A handshake naming `servername`, checked against the test CA: the leaf's SHA-256 fingerprint. */
function servedFingerprint(port: number, servername: string, caPem: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername, ca: caPem }, () => {
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      socket.destroy();
      resolve(fingerprint);
    });
    socket.once('error', reject);
  });
}

describe('ContextCache with spare contexts', () => {
  it('serves each certificate from a spare, builds whole contexts once the spares run out, and makes them again', async () => {
    const ca = await createCa();
    const byHost = new Map<string, ServedCertificate>();
    const expected = new Map<string, string>();
    for (let i = 0; i < 10; i++) {
      const host = `h${i}.test`;
      const c = await ca.issue({ dns: [host] });
      byHost.set(host, { name: host, hosts: [host], certPem: c.certPem, keyPem: c.keyPem, notAfter: 0, fingerprint: host, createRevision: 1n });
      expected.set(host, new X509Certificate(c.leafPem).fingerprint256);
    }
    const spares = new SpareContexts(3);
    await waitFor(() => spares.size === 3, { message: '3 spare contexts made' });
    const cache = new ContextCache(100, spares);
    const server = await sniServer(cache, byHost);
    try {
      // One at a time: each takes a spare (built synchronously by the handshake's lookup), made again before the next one.
      for (const host of ['h0.test', 'h1.test', 'h2.test', 'h3.test']) {
        cache.get(byHost.get(host)!);
        expect(spares.size).toBe(2);
        expect(await servedFingerprint(server.port, host, ca.certPem)).toBe(expected.get(host));
        await waitFor(() => spares.size === 3, { message: `the spare taken for ${host} made again` });
      }
      // Six new hosts at once: three from spares, the rest built whole; each serves its own certificate.
      const burst = ['h4.test', 'h5.test', 'h6.test', 'h7.test', 'h8.test', 'h9.test'];
      for (const host of burst) cache.get(byHost.get(host)!);
      expect(spares.size).toBe(0);
      expect(cache.built).toBe(10);
      const served = await Promise.all(burst.map((host) => servedFingerprint(server.port, host, ca.certPem)));
      expect(served).toEqual(burst.map((host) => expected.get(host)));
      // Cached contexts (spare-made or whole) serve again without a build.
      for (const host of ['h0.test', 'h9.test']) expect(await servedFingerprint(server.port, host, ca.certPem)).toBe(expected.get(host));
      expect(cache.built).toBe(10);
      await waitFor(() => spares.size === 3, { message: 'the spares made again after the burst' });
    } finally {
      await server.close();
    }
  });

  it('drops a spare that Node refused a key for, and the next certificate still gets a clean one', async () => {
    const ca = await createCa();
    const a = await ca.issue({ dns: ['a.test'] });
    const b = await ca.issue({ dns: ['b.test'] });
    const spares = new SpareContexts(1);
    await waitFor(() => spares.size === 1, { message: 'a spare context made' });
    const cache = new ContextCache(4, spares);
    // b's key does not match a's certificate: OpenSSL refuses it after the certificate went in.
    expect(() => cache.get({ name: 'mixed', hosts: ['a.test'], certPem: a.certPem, keyPem: b.keyPem, notAfter: 0, fingerprint: 'x', createRevision: 1n })).toThrow();
    expect(cache.size).toBe(0);
    expect(spares.size).toBe(0);
    await waitFor(() => spares.size === 1, { message: 'a new spare made' });
    const good: ServedCertificate = { name: 'a', hosts: ['a.test'], certPem: a.certPem, keyPem: a.keyPem, notAfter: 0, fingerprint: 'a', createRevision: 1n };
    const server = await sniServer(cache, new Map([['a.test', good]]));
    try {
      cache.get(good);
      expect(spares.size).toBe(0);
      expect(await servedFingerprint(server.port, 'a.test', ca.certPem)).toBe(new X509Certificate(a.leafPem).fingerprint256);
      expect(cache.built).toBe(1);
    } finally {
      await server.close();
    }
  });
});

describe('SpareContexts on a Node whose native calls differ', () => {
  it('builds the context whole, says so once, and makes no more spares', async () => {
    const ca = await createCa();
    const a = await ca.issue({ dns: ['a.test'] });
    const told: Error[] = [];
    const spares = new SpareContexts(2, (err) => told.push(err));
    await waitFor(() => spares.size === 2, { message: '2 spare contexts made' });
    // Stands in for a Node that changed its native setCert: the spares' calls throw for a good certificate.
    for (const spare of (spares as unknown as { ready: { context: { setCert: () => void } }[] }).ready) {
      spare.context.setCert = () => {
        throw new Error('changed native call');
      };
    }
    const cache = new ContextCache(4, spares);
    const good: ServedCertificate = { name: 'a', hosts: ['a.test'], certPem: a.certPem, keyPem: a.keyPem, notAfter: 0, fingerprint: 'a', createRevision: 1n };
    const server = await sniServer(cache, new Map([['a.test', good]]));
    try {
      expect(await servedFingerprint(server.port, 'a.test', ca.certPem)).toBe(new X509Certificate(a.leafPem).fingerprint256);
      expect(told.map((e) => e.message)).toEqual(['changed native call']);
      expect(spares.size).toBe(0);
      // Later turns of the event loop make none.
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
      expect(spares.size).toBe(0);
      expect(spares.fill(a.certPem, a.keyPem)).toBeUndefined();
    } finally {
      await server.close();
    }
  });
});
