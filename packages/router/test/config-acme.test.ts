/** --acme-*: automatic HTTPS is off without --acme-directory; a bad value stops start-up with one line. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../src/config.js';

const dir = mkdtempSync(join(tmpdir(), 'paas-acme-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const configOf = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
  const r = parseConfig(argv, env);
  if (r.help || r.version) throw new Error('unexpected help or version');
  return r.config;
};
const DIRECTORY = 'https://127.0.0.1:14000/dir';

describe('--acme-directory and friends', () => {
  it('are off by default, and read from flags or environment variables with their defaults', () => {
    expect(configOf([]).acme).toBeUndefined();
    const ca = join(dir, 'ca.pem');
    writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    expect(configOf(['--acme-directory', DIRECTORY, '--acme-email', 'ops@example.com', '--acme-ca', ca])).toEqual(expect.objectContaining({
      acme: { directory: DIRECTORY, email: 'ops@example.com', caPem: expect.stringContaining('BEGIN CERTIFICATE'), ordersPerMinute: 10, retryBaseMs: 60_000 },
    }));
    expect(configOf([], { ROUTER_ACME_DIRECTORY: DIRECTORY, ROUTER_ACME_EMAIL: 'a@b', ROUTER_ACME_ORDERS_PER_MINUTE: '3', ROUTER_ACME_RETRY: '5s' }).acme)
      .toEqual({ directory: DIRECTORY, email: 'a@b', caPem: undefined, ordersPerMinute: 3, retryBaseMs: 5000 });
  });

  it('stop start-up with one line naming the flag and what is wrong', () => {
    const email = ['--acme-email', 'ops@example.com'];
    expect(() => configOf(['--acme-email', 'ops@example.com'])).toThrow(new ConfigError('--acme-email: given without --acme-directory'));
    expect(() => configOf(['--acme-directory', DIRECTORY])).toThrow(new ConfigError('--acme-email: required with --acme-directory'));
    expect(() => configOf(['--acme-directory', 'http://127.0.0.1:14000/dir', ...email])).toThrow(new ConfigError('--acme-directory: "http://127.0.0.1:14000/dir" must be https:// (RFC 8555)'));
    expect(() => configOf(['--acme-directory', 'not a url', ...email])).toThrow(new ConfigError('--acme-directory: "not a url" is not a URL'));
    expect(() => configOf(['--acme-directory', DIRECTORY, '--acme-email', 'nobody'])).toThrow(new ConfigError('--acme-email: "nobody" is not an e-mail address'));
    expect(() => configOf(['--acme-directory', DIRECTORY, ...email, '--acme-orders-per-minute', '0'])).toThrow(new ConfigError('--acme-orders-per-minute: "0" must be an integer from 1 to 1000'));
    expect(() => configOf(['--acme-directory', DIRECTORY, ...email, '--acme-retry', '500ms'])).toThrow(new ConfigError('--acme-retry: must be at least 1s'));
    const missing = join(dir, 'missing.pem');
    expect(() => configOf(['--acme-directory', DIRECTORY, ...email, '--acme-ca', missing])).toThrow(new ConfigError(`--acme-ca: cannot read ${JSON.stringify(missing)}: ENOENT`));
    const notPem = join(dir, 'not.pem');
    writeFileSync(notPem, 'hello');
    expect(() => configOf(['--acme-directory', DIRECTORY, ...email, '--acme-ca', notPem])).toThrow(new ConfigError(`--acme-ca: ${JSON.stringify(notPem)} holds no PEM certificate`));
  });
});
