/**
 * loadEtcdSecurity with real PEM files from a private CA (openssl), and how refusals and stale
 * tokens are told apart from other etcd errors.
 */
import { EtcdAuthenticationFailedError, EtcdInvalidAuthTokenError, EtcdPermissionDeniedError, GRPCUnavailableError } from 'etcd3';
import { beforeAll, describe, expect, it } from 'vitest';
import { createCa, type TestCa } from '../../../test/harness/pki.js';
import { describeAccessRefused, EtcdSecurityError, isStaleTokenMessage, loadEtcdSecurity, type Given } from '../src/etcd/security.js';

const HTTPS = ['https://etcd-1:2379', 'https://etcd-2:2379'];
let ca: TestCa;
let cert: string;
let key: string;
let otherKey: string;
let junk: string;

const flag = (name: string, value: string): Given => ({ value, what: `--${name}` });

beforeAll(async () => {
  ca = await createCa();
  const client = await ca.issue({ dns: [], cn: 'paas-router', usage: ['clientAuth'] });
  const other = await ca.issue({ dns: [], cn: 'someone-else', usage: ['clientAuth'] });
  cert = await ca.writeFile('client.pem', client.certPem);
  key = await ca.writeFile('client.key', client.keyPem);
  otherKey = await ca.writeFile('other.key', other.keyPem);
  junk = await ca.writeFile('junk.pem', 'not PEM at all\n');
});

function refusal(input: Parameters<typeof loadEtcdSecurity>[0]): string {
  try {
    loadEtcdSecurity(input);
  } catch (err) {
    expect(err).toBeInstanceOf(EtcdSecurityError);
    return (err as Error).message;
  }
  throw new Error('loadEtcdSecurity accepted it');
}

describe('loadEtcdSecurity', () => {
  it('reads the CA, the certificate and its key; the user and the password', () => {
    const s = loadEtcdSecurity({
      endpoints: HTTPS,
      ca: flag('etcd-ca', ca.certFile),
      cert: flag('etcd-cert', cert),
      key: flag('etcd-key', key),
      user: flag('etcd-user', 'paas-router'),
      password: 'secret',
    });
    expect(s.tls?.ca?.toString()).toBe(ca.certPem);
    expect(s.tls?.cert?.toString()).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(s.tls?.key?.toString()).toMatch(/PRIVATE KEY/);
    expect(s.auth).toEqual({ username: 'paas-router', password: 'secret' });
  });

  it('nothing given: plain http, no auth; https alone: TLS with the default CAs', () => {
    expect(loadEtcdSecurity({ endpoints: ['http://127.0.0.1:2379'] })).toEqual({});
    expect(loadEtcdSecurity({ endpoints: HTTPS })).toEqual({ tls: {} });
    expect(loadEtcdSecurity({ endpoints: ['http://127.0.0.1:2379'], user: flag('etcd-user', 'u'), password: 'p' })).toEqual({ auth: { username: 'u', password: 'p' } });
  });

  it('refuses settings that cannot work, naming the flag and the reason', () => {
    expect(refusal({ endpoints: HTTPS, cert: flag('etcd-cert', cert) })).toBe('--etcd-cert: a client certificate needs its key too (--etcd-key / ETCD_KEY)');
    expect(refusal({ endpoints: HTTPS, key: { value: key, what: 'ETCD_KEY' } })).toBe('ETCD_KEY: a client key needs its certificate too (--etcd-cert / ETCD_CERT)');
    expect(refusal({ endpoints: HTTPS, ca: flag('etcd-ca', '/no/such/ca.pem') })).toBe('--etcd-ca: cannot read "/no/such/ca.pem": ENOENT');
    expect(refusal({ endpoints: HTTPS, ca: flag('etcd-ca', junk) })).toBe(`--etcd-ca: "${junk}" holds no PEM certificate`);
    expect(refusal({ endpoints: HTTPS, cert: flag('etcd-cert', cert), key: flag('etcd-key', junk) })).toMatch(/^--etcd-key: ".*junk\.pem" is not a PEM private key: /);
    expect(refusal({ endpoints: HTTPS, cert: flag('etcd-cert', cert), key: flag('etcd-key', otherKey) })).toBe(`--etcd-key: "${otherKey}" is not the key of the certificate in "${cert}"`);
    expect(refusal({ endpoints: ['http://127.0.0.1:2379'], ca: flag('etcd-ca', ca.certFile) })).toBe('--etcd-ca: TLS settings need https:// etcd endpoints (got http://127.0.0.1:2379)');
    expect(refusal({ endpoints: ['https://a:1', 'http://b:2'] })).toMatch(/^etcd endpoints mix http:\/\/ and https:\/\//);
    expect(refusal({ endpoints: HTTPS, user: flag('etcd-user', 'u') })).toBe('--etcd-user: the user\'s password must be in the environment variable ETCD_PASSWORD');
    expect(refusal({ endpoints: HTTPS, password: 'p' })).toBe('ETCD_PASSWORD is set but no etcd user is given (--etcd-user / ETCD_USER)');
  });
});

describe('refusals and stale tokens', () => {
  it('a wrong password and a TLS alert are refusals; other errors are not', () => {
    expect(describeAccessRefused(new EtcdAuthenticationFailedError('etcdserver: authentication failed, invalid user ID or password'))).toMatch(/^etcd authentication failed: wrong user or password/);
    const alert = new GRPCUnavailableError(
      '14 UNAVAILABLE: No connection established. Last error: 40:error:0A000412:SSL routines:ssl3_read_bytes:ssl/tls alert bad certificate:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:918:SSL alert number 42\n (2026-11-29T19:42:16.559Z). Resolution note: ',
    );
    expect(describeAccessRefused(alert)).toBe('etcd TLS handshake failed: tls alert bad certificate (check --etcd-ca, --etcd-cert, --etcd-key)');
    const untrusted = new GRPCUnavailableError('14 UNAVAILABLE: No connection established. Last error: self-signed certificate in certificate chain. Resolution note: ');
    expect(describeAccessRefused(untrusted)).toBe('etcd TLS handshake failed: self-signed certificate in certificate chain (check --etcd-ca, --etcd-cert, --etcd-key)');
    expect(describeAccessRefused(new GRPCUnavailableError('14 UNAVAILABLE: Connection dropped'))).toBeUndefined();
    expect(describeAccessRefused(new EtcdPermissionDeniedError('etcdserver: permission denied'))).toBeUndefined();
    expect(describeAccessRefused('not an error')).toBeUndefined();
  });

  it('knows etcd\'s answers to a token it no longer accepts', () => {
    expect(isStaleTokenMessage(new EtcdInvalidAuthTokenError('16 UNAUTHENTICATED: etcdserver: invalid auth token').message)).toBe(true);
    expect(isStaleTokenMessage('rpc error: code = Unauthenticated desc = etcdserver: invalid auth token')).toBe(true);
    expect(isStaleTokenMessage('3 INVALID_ARGUMENT: etcdserver: revision of auth store is old')).toBe(true);
    expect(isStaleTokenMessage('rpc error: code = InvalidArgument desc = etcdserver: revision of auth store is old')).toBe(true);
    expect(isStaleTokenMessage('etcdserver: permission denied')).toBe(false);
  });
});
