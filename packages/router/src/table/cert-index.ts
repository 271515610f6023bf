/**
 * The certificates a router serves (records under `certs/`), indexed by the host names they cover
 * so that a TLS handshake finds its certificate by SNI in two map lookups, never a scan:
 * the exact name first, then the wildcard one label up (`*.mango.com` covers `a.mango.com`, not
 * `a.b.mango.com`, as TLS clients check it). Among certificates covering a name equally, the later
 * notAfter wins, then the lower create revision (docs/CONTRACT.md, "Certificate record").
 */

/** One validated certificate record, as the listeners use it. Immutable: a change is a new object. */
export interface ServedCertificate {
  /** `<name>` of `certs/<name>`. */
  readonly name: string;
  /** The leaf's DNS subjectAltNames, lower-case, without a trailing dot; `*.x` kept as written. */
  readonly hosts: readonly string[];
  /** Leaf first, then intermediates, as PEM. */
  readonly certPem: string;
  /** The private key as PEM (decrypted when the record carried `keyEnc`). */
  readonly keyPem: string;
  /** The leaf's notAfter, in ms since the epoch. */
  readonly notAfter: number;
  /** SHA-256 of the leaf's DER, as colon-less lower-case hex. */
  readonly fingerprint: string;
  /** The record's create revision: the last tie-break between equal certificates. */
  readonly createRevision: bigint;
  /** Who issued it: the record's `source`, "etcd" when it has none (an operator's record). */
  readonly source?: string;
}

/** Whether `a` serves a name both cover instead of `b`. */
function beats(a: ServedCertificate, b: ServedCertificate): boolean {
  if (a.notAfter !== b.notAfter) return a.notAfter > b.notAfter;
  if (a.createRevision !== b.createRevision) return a.createRevision < b.createRevision;
  return a.name < b.name;
}

/** The certificates covering one name (exact or one wildcard), the best one cached. */
class Candidates {
  readonly certs = new Set<ServedCertificate>();
  best: ServedCertificate | undefined = undefined;

  add(cert: ServedCertificate): void {
    this.certs.add(cert);
    if (this.best === undefined || beats(cert, this.best)) this.best = cert;
  }

  /** Returns whether none is left. */
  remove(cert: ServedCertificate): boolean {
    this.certs.delete(cert);
    if (this.best === cert) {
      this.best = undefined;
      for (const c of this.certs) if (this.best === undefined || beats(c, this.best)) this.best = c;
    }
    return this.certs.size === 0;
  }
}

/** The name a wildcard entry is keyed by: `*.mango.com` → `mango.com`. */
function wildcardBase(host: string): string | undefined {
  return host.startsWith('*.') ? host.slice(2) : undefined;
}

/** Whether the host name `host` (lower-case, no trailing dot) is covered by the SAN `san`. */
export function sanCovers(san: string, host: string): boolean {
  if (san === host) return true;
  const base = wildcardBase(san);
  if (base === undefined) return false;
  const dot = host.indexOf('.');
  return dot > 0 && host.slice(dot + 1) === base;
}

/** Whether `cert` covers the host name `host` (lower-case, no port, no trailing dot). */
export function certCovers(cert: ServedCertificate, host: string): boolean {
  for (const san of cert.hosts) if (sanCovers(san, host)) return true;
  return false;
}

export class CertIndex {
  private readonly byName = new Map<string, ServedCertificate>();
  private readonly exact = new Map<string, Candidates>();
  /** Keyed by what follows `*.`. */
  private readonly wildcard = new Map<string, Candidates>();

  /** Puts `cert` in place of the certificate of the same name, if any. */
  set(cert: ServedCertificate): void {
    this.delete(cert.name);
    this.byName.set(cert.name, cert);
    for (const host of new Set(cert.hosts)) {
      const base = wildcardBase(host);
      const map = base === undefined ? this.exact : this.wildcard;
      const key = base ?? host;
      let c = map.get(key);
      if (c === undefined) map.set(key, (c = new Candidates()));
      c.add(cert);
    }
  }

  delete(name: string): void {
    const cert = this.byName.get(name);
    if (cert === undefined) return;
    this.byName.delete(name);
    for (const host of new Set(cert.hosts)) {
      const base = wildcardBase(host);
      const map = base === undefined ? this.exact : this.wildcard;
      const key = base ?? host;
      if (map.get(key)?.remove(cert) === true) map.delete(key);
    }
  }

  /**
   * The certificate for a handshake's server name (lower-case, no trailing dot): an exact name
   * beats a wildcard; undefined when none covers it.
   */
  forHost(servername: string): ServedCertificate | undefined {
    const exact = this.exact.get(servername);
    if (exact !== undefined) return exact.best;
    const dot = servername.indexOf('.');
    if (dot <= 0) return undefined;
    return this.wildcard.get(servername.slice(dot + 1))?.best;
  }

  get(name: string): ServedCertificate | undefined {
    return this.byName.get(name);
  }

  all(): IterableIterator<ServedCertificate> {
    return this.byName.values();
  }

  get size(): number {
    return this.byName.size;
  }
}
