/**
 * The TLS contexts the listener hands to handshakes, one per certificate in use, built at the
 * first handshake that needs it and kept in a least-recently-used cache of --tls-context-cache
 * entries (what a context costs to make and hold: README, TLS benchmark). Node's own
 * `server.addContext` keeps every context forever; Caddy (certmagic's cache) and Traefik also
 * bound what they hold.
 *
 * Keyed by the ServedCertificate object: the table replaces the object when a `certs/` record
 * changes, so the next handshake builds a context for the new certificate while connections
 * already open keep the one they were handshaken with (OpenSSL holds its own reference). The
 * context of the replaced certificate is dropped at once rather than left to age out.
 */
import { createSecureContext, type SecureContext } from 'node:tls';
import type { ServedCertificate } from '../table/cert-index.js';
import type { SpareContexts } from './spare-contexts.js';

export class ContextCache {
  /** In use order: the first entry is the least recently used. */
  private readonly byCert = new Map<ServedCertificate, SecureContext>();
  /** The certificate each name's cached context was built from. */
  private readonly byName = new Map<string, ServedCertificate>();
  /** Contexts built since start (a miss each). */
  built = 0;

  constructor(
    readonly capacity: number,
    /** Empty contexts made ahead; none: every miss builds a whole context. */
    private readonly spares?: SpareContexts,
  ) {}

  get size(): number {
    return this.byCert.size;
  }

  /** The context for `cert`; throws when Node refuses the certificate or key. */
  get(cert: ServedCertificate): SecureContext {
    const cached = this.byCert.get(cert);
    if (cached !== undefined) {
      this.byCert.delete(cert);
      this.byCert.set(cert, cached);
      return cached;
    }
    const context = this.spares?.fill(cert.certPem, cert.keyPem) ?? createSecureContext({ cert: cert.certPem, key: cert.keyPem });
    this.built++;
    const replaced = this.byName.get(cert.name);
    if (replaced !== undefined) this.byCert.delete(replaced);
    this.byName.set(cert.name, cert);
    this.byCert.set(cert, context);
    if (this.byCert.size > this.capacity) {
      const oldest = this.byCert.keys().next().value!;
      this.byCert.delete(oldest);
      if (this.byName.get(oldest.name) === oldest) this.byName.delete(oldest.name);
    }
    return context;
  }
}
