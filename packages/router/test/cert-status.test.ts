/** What /status and the status record say about certificates: list, expiring soon, uncovered app hosts. */
import { describe, expect, it } from 'vitest';
import { certificatesReport, expiringSoonCount } from '../src/status/certificates.js';
import type { ServedCertificate } from '../src/table/cert-index.js';
import { RoutingTable } from '../src/table/routing-table.js';

const DAY = 86_400_000;
const now = Date.UTC(2026, 10, 29, 12);
const cert = (name: string, hosts: string[], days: number, createRevision = 1n): ServedCertificate => ({
  name, hosts, certPem: 'C', keyPem: 'K', notAfter: now + days * DAY, fingerprint: name.padEnd(64, '0'), createRevision,
});

describe('certificates report', () => {
  it('lists certificates soonest first, flags those under 14 days, and names app hosts none covers', () => {
    const table = new RoutingTable();
    table.setApp('shop', { routes: [{ host: 'www.shop.com' }, { host: 'api.shop.com', path: '/v1' }, { host: '*.shop.com' }, { host: '*.deep.shop.com' }, { path: '/x' }] }, 1n);
    table.setApp('blog', { routes: [{ host: 'blog.com' }] }, 2n);
    table.certs.set(cert('www', ['www.shop.com'], 90));
    table.certs.set(cert('wild', ['*.shop.com'], 13.5));
    table.certs.set({ ...cert('acme', ['blog.org'], 14), source: 'acme' });
    const r = certificatesReport(table, now);
    expect(r.list.map((c) => [c.name, c.daysLeft, c.expiringSoon, c.source])).toEqual([
      ['wild', 13, true, 'etcd'],
      ['acme', 14, false, 'acme'],
      ['www', 90, false, 'etcd'],
    ]);
    expect(r.list[0]!.notAfter).toBe(new Date(now + 13.5 * DAY).toISOString());
    expect({ count: r.count, expiringSoon: r.expiringSoon }).toEqual({ count: 3, expiringSoon: 1 });
    expect(expiringSoonCount(table.certs, now)).toBe(1);
    // api.shop.com is covered by the wildcard; *.shop.com by the same; *.deep.shop.com and blog.com by nothing.
    expect(r.uncoveredHosts).toEqual(['*.deep.shop.com', 'blog.com']);
    expect(r.uncoveredHostsCount).toBe(2);
    table.certs.delete('wild');
    expect(certificatesReport(table, now).uncoveredHosts).toEqual(['*.deep.shop.com', '*.shop.com', 'api.shop.com', 'blog.com']);
  });
});
