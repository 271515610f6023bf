import { describe, expect, it } from 'vitest';
import { ConfigError, helpText, parseConfig, parseDuration } from '../src/config.js';

const parse = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
  const r = parseConfig(argv, env);
  if (r.help || r.version) throw new Error('unexpected help or version');
  return r.config;
};

describe('router command line', () => {
  it('has the contract defaults', () => {
    const c = parse(['--id', 'r1']);
    expect(c.etcdEndpoints).toEqual(['http://127.0.0.1:2379']);
    expect(c.prefix).toBe('/paas');
    expect(c.listen).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(c.admin).toEqual({ host: '127.0.0.1', port: 9090 });
  });

  it('reads every flag from its environment variable, and flags win', () => {
    const env = { ETCD_ENDPOINTS: 'http://a:1,http://b:2', PAAS_PREFIX: '/x/', ROUTER_LISTEN: '127.0.0.1:81', ROUTER_ID: 'from-env', ROUTER_ACCESS_LOG: 'true' };
    const c = parse([], env);
    expect(c.etcdEndpoints).toEqual(['http://a:1', 'http://b:2']);
    expect(c.prefix).toBe('/x');
    expect(c.listen).toEqual({ host: '127.0.0.1', port: 81 });
    expect(c.id).toBe('from-env');
    expect(c.accessLog).toBe(true);
    expect(parse(['--id', 'from-flag'], env).id).toBe('from-flag');
  });

  it.each([
    [['--listen', 'nope'], '--listen: "nope" is not host:port'],
    [['--etcd', 'localhost:2379'], '--etcd: "localhost:2379" must be http:// or https://'],
    [['--prefix', 'paas'], '--prefix: prefix must start with "/": "paas"'],
    [['--id', 'Router_1'], '--id: "Router_1" must match'],
    [['--connect-timeout', 'soon'], '--connect-timeout: "soon" is not a duration'],
    [['--lease-ttl', '1s'], '--lease-ttl: lease TTL must be between 2s and 10m'],
    [['--log-level', 'loud'], '--log-level: "loud" is not one of'],
    [['--upstream-client', 'fast'], '--upstream-client: "fast" is not one of auto, native, portable'],
    [['--bogus'], "Unknown option '--bogus'"],
  ])('rejects %j with one clear line', (argv, message) => {
    expect(() => parse(argv)).toThrow(ConfigError);
    expect(() => parse(argv)).toThrow(message);
  });

  it('names the environment variable when the bad value came from there', () => {
    expect(() => parse([], { ROUTER_RETRY_AFTER: '-1' })).toThrow('ROUTER_RETRY_AFTER: "-1" must be an integer from 0 to 86400');
  });

  it('reads --workers / ROUTER_WORKERS (default 1) and keeps worker ids valid names', () => {
    expect(parse(['--id', 'r1']).workers).toBe(1);
    expect(parse(['--id', 'r1', '--workers', '2']).workers).toBe(2);
    expect(parse(['--id', 'r1'], { ROUTER_WORKERS: '4' }).workers).toBe(4);
    expect(() => parse(['--id', 'r1', '--workers', '0'])).toThrow('--workers: "0" must be an integer from 1 to 64');
    expect(() => parse(['--id', 'r'.repeat(60), '--workers', '2'])).toThrow('must be at most 59 characters with --workers');
    expect(parse(['--id', 'r'.repeat(60)]).workers).toBe(1);
  });

  it('reads --upstream-client / ROUTER_UPSTREAM_CLIENT (default auto)', () => {
    expect(parse(['--id', 'r1']).upstreamClient).toBe('auto');
    expect(parse(['--id', 'r1', '--upstream-client', 'native']).upstreamClient).toBe('native');
    expect(parse(['--id', 'r1'], { ROUTER_UPSTREAM_CLIENT: 'portable' }).upstreamClient).toBe('portable');
    expect(() => parse(['--id', 'r1'], { ROUTER_UPSTREAM_CLIENT: 'undici' })).toThrow('ROUTER_UPSTREAM_CLIENT: "undici" is not one of auto, native, portable');
  });

  it('reads the TLS flags: off by default, each from its variable, bad values refused', () => {
    const off = parse(['--id', 'r1']);
    expect(off.listenTls).toBeUndefined();
    expect(off.defaultCert).toBeUndefined();
    expect(off.publicHttpsPort).toBe(443);
    expect(off.tlsContextCache).toBe(1000);
    const on = parse(['--id', 'r1', '--listen-tls', '127.0.0.1:8443', '--default-cert', 'mango-wildcard'], { ROUTER_PUBLIC_HTTPS_PORT: '8443', ROUTER_TLS_CONTEXT_CACHE: '50' });
    expect(on.listenTls).toEqual({ host: '127.0.0.1', port: 8443 });
    expect(on.defaultCert).toBe('mango-wildcard');
    expect(on.publicHttpsPort).toBe(8443);
    expect(on.tlsContextCache).toBe(50);
    expect(parse(['--id', 'r1'], { ROUTER_LISTEN_TLS: ':9443' }).listenTls).toEqual({ host: '0.0.0.0', port: 9443 });
    expect(() => parse(['--id', 'r1', '--listen-tls', '8443'])).toThrow('--listen-tls: "8443" is not host:port');
    expect(() => parse(['--id', 'r1', '--default-cert', 'Mango_Cert'])).toThrow('--default-cert: "Mango_Cert" is not a certificate name');
    expect(() => parse(['--id', 'r1'], { ROUTER_PUBLIC_HTTPS_PORT: '0' })).toThrow('ROUTER_PUBLIC_HTTPS_PORT: "0" must be an integer from 1 to 65535');
    expect(() => parse(['--id', 'r1', '--tls-context-cache', 'lots'])).toThrow('--tls-context-cache: "lots" must be an integer');
  });

  it('reads the tunnel flags: off by default, --tunnel-cert required, the advertised address defaulting to the listener', () => {
    const off = parse(['--id', 'r1']);
    expect([off.listenTunnel, off.tunnelCert, off.tunnelAdvertise]).toEqual([undefined, undefined, undefined]);
    const on = parse(['--id', 'r1', '--listen-tunnel', '127.0.0.1:7443'], { ROUTER_TUNNEL_CERT: 'tunnel.example.net' });
    expect(on.listenTunnel).toEqual({ host: '127.0.0.1', port: 7443 });
    expect(on.tunnelCert).toBe('tunnel.example.net');
    expect(on.tunnelAdvertise).toBe('https://127.0.0.1:7443');
    expect(parse(['--id', 'r1', '--listen-tunnel', '0.0.0.0:7443', '--tunnel-cert', 't', '--tunnel-advertise', 'https://edge-1.example.net:7443']).tunnelAdvertise).toBe('https://edge-1.example.net:7443');
    expect(() => parse(['--id', 'r1', '--listen-tunnel', '127.0.0.1:7443'])).toThrow('--listen-tunnel needs --tunnel-cert');
    expect(() => parse(['--id', 'r1', '--listen-tunnel', '127.0.0.1:7443', '--tunnel-cert', 'T!'])).toThrow('--tunnel-cert: "T!" is not a certificate name');
    expect(() => parse(['--id', 'r1', '--listen-tunnel', ':7443', '--tunnel-cert', 't', '--tunnel-advertise', 'http://x:1'])).toThrow('--tunnel-advertise: "http://x:1" must be https://HOST:PORT');
    expect(() => parse(['--id', 'r1', '--listen-tunnel', ':7443', '--tunnel-cert', 't', '--workers', '2'])).toThrow('--listen-tunnel cannot be combined with --workers > 1');
  });

  it('gives a tunnel connection its own connect timeout: 10s by default, longer than a direct one', () => {
    expect([off().connectTimeoutMs, off().tunnelConnectTimeoutMs]).toEqual([2000, 10_000]);
    expect(parse(['--id', 'r1', '--tunnel-connect-timeout', '30s']).tunnelConnectTimeoutMs).toBe(30_000);
    expect(parse(['--id', 'r1'], { ROUTER_TUNNEL_CONNECT_TIMEOUT: '1m' }).tunnelConnectTimeoutMs).toBe(60_000);
    expect(() => parse(['--id', 'r1', '--tunnel-connect-timeout', '0'])).toThrow('--tunnel-connect-timeout: must be more than 0');
    expect(() => parse(['--id', 'r1', '--tunnel-connect-timeout', '10'])).toThrow('--tunnel-connect-timeout');
    function off() {
      return parse(['--id', 'r1']);
    }
  });

  it('parses durations', () => {
    expect(parseDuration('250ms', 'x')).toBe(250);
    expect(parseDuration('5s', 'x')).toBe(5000);
    expect(parseDuration('2m', 'x')).toBe(120000);
    expect(parseDuration('1m30s', 'x')).toBe(90_000);
    expect(parseDuration('0', 'x')).toBe(0);
    expect(() => parseDuration('100', 'x')).toThrow('x: "100" has no unit (e.g. 500ms, 30s, 1m30s, 2h)');
  });

  it('answers -h and --version, and help fits 100 columns', () => {
    expect(parseConfig(['-h'], {})).toEqual({ help: true });
    expect(parseConfig(['--version'], {})).toEqual({ help: false, version: true });
    expect(helpText().split('\n').filter((l) => l.length > 100)).toEqual([]);
  });

  it('reads --metrics-per-app and --access-log-file (which turns the access log on)', () => {
    expect([parse([]).metricsPerApp, parse([]).accessLog, parse([]).accessLogFile]).toEqual([false, false, undefined]);
    const c = parse(['--metrics-per-app', '--access-log-file', '/var/log/paas/access.log']);
    expect([c.metricsPerApp, c.accessLog, c.accessLogFile]).toEqual([true, true, '/var/log/paas/access.log']);
  });

  it('answers --help with every flag and variable', () => {
    expect(parseConfig(['--help'], {})).toEqual({ help: true });
    const text = helpText();
    for (const v of ['ETCD_ENDPOINTS', 'PAAS_PREFIX', 'ROUTER_LISTEN', 'ROUTER_ADMIN', 'ROUTER_ID', '--etcd', '--listen', '--admin', '--id', '--prefix']) {
      expect(text).toContain(v);
    }
  });

  it('etcd access: the user from a flag or ETCD_USER, the password from ETCD_PASSWORD only; bad settings name the flag', () => {
    expect(parse(['--id', 'r1']).etcdSecurity).toEqual({});
    expect(parse(['--id', 'r1', '--etcd-user', 'paas-router'], { ETCD_PASSWORD: 'pw' }).etcdSecurity).toEqual({ auth: { username: 'paas-router', password: 'pw' } });
    expect(parse(['--id', 'r1', '--etcd', 'https://etcd:2379']).etcdSecurity).toEqual({ tls: {} });
    const refused = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
      try {
        parse(argv, env);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as Error).message;
      }
      throw new Error('accepted');
    };
    expect(refused(['--etcd-user', 'paas-router'])).toBe("--etcd-user: the user's password must be in the environment variable ETCD_PASSWORD");
    expect(refused(['--etcd', 'https://etcd:2379'], { ETCD_CERT: '/c.pem' })).toBe('ETCD_CERT: a client certificate needs its key too (--etcd-key / ETCD_KEY)');
    expect(refused(['--etcd', 'https://etcd:2379', '--etcd-ca', '/no/ca.pem'])).toBe('--etcd-ca: cannot read "/no/ca.pem": ENOENT');
    expect(refused(['--etcd-password', 'pw'])).toMatch(/Unknown option '--etcd-password'/);
    expect(helpText()).toMatch(/ETCD_PASSWORD\n +password of --etcd-user \(environment only/);
  });
});
