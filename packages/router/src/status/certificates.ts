/**
 * What a router reports about the certificates it serves: the list for the admin `/status`
 * (name, hosts, notAfter, days left, fingerprint, source), the app hosts no certificate covers,
 * and how many expire soon (the only figure the bounded status record in etcd carries).
 */
import type { CertIndex, ServedCertificate } from '../table/cert-index.js';
import type { RoutingTable } from '../table/routing-table.js';

/** A certificate expiring within this many days is reported as expiring soon. */
export const EXPIRING_SOON_DAYS = 14;
const DAY_MS = 86_400_000;
/** /status lists at most this many uncovered hosts (with their count): a fleet without TLS has one per app. */
export const UNCOVERED_LISTED_MAX = 1000;

export interface CertificateStatus {
  name: string;
  hosts: readonly string[];
  notAfter: string;
  /** Whole days until notAfter, rounded down. */
  daysLeft: number;
  fingerprint: string;
  source: string;
  expiringSoon: boolean;
}

export interface CertificatesReport {
  count: number;
  expiringSoon: number;
  /** Sorted by notAfter, soonest first, then name. */
  list: CertificateStatus[];
  /** App route hosts (exact, or `*.` wildcards) no served certificate covers, sorted; at most UNCOVERED_LISTED_MAX. */
  uncoveredHosts: string[];
  uncoveredHostsCount: number;
}

export function isExpiringSoon(cert: ServedCertificate, now: number): boolean {
  return cert.notAfter - now < EXPIRING_SOON_DAYS * DAY_MS;
}

export function expiringSoonCount(certs: CertIndex, now: number): number {
  let n = 0;
  for (const cert of certs.all()) if (isExpiringSoon(cert, now)) n++;
  return n;
}

function certificateStatus(cert: ServedCertificate, now: number): CertificateStatus {
  return {
    name: cert.name,
    hosts: cert.hosts,
    notAfter: new Date(cert.notAfter).toISOString(),
    daysLeft: Math.floor((cert.notAfter - now) / DAY_MS),
    fingerprint: cert.fingerprint,
    source: cert.source ?? 'etcd',
    expiringSoon: isExpiringSoon(cert, now),
  };
}

/**
 * Whether some certificate covers a route host: an exact host as a TLS client would ask for it;
 * a wildcard route `*.mango.com` when a `*.mango.com` certificate exists (CertIndex.forHost
 * finds the wildcard entry for the name `*.mango.com` itself).
 */
function covered(certs: CertIndex, host: string): boolean {
  return certs.forHost(host) !== undefined;
}

export function certificatesReport(table: RoutingTable, now: number): CertificatesReport {
  const list: CertificateStatus[] = [];
  for (const cert of table.certs.all()) list.push(certificateStatus(cert, now));
  list.sort((a, b) => (a.notAfter < b.notAfter ? -1 : a.notAfter > b.notAfter ? 1 : a.name < b.name ? -1 : 1));
  const uncovered = new Set<string>();
  for (const pool of table.pools()) {
    for (const route of pool.record?.routes ?? []) {
      if (route.host !== undefined && !covered(table.certs, route.host)) uncovered.add(route.host);
    }
  }
  const hosts = [...uncovered].sort();
  return {
    count: list.length,
    expiringSoon: list.filter((c) => c.expiringSoon).length,
    list,
    uncoveredHosts: hosts.slice(0, UNCOVERED_LISTED_MAX),
    uncoveredHostsCount: hosts.length,
  };
}
