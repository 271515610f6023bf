/**
 * Command line parsing (pure): argv and the environment in, a typed command out, or a UsageError
 * whose message is the one line to print. Flags win over environment variables, which win over
 * defaults.
 */
import { isIP } from 'node:net';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BALANCE_STRATEGIES, CERT_NAME_PATTERN, EtcdSecurityError, hostError, instanceUrlError, isCertName, isName, loadEtcdSecurity, NAME_SHAPE, normalizePrefix, parseDuration, PASSWORD_ENV, type BalanceStrategy, type EtcdSecurity, type Given } from '@paas/registry';
import type { AppSettings } from '../apps.js';
import type { RevisionRef } from '../revision-at-time.js';
import { UsageError } from '../errors.js';
import type { ListenAddress } from '../ui/server.js';
import { COMMANDS, commandHelp, findCommand, GLOBAL_FLAGS, mainHelp, type CommandSpec, type FlagSpec } from './spec.js';

export interface GlobalOptions {
  endpoints: string[];
  prefix: string;
  /** TLS files read and checked, and the etcd user (see @paas/registry loadEtcdSecurity). */
  etcdSecurity: EtcdSecurity;
}

export interface RedeployArgs {
  app: string;
  urls: string[];
  release?: string | undefined;
  healthTimeoutMs?: number | undefined;
  routerTimeoutMs?: number | undefined;
  drainTimeoutMs?: number | undefined;
  lockTtlSeconds?: number | undefined;
  allowNoRouters: boolean;
}

export interface RegisterArgs {
  app: string;
  url: string;
  id?: string | undefined;
  release?: string | undefined;
  weight?: number | undefined;
  state: 'ready' | 'starting';
  healthTimeoutMs?: number | undefined;
  routerTimeoutMs?: number | undefined;
  lockTtlSeconds?: number | undefined;
  allowNoRouters: boolean;
}

export interface RetireArgs {
  app: string;
  id: string;
  routerTimeoutMs?: number | undefined;
  drainTimeoutMs?: number | undefined;
  lockTtlSeconds?: number | undefined;
  allowNoRouters: boolean;
  force: boolean;
}

export interface AppSetArgs extends AppSettings {
  app: string;
  routerTimeoutMs?: number | undefined;
}

export interface CertSetArgs {
  name: string;
  certFile: string;
  keyFile: string;
  keyRingFile?: string | undefined;
  kid?: string | undefined;
}

export interface StatusArgs {
  app?: string | undefined;
  json: boolean;
}

export type Command =
  | { name: 'redeploy'; args: RedeployArgs }
  | { name: 'register'; args: RegisterArgs }
  | { name: 'retire'; args: RetireArgs }
  | { name: 'app set'; args: AppSetArgs }
  | { name: 'status'; args: StatusArgs }
  | { name: 'cert set'; args: CertSetArgs }
  | { name: 'cert list'; args: Record<string, never> }
  | { name: 'cert rm'; args: { name: string } }
  | { name: 'tunnel-token create'; args: { app: string; expiresMs: number | undefined } }
  | { name: 'tunnel-token list'; args: { app: string; json: boolean } }
  | { name: 'tunnel-token rm'; args: { app: string; tokenId: string } }
  | { name: 'maintenance on'; args: { host: string; status: number | undefined; message: string | undefined; forMs: number | undefined; routerTimeoutMs: number | undefined } }
  | { name: 'maintenance off'; args: { host: string; routerTimeoutMs: number | undefined } }
  | { name: 'ui'; args: { listen: ListenAddress } }
  | { name: 'table'; args: { at: RevisionRef | undefined; host: string | undefined; keyRingFile: string | undefined; json: boolean } }
  | { name: 'diff'; args: { from: RevisionRef; to: RevisionRef | undefined; host: string | undefined; keyRingFile: string | undefined; json: boolean } };

export type ParsedCommandLine = { kind: 'help'; text: string } | { kind: 'version' } | { kind: 'run'; global: GlobalOptions; command: Command };

const PATH_RE = /^\/[^?#\s]*$/;

/** Finds the command words (skipping global flags and their values); returns them and the rest. */
function splitCommand(argv: string[]): { words: string[]; rest: string[]; help: boolean } {
  const valued = new Set(GLOBAL_FLAGS.filter((f) => f.kind !== 'boolean').map((f) => `--${f.name}`));
  const rest: string[] = [];
  const words: string[] = [];
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    if (a === '--help' || a === '-h') help = true;
    if (a.startsWith('-')) {
      rest.push(a);
      if (valued.has(a) && i + 1 < argv.length) rest.push(argv[++i]!);
      continue;
    }
    if (words.length === 0) {
      words.push(a);
      if (a === 'app' || a === 'cert' || a === 'help' || a === 'tunnel-token' || a === 'maintenance') {
        // "app set", "cert list", "maintenance on": the subcommand is the next word that is not a flag.
        let j = i + 1;
        while (j < argv.length && argv[j]!.startsWith('-')) {
          rest.push(argv[j]!);
          if (valued.has(argv[j]!) && j + 1 < argv.length) rest.push(argv[++j]!);
          j++;
        }
        if (j < argv.length) words.push(argv[j]!);
        i = j;
      }
      continue;
    }
    rest.push(a);
  }
  return { words, rest, help };
}

export function parseCommandLine(argv: string[], env: NodeJS.ProcessEnv): ParsedCommandLine {
  if (argv.includes('--version') && !argv.slice(0, argv.indexOf('--version')).includes('--')) return { kind: 'version' };
  const { words, rest, help } = splitCommand(argv);
  if (words.length === 0) {
    if (help) return { kind: 'help', text: mainHelp() };
    throw new UsageError(`missing command (one of: ${COMMANDS.map((c) => c.name).join(', ')}); see paas-deploy --help`);
  }
  if (words[0] === 'help') {
    const topic = [words[1], ...rest.filter((r) => !r.startsWith('-'))].filter(Boolean).join(' ');
    const c = findCommand(topic) ?? (words[1] ? findCommand(words[1]) : undefined);
    return { kind: 'help', text: c ? commandHelp(c) : mainHelp() };
  }
  const name = words.join(' ');
  const spec = findCommand(name);
  if (!spec) {
    if (words[0] === 'app') throw new UsageError(`unknown command "${name}" (did you mean "app set"?)`);
    if (words[0] === 'cert') throw new UsageError(`unknown command "${name}" (one of: cert set, cert list, cert rm)`);
    if (words[0] === 'maintenance') throw new UsageError(`unknown command "${name}" (one of: maintenance on, maintenance off)`);
    if (words[0] === 'tunnel-token') throw new UsageError(`unknown command "${name}" (one of: tunnel-token create, tunnel-token list, tunnel-token rm)`);
    throw new UsageError(`unknown command "${name}" (one of: ${COMMANDS.map((c) => c.name).join(', ')}); see paas-deploy --help`);
  }
  if (help) return { kind: 'help', text: commandHelp(spec) };

  const flags = [...GLOBAL_FLAGS, ...spec.flags];
  const options: NonNullable<ParseArgsConfig['options']> = { help: { type: 'boolean', short: 'h' } };
  for (const f of flags) options[f.name] = f.kind === 'boolean' ? { type: 'boolean' } : { type: 'string', multiple: f.kind === 'list' };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`${spec.name}: ${describeParseError(err)} (see paas-deploy ${spec.name} --help)`);
  }
  const v = new Values(spec, flags, parsed.values as Record<string, string | string[] | boolean | undefined>, env);
  const positionals = parsed.positionals;
  const max = spec.positionals.length;
  const min = spec.positionals.filter((p) => !p.startsWith('[')).length;
  if (positionals.length < min) throw new UsageError(`${spec.name}: missing ${spec.positionals.slice(positionals.length).join(' ')} (usage: paas-deploy ${spec.name} ${spec.positionals.join(' ')} [flags])`);
  if (positionals.length > max) throw new UsageError(`${spec.name}: unexpected argument ${JSON.stringify(positionals[max])}`);

  const global = parseGlobal(v, env);
  const app = positionals[0];
  // A certificate's <name> and a maintenance <host> have their own shapes (checked with the command).
  if (app !== undefined && !spec.name.startsWith('cert ') && !spec.name.startsWith('maintenance ') && spec.name !== 'diff' && !isName(app)) throw new UsageError(`${spec.name}: bad app name ${JSON.stringify(app)}: must match ${NAME_SHAPE}`);
  return { kind: 'run', global, command: parseCommand(spec, v, positionals) };
}

/** An override's host: a lower-case DNS name, no wildcard (the override key's shape). */
function requireOverrideHost(command: string, host: string): void {
  const err = hostError(host, false);
  if (err !== undefined) throw new UsageError(`${command}: ${err}`);
}

function parseGlobal(v: Values, env: NodeJS.ProcessEnv): GlobalOptions {
  const listed = v.list('etcd');
  const endpoints = listed.length ? listed : ['http://127.0.0.1:2379'];
  let prefix: string;
  try {
    prefix = normalizePrefix(v.string('prefix') ?? '/paas');
  } catch (err) {
    throw new UsageError(`--prefix: ${(err as Error).message}`);
  }
  let etcdSecurity: EtcdSecurity;
  try {
    etcdSecurity = loadEtcdSecurity({
      endpoints,
      ca: v.given('etcd-ca'),
      cert: v.given('etcd-cert'),
      key: v.given('etcd-key'),
      user: v.given('etcd-user'),
      password: env[PASSWORD_ENV] || undefined,
    });
  } catch (err) {
    if (err instanceof EtcdSecurityError) throw new UsageError(err.message);
    throw err;
  }
  return { endpoints, prefix, etcdSecurity };
}

function parseCommand(spec: CommandSpec, v: Values, positionals: string[]): Command {
  const app = positionals[0]!;
  switch (spec.name) {
    case 'redeploy': {
      const urls = v.list('url');
      if (urls.length === 0) throw new UsageError('redeploy: at least one --url is needed (or PAAS_DEPLOY_URLS)');
      const seen = new Set<string>();
      for (const url of urls) {
        checkUrl('redeploy', url);
        const n = url.replace(/\/+$/, '').toLowerCase();
        if (seen.has(n)) throw new UsageError(`redeploy: --url ${url} is given twice`);
        seen.add(n);
      }
      return {
        name: 'redeploy',
        args: {
          app,
          urls,
          release: v.string('release'),
          healthTimeoutMs: v.duration('health-timeout'),
          routerTimeoutMs: v.duration('router-timeout'),
          drainTimeoutMs: v.duration('drain-timeout'),
          lockTtlSeconds: v.seconds('lock-ttl'),
          allowNoRouters: v.boolean('allow-no-routers'),
        },
      };
    }
    case 'register': {
      const url = v.string('url');
      if (url === undefined) throw new UsageError('register: --url is needed (or PAAS_DEPLOY_URL)');
      checkUrl('register', url);
      const id = v.string('id');
      if (id !== undefined && !isName(id)) throw new UsageError(`register: bad instance id ${JSON.stringify(id)}: must match ${NAME_SHAPE}`);
      const state = v.string('state') ?? 'ready';
      if (state !== 'ready' && state !== 'starting') throw new UsageError(`register: --state must be ready or starting, not ${JSON.stringify(state)}`);
      const weight = v.integer('weight');
      if (weight !== undefined && (weight < 1 || weight > 100)) throw new UsageError(`register: --weight must be 1..100, not ${weight}`);
      return {
        name: 'register',
        args: {
          app,
          url,
          id,
          release: v.string('release'),
          weight,
          state,
          healthTimeoutMs: v.duration('health-timeout'),
          routerTimeoutMs: v.duration('router-timeout'),
          lockTtlSeconds: v.seconds('lock-ttl'),
          allowNoRouters: v.boolean('allow-no-routers'),
        },
      };
    }
    case 'retire': {
      const id = positionals[1]!;
      if (!isName(id)) throw new UsageError(`retire: bad instance id ${JSON.stringify(id)}: must match ${NAME_SHAPE}`);
      return {
        name: 'retire',
        args: {
          app,
          id,
          routerTimeoutMs: v.duration('router-timeout'),
          drainTimeoutMs: v.duration('drain-timeout'),
          lockTtlSeconds: v.seconds('lock-ttl'),
          allowNoRouters: v.boolean('allow-no-routers'),
          force: v.boolean('force'),
        },
      };
    }
    case 'app set': {
      const hosts = v.list('host').map((h) => h.toLowerCase());
      for (const h of hosts) {
        const err = hostError(h, true);
        if (err) throw new UsageError(`app set: --host: ${err}`);
      }
      const paths = v.list('path');
      for (const p of paths) checkPath('--path', p);
      const balance = v.string('balance');
      if (balance !== undefined && !(BALANCE_STRATEGIES as readonly string[]).includes(balance)) {
        throw new UsageError(`app set: --balance must be one of ${BALANCE_STRATEGIES.join(', ')}, not ${JSON.stringify(balance)}`);
      }
      const healthPath = v.string('health-check-path');
      if (healthPath !== undefined && !/^\/[^#\s]*$/.test(healthPath)) throw new UsageError(`app set: --health-check-path must start with "/" (got ${JSON.stringify(healthPath)})`);
      return {
        name: 'app set',
        args: {
          app,
          hosts,
          paths,
          balance: balance as BalanceStrategy | undefined,
          healthPath,
          healthIntervalMs: v.duration('health-check-interval'),
          healthTimeoutMs: v.duration('health-check-timeout'),
          routerTimeoutMs: v.duration('router-timeout'),
        },
      };
    }
    case 'status':
      return { name: 'status', args: { app: positionals[0], json: v.boolean('json') } };
    case 'cert set': {
      const name = positionals[0]!;
      if (!isCertName(name)) throw new UsageError(`cert set: bad certificate name ${JSON.stringify(name)}: must match ${CERT_NAME_PATTERN}`);
      const certFile = v.string('cert');
      const keyFile = v.string('key');
      if (certFile === undefined || keyFile === undefined) throw new UsageError('cert set: --cert FILE and --key FILE are needed');
      const keyRingFile = v.string('key-ring');
      const kid = v.string('kid');
      if ((keyRingFile === undefined) !== (kid === undefined)) throw new UsageError('cert set: --key-ring and --kid go together');
      return { name: 'cert set', args: { name, certFile, keyFile, keyRingFile, kid } };
    }
    case 'cert list':
      return { name: 'cert list', args: {} };
    case 'cert rm': {
      const name = positionals[0]!;
      if (!isCertName(name)) throw new UsageError(`cert rm: bad certificate name ${JSON.stringify(name)}: must match ${CERT_NAME_PATTERN}`);
      return { name: 'cert rm', args: { name } };
    }
    case 'tunnel-token create':
      return { name: 'tunnel-token create', args: { app, expiresMs: v.duration('expires') } };
    case 'tunnel-token list':
      return { name: 'tunnel-token list', args: { app, json: v.boolean('json') } };
    case 'tunnel-token rm': {
      const tokenId = positionals[1]!;
      if (!isName(tokenId)) throw new UsageError(`tunnel-token rm: bad token id ${JSON.stringify(tokenId)}: must match ${NAME_SHAPE}`);
      return { name: 'tunnel-token rm', args: { app, tokenId } };
    }
    case 'maintenance on': {
      requireOverrideHost(spec.name, positionals[0]!);
      const status = v.integer('status');
      if (status !== undefined && (status < 200 || status > 599)) throw new UsageError(`maintenance on: --status ${status}: must be from 200 to 599`);
      const forMs = v.duration('for');
      if (forMs !== undefined && forMs <= 0) throw new UsageError('maintenance on: --for must be more than 0');
      return { name: 'maintenance on', args: { host: positionals[0]!, status, message: v.string('message'), forMs, routerTimeoutMs: v.duration('router-timeout') } };
    }
    case 'maintenance off':
      requireOverrideHost(spec.name, positionals[0]!);
      return { name: 'maintenance off', args: { host: positionals[0]!, routerTimeoutMs: v.duration('router-timeout') } };
    case 'ui': {
      const listen = v.given('listen');
      return { name: 'ui', args: { listen: parseListen(listen?.value ?? '127.0.0.1:8081', listen?.what ?? '--listen') } };
    }
    case 'table': {
      const at = v.string('at');
      return { name: 'table', args: { at: at === undefined ? undefined : parseRevision('table: --at', at), host: historyHost(spec.name, v), keyRingFile: v.string('key-ring'), json: v.boolean('json') } };
    }
    case 'diff': {
      const from = parseRevision('diff:', positionals[0]!);
      const to = positionals[1] === undefined ? undefined : parseRevision('diff:', positionals[1]);
      return { name: 'diff', args: { from, to, host: historyHost(spec.name, v), keyRingFile: v.string('key-ring'), json: v.boolean('json') } };
    }
  }
}

/** IPv4:PORT or [IPv6]:PORT. A name or an empty host is refused: the page binds exactly where it is told. */
function parseListen(text: string, from: string): ListenAddress {
  const m = /^(\[[^\]]*\]|[^:]*):(\d{1,5})$/.exec(text);
  const host = m ? m[1]!.replace(/^\[|\]$/g, '') : '';
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535 || isIP(host) === 0 || (m[1]!.startsWith('[') !== (isIP(host) === 6))) {
    throw new UsageError(`ui: ${from} ${JSON.stringify(text)} is not IP:PORT (e.g. 127.0.0.1:8081 or [::1]:8081)`);
  }
  return { host, port };
}

/** RFC 3339 with its offset: a time without one would depend on the machine's time zone. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** An etcd revision (a whole number from 1) or an RFC 3339 time with its offset. */
function parseRevision(what: string, text: string): RevisionRef {
  if (/^\d+$/.test(text) && BigInt(text) >= 1n) return { revision: BigInt(text) };
  const time = RFC3339.test(text) ? Date.parse(text.replace(' ', 'T')) : NaN;
  if (Number.isFinite(time)) return { time };
  const hint = /^\d{4}-\d{2}-\d{2}/.test(text) ? ' (a time is RFC 3339 with seconds and an offset, e.g. 2026-11-29T14:02:00Z)' : '';
  throw new UsageError(`${what} ${JSON.stringify(text)} is neither a revision (a whole number from 1) nor a time${hint}`);
}

/** table/diff --host: a request's host (lower-case DNS name, no wildcard). */
function historyHost(command: string, v: Values): string | undefined {
  const host = v.string('host')?.toLowerCase();
  if (host === undefined) return undefined;
  const err = hostError(host, false);
  if (err !== undefined) throw new UsageError(`${command}: --host: ${err}`);
  return host;
}

function checkUrl(cmd: string, url: string): void {
  const err = instanceUrlError(url.replace(/\/+$/, ''));
  if (err) throw new UsageError(`${cmd}: bad URL ${JSON.stringify(url)}: ${err.replace(/^url: /, '')}`);
}

function checkPath(flag: string, p: string): void {
  if (!PATH_RE.test(p)) throw new UsageError(`app set: ${flag} ${JSON.stringify(p)} must start with "/" and hold no query, fragment or space`);
  if (p.length > 1 && p.endsWith('/')) throw new UsageError(`app set: ${flag} ${JSON.stringify(p)} must not end with "/" (prefixes match on segment boundaries)`);
}

function describeParseError(err: unknown): string {
  const e = err as { code?: string; message?: string };
  const msg = e.message ?? String(err);
  const opt = /'(-[^' ]*)/.exec(msg)?.[1];
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown flag ${opt ?? msg}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (/argument missing/.test(msg)) return `flag ${opt} needs a value`;
      if (/does not take an argument/.test(msg)) return `flag ${opt} takes no value`;
      // Node's message for a value that starts with "-" runs over three lines.
      if (/is ambiguous/.test(msg)) return `flag ${opt} needs a value (one starting with "-" is written ${opt}=VALUE)`;
      return msg.split('\n')[0]!.split('. ')[0]!;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return msg.split('. ')[0]!;
    default:
      return msg.split('\n')[0]!.split('. ')[0]!;
  }
}

/** Flag values with their environment fallbacks, converted and checked. */
class Values {
  constructor(
    private readonly spec: CommandSpec,
    private readonly flags: FlagSpec[],
    private readonly values: Record<string, string | string[] | boolean | undefined>,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  private flag(name: string): FlagSpec {
    const f = this.flags.find((x) => x.name === name);
    if (!f) throw new Error(`no flag --${name} in ${this.spec.name}`);
    return f;
  }

  /** The raw text and where it came from, flag first then env. */
  private raw(name: string): { text: string; from: string } | undefined {
    const v = this.values[name];
    if (typeof v === 'string') return { text: v, from: `--${name}` };
    const f = this.flag(name);
    const e = this.env[f.env];
    if (e !== undefined && e !== '') return { text: e, from: f.env };
    return undefined;
  }

  /** The value and where it came from (for messages naming the flag or variable). */
  given(name: string): Given | undefined {
    const text = this.string(name);
    return text === undefined ? undefined : { value: text, what: this.raw(name)!.from };
  }

  string(name: string): string | undefined {
    const r = this.raw(name);
    if (r && r.text.trim() === '') throw new UsageError(`${this.spec.name}: ${r.from} is empty`);
    return r?.text;
  }

  list(name: string): string[] {
    const v = this.values[name];
    const items = Array.isArray(v) && v.length > 0 ? v : (() => {
      const e = this.env[this.flag(name).env];
      return e ? [e] : [];
    })();
    return items.flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== '');
  }

  boolean(name: string): boolean {
    const v = this.values[name];
    if (v === true) return true;
    const f = this.flag(name);
    const e = this.env[f.env];
    if (e === undefined || e === '') return false;
    if (/^(1|true|yes|on)$/i.test(e)) return true;
    if (/^(0|false|no|off)$/i.test(e)) return false;
    throw new UsageError(`${this.spec.name}: ${f.env}=${JSON.stringify(e)} is not a boolean (1/true/yes or 0/false/no)`);
  }

  duration(name: string): number | undefined {
    const r = this.raw(name);
    if (!r) return undefined;
    const d = parseDuration(r.text);
    if (!d.ok) throw new UsageError(`${this.spec.name}: ${r.from} ${d.error}`);
    if (d.ms <= 0) throw new UsageError(`${this.spec.name}: ${r.from} ${JSON.stringify(r.text)} must be more than 0`);
    return Math.round(d.ms);
  }

  /** A duration in whole seconds (lease TTLs), at least 1. */
  seconds(name: string): number | undefined {
    const ms = this.duration(name);
    if (ms === undefined) return undefined;
    if (ms < 1000) throw new UsageError(`${this.spec.name}: --${name} must be at least 1s`);
    return Math.ceil(ms / 1000);
  }

  integer(name: string): number | undefined {
    const r = this.raw(name);
    if (!r) return undefined;
    if (!/^\d+$/.test(r.text)) throw new UsageError(`${this.spec.name}: ${r.from} ${JSON.stringify(r.text)} is not a whole number`);
    return Number(r.text);
  }
}
