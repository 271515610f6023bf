/**
 * A real ACME server for tests: Let's Encrypt's Pebble (Debian's `pebble`, installed by
 * scripts/ensure-pebble.sh) on loopback, offline, with pebble-challtestsrv as its DNS server
 * answering 127.0.0.1 for every name, so Pebble's HTTP-01 validation of any host name reaches
 * `httpPort` on loopback: a router's plain listener.
 *
 *   const pebble = await startPebble({ httpPort: router.port });
 *   // router flags: --acme-directory pebble.directory --acme-ca pebble.caFile
 *   await pebble.orderCount();     // new orders Pebble received (its log, one line per POST)
 *   await pebble.issuingRoot();    // the root that signs what Pebble issues (management API)
 *
 * Pebble serves its API over TLS with a certificate from a private CA made here (pki.ts):
 * `caFile` is what a router's --acme-ca trusts. PEBBLE_VA_NOSLEEP=1 (no random validation
 * delay), PEBBLE_WFE_NONCEREJECT=0 and PEBBLE_AUTHZREUSE=0 make every order validate, at once.
 */
import { Agent, request } from 'undici';
import { createCa } from './pki.js';
import { freePorts } from './ports.js';
import { processes, type ManagedProcess } from './processes.js';
import { waitForPort } from './wait.js';

export interface PebbleOptions {
  /** Where Pebble sends HTTP-01 validation requests (on 127.0.0.1). */
  httpPort: number;
  /** Lifetime of the certificates it issues (Pebble's certificateValidityPeriod), in seconds. */
  validitySeconds?: number;
  /** Skip validation (PEBBLE_VA_ALWAYS_VALID): only where the test is not about validation. */
  alwaysValid?: boolean;
}

export interface Pebble {
  readonly directory: string;
  /** The CA file that signed Pebble's own TLS certificate: a router's --acme-ca. */
  readonly caFile: string;
  readonly proc: ManagedProcess;
  /** New orders Pebble has received so far (POST to its newOrder URL, from its log). */
  orderCount(): number;
  /** Validation requests Pebble made (its VA's log lines), for one host. */
  validations(host: string): string[];
  /** Makes the DNS server answer `ip` for `host` (e.g. an address where nothing listens: validation fails). */
  setAddress(host: string, ip: string): Promise<void>;
  /** PEM of the root that signs the certificates Pebble issues. */
  issuingRoot(): Promise<string>;
  stop(): Promise<void>;
}

export async function startPebble(opts: PebbleOptions): Promise<Pebble> {
  const ca = await createCa();
  const tls = await ca.issue({ dns: ['localhost'], ip: ['127.0.0.1'] });
  const certFile = await ca.writeFile('pebble.pem', tls.certPem);
  const keyFile = await ca.writeFile('pebble.key', tls.keyPem);
  const [acmePort, mgmtPort, dnsPort, dnsMgmtPort] = (await freePorts(4)) as [number, number, number, number];
  const config = await ca.writeFile('pebble-config.json', JSON.stringify({
    pebble: {
      listenAddress: `127.0.0.1:${acmePort}`,
      managementListenAddress: `127.0.0.1:${mgmtPort}`,
      certificate: certFile,
      privateKey: keyFile,
      httpPort: opts.httpPort,
      tlsPort: opts.httpPort,
      ocspResponderURL: '',
      externalAccountBindingRequired: false,
      ...(opts.validitySeconds === undefined ? {} : { certificateValidityPeriod: opts.validitySeconds }),
    },
  }));
  // Every A query answered 127.0.0.1, no AAAA (the routers listen on IPv4 loopback); no challenge servers.
  const dns = processes.spawn('pebble-challtestsrv', [
    '-dns01', `127.0.0.1:${dnsPort}`, '-management', `127.0.0.1:${dnsMgmtPort}`,
    '-http01', '', '-https01', '', '-tlsalpn01', '', '-defaultIPv4', '127.0.0.1', '-defaultIPv6', '',
  ], { name: 'pebble-challtestsrv' });
  await waitForPort(dnsMgmtPort, { timeoutMs: 10_000 });
  const proc = processes.spawn('pebble', ['-config', config, '-dnsserver', `127.0.0.1:${dnsPort}`], {
    name: 'pebble',
    env: {
      PEBBLE_VA_NOSLEEP: '1',
      PEBBLE_WFE_NONCEREJECT: '0',
      PEBBLE_AUTHZREUSE: '0',
      ...(opts.alwaysValid ? { PEBBLE_VA_ALWAYS_VALID: '1' } : {}),
    },
  });
  // Pebble generates its root and intermediate keys first: a few seconds on a loaded machine.
  await proc.waitForLine((l) => l.includes('ACME directory available'), { timeoutMs: 30_000 });
  // The management API listens from its own goroutine: it may come up after the directory's line.
  await Promise.all([waitForPort(acmePort, { timeoutMs: 10_000 }), waitForPort(mgmtPort, { timeoutMs: 10_000 })]);
  const dispatcher = new Agent({ connect: { ca: ca.certPem } });
  const lines = () => [...proc.stdout, ...proc.stderr];
  return {
    directory: `https://127.0.0.1:${acmePort}/dir`,
    caFile: ca.certFile,
    proc,
    orderCount: () => lines().filter((l) => / POST \/order-plz /.test(l)).length,
    validations: (host) => lines().filter((l) => l.includes('validation') && l.includes(host)),
    async setAddress(host, ip) {
      const res = await request(`http://127.0.0.1:${dnsMgmtPort}/add-a`, { method: 'POST', body: JSON.stringify({ host, addresses: [ip] }) });
      await res.body.dump();
      if (res.statusCode !== 200) throw new Error(`pebble-challtestsrv /add-a: ${res.statusCode}`);
    },
    async issuingRoot() {
      const res = await request(`https://127.0.0.1:${mgmtPort}/roots/0`, { dispatcher });
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`pebble /roots/0: ${res.statusCode} ${text}`);
      return text;
    },
    async stop() {
      await dispatcher.close();
      await Promise.all([proc.stop(), dns.stop()]);
    },
  };
}
