import { describe, expect, test } from 'vitest';
import { parseCommandLine, type Command } from '../src/cli/parse.js';
import { COMMANDS, commandHelp, GLOBAL_FLAGS, mainHelp } from '../src/cli/spec.js';
import { UsageError } from '../src/errors.js';

function cmd(argv: string[], env: NodeJS.ProcessEnv = {}): { command: Command; endpoints: string[]; prefix: string } {
  const p = parseCommandLine(argv, env);
  if (p.kind !== 'run') throw new Error('expected a command');
  return { command: p.command, endpoints: p.global.endpoints, prefix: p.global.prefix };
}

function usage(argv: string[], env: NodeJS.ProcessEnv = {}): string {
  try {
    parseCommandLine(argv, env);
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    const msg = (err as Error).message;
    expect(msg).not.toContain('\n');
    return msg;
  }
  throw new Error(`expected a usage error for ${argv.join(' ')}`);
}

describe('parseCommandLine', () => {
  test('redeploy with repeated --url, durations and globals before or after the command', () => {
    const a = cmd(['--etcd', 'http://e1:2379,http://e2:2379', 'redeploy', 'mango', '--url', 'http://10.0.0.1:8080', '--url=http://10.0.0.2:8080/', '--release', 'v2', '--drain-timeout', '45s', '--router-timeout', '500ms', '--lock-ttl', '3s', '--prefix', '/p']);
    expect(a.endpoints).toEqual(['http://e1:2379', 'http://e2:2379']);
    expect(a.prefix).toBe('/p');
    expect(a.command).toEqual({
      name: 'redeploy',
      args: {
        app: 'mango',
        urls: ['http://10.0.0.1:8080', 'http://10.0.0.2:8080/'],
        release: 'v2',
        healthTimeoutMs: undefined,
        routerTimeoutMs: 500,
        drainTimeoutMs: 45_000,
        lockTtlSeconds: 3,
        allowNoRouters: false,
      },
    });
  });

  test('every flag falls back to its environment variable; flags win', () => {
    const env = {
      ETCD_ENDPOINTS: 'http://a:1,http://b:2',
      PAAS_PREFIX: '/envp/',
      PAAS_DEPLOY_URLS: 'http://10.0.0.1:1,http://10.0.0.2:2',
      PAAS_DEPLOY_RELEASE: 'v9',
      PAAS_DEPLOY_HEALTH_TIMEOUT: '5s',
      PAAS_DEPLOY_ROUTER_TIMEOUT: '2s',
      PAAS_DEPLOY_DRAIN_TIMEOUT: '1m',
      PAAS_DEPLOY_LOCK_TTL: '4s',
      PAAS_DEPLOY_ALLOW_NO_ROUTERS: 'yes',
    };
    const a = cmd(['redeploy', 'mango'], env);
    expect(a.endpoints).toEqual(['http://a:1', 'http://b:2']);
    expect(a.prefix).toBe('/envp');
    expect(a.command.args).toMatchObject({ urls: ['http://10.0.0.1:1', 'http://10.0.0.2:2'], release: 'v9', healthTimeoutMs: 5000, routerTimeoutMs: 2000, drainTimeoutMs: 60_000, lockTtlSeconds: 4, allowNoRouters: true });
    const b = cmd(['redeploy', 'mango', '--url', 'http://10.0.0.3:3', '--release', 'v10', '--etcd', 'http://c:3'], env);
    expect(b.endpoints).toEqual(['http://c:3']);
    expect(b.command.args).toMatchObject({ urls: ['http://10.0.0.3:3'], release: 'v10' });
  });

  test('defaults', () => {
    const a = cmd(['status']);
    expect(a).toEqual({ command: { name: 'status', args: { app: undefined, json: false } }, endpoints: ['http://127.0.0.1:2379'], prefix: '/paas' });
  });

  test('register, retire, status', () => {
    expect(cmd(['register', 'mango', '--url', 'http://h:1', '--id', 'web-1', '--weight', '5', '--state', 'starting']).command).toMatchObject({
      name: 'register',
      args: { app: 'mango', url: 'http://h:1', id: 'web-1', weight: 5, state: 'starting' },
    });
    expect(cmd(['retire', 'mango', 'web-1', '--force']).command).toMatchObject({ name: 'retire', args: { app: 'mango', id: 'web-1', force: true } });
    expect(cmd(['status', 'mango', '--json']).command).toEqual({ name: 'status', args: { app: 'mango', json: true } });
  });

  test('app set: hosts (lower-cased) and paths', () => {
    expect(cmd(['app', 'set', 'mango', '--host', 'WWW.Mango.com', '--host', '*.mango.com', '--path', '/api', '--balance', 'random', '--health-check-path', '/ready', '--health-check-interval', '5s']).command).toEqual({
      name: 'app set',
      args: {
        app: 'mango',
        hosts: ['www.mango.com', '*.mango.com'],
        paths: ['/api'],
        balance: 'random',
        healthPath: '/ready',
        healthIntervalMs: 5000,
        healthTimeoutMs: undefined,
        routerTimeoutMs: undefined,
      },
    });
    // Global flags between "app" and "set".
    expect(cmd(['app', '--prefix', '/x', 'set', 'mango', '--host', 'a.com']).prefix).toBe('/x');
  });

  test.each([
    [['redeploy', 'mango', '--url', 'http://h:1', '--foo'], /unknown flag --foo/],
    [['redeploy', 'Mango', '--url', 'http://h:1'], /bad app name "Mango"/],
    [['redeploy', 'mango', '--url', 'http://h'], /bad URL "http:\/\/h": must give an explicit port/],
    [['redeploy', 'mango', '--url', 'ftp://h:1'], /bad URL .*scheme/],
    [['redeploy', 'mango', '--url', 'http://h:1/path'], /bad URL .*path/],
    [['redeploy', 'mango', '--url', 'http://h:1', '--url', 'http://H:1/'], /given twice/],
    [['redeploy', 'mango'], /at least one --url/],
    [['redeploy', 'mango', '--url'], /--url needs a value/],
    [['redeploy', 'mango', '--url', 'http://h:1', '--drain-timeout', 'soon'], /--drain-timeout "soon" is not a duration/],
    [['redeploy', 'mango', '--url', 'http://h:1', '--lock-ttl', '200ms'], /at least 1s/],
    [['redeploy', 'mango', 'extra', '--url', 'http://h:1'], /unexpected argument "extra"/],
    [['redeploy'], /missing <app>/],
    [['retire', 'mango'], /missing <id>/],
    [['retire', 'mango', 'Web_1'], /bad instance id/],
    [['register', 'mango', '--url', 'http://h:1', '--weight', '0'], /--weight must be 1..100/],
    [['register', 'mango', '--url', 'http://h:1', '--state', 'draining'], /--state must be ready or starting/],
    [['app', 'set', 'mango', '--host', 'bad_host.com'], /--host: host "bad_host.com" is not a lower-case DNS name/],
    [['app', 'set', 'mango', '--path', 'api'], /must start with "\/"/],
    [['app', 'set', 'mango', '--path', '/api/'], /must not end with "\/"/],
    [['app', 'set', 'mango', '--balance', 'fastest'], /--balance must be one of/],
    [['app', 'get', 'mango'], /unknown command "app get"/],
    [['deploy', 'mango'], /unknown command "deploy"/],
    [[], /missing command/],
    [['status', '--prefix', 'paas'], /--prefix: prefix must start with "\/"/],
    [['table', '--at', 'abc'], /table: --at "abc" is neither a revision \(a whole number from 1\) nor a time$/],
    [['table', '--at', '0'], /neither a revision/],
    [['table', '--at', '-3'], /^table: flag --at needs a value \(one starting with "-" is written --at=VALUE\)/],
    [['table', '--at=-3'], /--at "-3" is neither a revision/],
    [['table', '--at', '2026-11-29T14:02'], /nor a time \(a time is RFC 3339 with seconds and an offset/],
    [['table', '--at', '2026-11-29T14:02:00'], /nor a time \(a time is RFC 3339/],
    [['table', '--at', '2026-13-45T14:02:00Z'], /nor a time/],
    [['table', '--host', '*.mango.com'], /table: --host: /],
    [['table', 'mango'], /unexpected argument "mango"/],
    [['diff'], /diff: missing <from>/],
    [['diff', '12', 'now'], /diff: "now" is neither a revision/],
    [['diff', '1', '2', '3'], /unexpected argument "3"/],
  ])('usage error: %j', (argv, re) => {
    expect(usage(argv)).toMatch(re);
  });

  test('bad boolean and duration in the environment name the variable', () => {
    expect(usage(['redeploy', 'mango', '--url', 'http://h:1'], { PAAS_DEPLOY_ALLOW_NO_ROUTERS: 'maybe' })).toContain('PAAS_DEPLOY_ALLOW_NO_ROUTERS="maybe"');
    expect(usage(['redeploy', 'mango', '--url', 'http://h:1'], { PAAS_DEPLOY_ROUTER_TIMEOUT: 'x' })).toContain('PAAS_DEPLOY_ROUTER_TIMEOUT "x"');
  });

  test('--version anywhere; every help line fits 100 columns', () => {
    expect(parseCommandLine(['--version'], {})).toEqual({ kind: 'version' });
    expect(parseCommandLine(['status', '--version'], {})).toEqual({ kind: 'version' });
    for (const text of [mainHelp(), ...COMMANDS.map((c) => commandHelp(c))]) expect(text.split('\n').filter((l) => l.length > 100)).toEqual([]);
  });

  test('--help anywhere gives the command help; no command gives the main help', () => {
    expect(parseCommandLine(['--help'], {})).toEqual({ kind: 'help', text: mainHelp() });
    expect(parseCommandLine(['redeploy', '--help'], {})).toEqual({ kind: 'help', text: commandHelp(COMMANDS.find((c) => c.name === 'redeploy')!) });
    expect(parseCommandLine(['app', 'set', 'mango', '-h', '--foo'], {})).toMatchObject({ kind: 'help', text: expect.stringContaining('paas-deploy app set <app>') });
    expect(parseCommandLine(['help', 'retire'], {})).toMatchObject({ kind: 'help', text: expect.stringContaining('paas-deploy retire <app> <id>') });
    expect(parseCommandLine(['help', 'app', 'set'], {})).toMatchObject({ kind: 'help', text: expect.stringContaining('paas-deploy app set <app>') });
  });

  test('every flag of every command is documented with its environment variable', () => {
    for (const c of COMMANDS) {
      const help = commandHelp(c);
      for (const f of [...c.flags, ...GLOBAL_FLAGS]) {
        expect(help).toContain(`--${f.name}`);
        expect(help).toContain(`env ${f.env}`);
      }
    }
    const envs = COMMANDS.flatMap((c) => c.flags.map((f) => `${f.name}=${f.env}`));
    // One flag name, one variable, across commands (except --url: one URL for register, a list for redeploy).
    const byName = new Map<string, Set<string>>();
    for (const e of envs) {
      const [n, v] = e.split('=') as [string, string];
      byName.set(n, (byName.get(n) ?? new Set()).add(v));
    }
    // Also except --host: an app's hosts (a list) for app set, one request host for table and diff.
    for (const [n, vs] of byName) if (n !== 'url' && n !== 'host') expect(vs.size, n).toBe(1);
  });

  test('table and diff: revisions as bigints, a request host lower-cased, the key ring and --json', () => {
    expect(cmd(['table']).command).toEqual({ name: 'table', args: { at: undefined, host: undefined, keyRingFile: undefined, json: false } });
    expect(cmd(['table', '--at', '9007199254740993', '--host', 'WWW.Mango.com', '--key-ring', '/r.json', '--json']).command).toEqual({
      name: 'table',
      args: { at: { revision: 9007199254740993n }, host: 'www.mango.com', keyRingFile: '/r.json', json: true },
    });
    expect(cmd(['table'], { PAAS_DEPLOY_AT: '42', PAAS_DEPLOY_HOST: 'a.b' }).command).toMatchObject({ args: { at: { revision: 42n }, host: 'a.b' } });
    expect(cmd(['table', '--at', '2026-11-29T14:02:00.5+01:00']).command).toMatchObject({ args: { at: { time: Date.UTC(2026, 10, 29, 13, 2, 0, 500) } } });
    expect(cmd(['diff', '12']).command).toEqual({ name: 'diff', args: { from: { revision: 12n }, to: undefined, host: undefined, keyRingFile: undefined, json: false } });
    expect(cmd(['diff', '2026-11-29T14:00:00Z', '40', '--json']).command).toMatchObject({ args: { from: { time: Date.UTC(2026, 10, 29, 14) }, to: { revision: 40n }, json: true } });
  });

  test('etcd access: TLS files and the user as flags or environment, the password from ETCD_PASSWORD only', () => {
    const global = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
      const p = parseCommandLine(argv, env);
      if (p.kind !== 'run') throw new Error('expected a command');
      return p.global.etcdSecurity;
    };
    expect(global(['status'])).toEqual({});
    expect(global(['status'], { ETCD_USER: 'paas-deployer', ETCD_PASSWORD: 'pw' })).toEqual({ auth: { username: 'paas-deployer', password: 'pw' } });
    expect(global(['--etcd', 'https://etcd:2379', 'status'])).toEqual({ tls: {} });
    expect(usage(['status', '--etcd', 'https://etcd:2379', '--etcd-key', '/k.pem'])).toBe('--etcd-key: a client key needs its certificate too (--etcd-cert / ETCD_CERT)');
    expect(usage(['status'], { ETCD_ENDPOINTS: 'https://etcd:2379', ETCD_CA: '/no/ca.pem' })).toBe('ETCD_CA: cannot read "/no/ca.pem": ENOENT');
    expect(usage(['status', '--etcd-user', 'paas-deployer'])).toBe("--etcd-user: the user's password must be in the environment variable ETCD_PASSWORD");
    expect(usage(['status', '--etcd-password', 'pw'])).toMatch(/unknown flag --etcd-password/);
    expect(mainHelp()).toContain('env ETCD_PASSWORD');
  });
});

