/** paas-agent's command line: every flag from its variable, the token from the environment only, clear refusals. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, helpText, parseConfig, versionText } from '../src/config.js';

const TOKEN = { PAAS_AGENT_TOKEN: 't0a1b2c3d4e.c2VjcmV0' };
const BASE = ['--routers', 'https://127.0.0.1:7443', '--app', 'mango', '--id', 'web-1', '--to', 'http://127.0.0.1:3000'];

function parse(argv: string[], env: NodeJS.ProcessEnv = TOKEN) {
  const r = parseConfig(argv, env);
  if (r.help || r.version) throw new Error('unexpected help or version');
  return r.config;
}

describe('paas-agent command line', () => {
  it('reads the flags, and the same from the environment', () => {
    const c = parse([...BASE, '--routers', 'https://a.example.net:7443,https://[::1]:7444', '--sessions', '3']);
    expect(c.routers).toEqual([
      { url: 'https://a.example.net:7443', host: 'a.example.net', port: 7443 },
      { url: 'https://[::1]:7444', host: '::1', port: 7444 },
    ]);
    expect([c.app, c.id, c.to, c.sessions, c.ca, c.drainTimeoutMs]).toEqual(['mango', 'web-1', { host: '127.0.0.1', port: 3000 }, 3, undefined, 30_000]);
    const fromEnv = parse([], { ...TOKEN, PAAS_AGENT_ROUTERS: 'https://r1:7443', PAAS_AGENT_APP: 'mango', PAAS_AGENT_ID: 'w2', PAAS_AGENT_TO: 'http://localhost:8080', PAAS_AGENT_DRAIN_TIMEOUT: '5s' });
    expect([fromEnv.routers[0]!.url, fromEnv.id, fromEnv.to, fromEnv.drainTimeoutMs]).toEqual(['https://r1:7443', 'w2', { host: 'localhost', port: 8080 }, 5000]);
    expect(c.token).toBe(TOKEN.PAAS_AGENT_TOKEN);
  });

  it('reads --ca as PEM and refuses a file that is missing or holds none', () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-ca-'));
    writeFileSync(join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    writeFileSync(join(dir, 'junk.txt'), 'not a certificate');
    expect(parse([...BASE, '--ca', join(dir, 'ca.pem')]).ca).toContain('BEGIN CERTIFICATE');
    expect(() => parse([...BASE, '--ca', join(dir, 'junk.txt')])).toThrow(/--ca: ".*junk.txt" holds no PEM certificate/);
    expect(() => parse([...BASE, '--ca', join(dir, 'missing.pem')])).toThrow(/--ca: cannot read ".*missing.pem": ENOENT/);
  });

  it('refuses bad values with the flag and the reason', () => {
    const cases: [string[], NodeJS.ProcessEnv, string][] = [
      [BASE, {}, 'PAAS_AGENT_TOKEN is not set'],
      [BASE, { PAAS_AGENT_TOKEN: 'no-dot' }, 'PAAS_AGENT_TOKEN: not a token (expected <token-id>.<secret>'],
      [[...BASE, '--routers', 'http://127.0.0.1:7443'], TOKEN, '--routers: "http://127.0.0.1:7443" must be https://HOST:PORT'],
      [[...BASE, '--routers', 'https://127.0.0.1'], TOKEN, '--routers: "https://127.0.0.1" must be https://HOST:PORT'],
      [[...BASE, '--app', 'Mango'], TOKEN, '--app: "Mango" must match'],
      [[...BASE, '--id', 'web_1'], TOKEN, '--id: "web_1" must match'],
      [[...BASE, '--to', 'https://127.0.0.1:3000'], TOKEN, '--to: "https://127.0.0.1:3000" must be http://HOST:PORT'],
      [[...BASE, '--sessions', '0'], TOKEN, '--sessions: "0" must be an integer from 1 to 16'],
      [[...BASE, '--drain-timeout', 'soon'], TOKEN, '--drain-timeout: '],
      // One duration syntax for every paas command: a bare number is refused (but 0).
      [[...BASE, '--drain-timeout', '30'], TOKEN, '--drain-timeout: '],
      [['--app', 'mango'], TOKEN, '--routers (PAAS_AGENT_ROUTERS) is required'],
      [[...BASE, '--token', 'x'], TOKEN, "Unknown option '--token'"],
    ];
    for (const [argv, env, message] of cases) {
      expect(() => parse(argv, env), message).toThrow(ConfigError);
      expect(() => parse(argv, env)).toThrow(message);
    }
  });

  it('reads Go durations as the other commands do', () => {
    expect(parse([...BASE, '--drain-timeout', '1m30s']).drainTimeoutMs).toBe(90_000);
    expect(parse([...BASE, '--drain-timeout', '0']).drainTimeoutMs).toBe(0);
  });

  it('answers -h/--help with every flag and the token variable, in lines of at most 100 columns, and --version', () => {
    expect(parseConfig(['--help'], {})).toEqual({ help: true });
    expect(parseConfig(['-h'], {})).toEqual({ help: true });
    expect(parseConfig(['--version'], {})).toEqual({ help: false, version: true });
    expect(versionText()).toMatch(/^paas-agent \d+\.\d+\.\d+ \(Node v\d+/);
    expect(helpText().split('\n').filter((l) => l.length > 100)).toEqual([]);
    for (const word of ['--routers', '--app', '--id', '--to', '--ca', '--sessions', '--drain-timeout', 'PAAS_AGENT_TOKEN']) expect(helpText()).toContain(word);
  });
});
