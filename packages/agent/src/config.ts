/**
 * Command line and environment → AgentConfig. Every flag has an environment variable; the token
 * comes from PAAS_AGENT_TOKEN only (a flag would show in `ps`). A bad value stops start-up with
 * one line naming the flag and what was wrong (exit 2).
 */
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { DURATION_EXAMPLES, flagHelpLines, isName, LOG_LEVELS, readCommandLine, NAME_SHAPE, type ParsedCommandLine, parseDuration as parseGoDuration, tokenIdOf } from '@paas/registry';

const AGENT_VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

export const TOKEN_ENV = 'PAAS_AGENT_TOKEN';

export interface RouterAddress {
  /** As given: https://HOST:PORT. */
  url: string;
  host: string;
  port: number;
}

export interface AgentConfig {
  routers: RouterAddress[];
  app: string;
  id: string;
  to: { host: string; port: number };
  /** PEM of the CA(s) the routers' tunnel certificate must chain to; undefined: the system's. */
  ca: string | undefined;
  token: string;
  /** Sessions kept to every router. */
  sessions: number;
  /** On SIGTERM: how long open streams may take before the sessions are cut. */
  drainTimeoutMs: number;
  logLevel: string;
}

export class ConfigError extends Error {}

interface FlagSpec {
  env: string;
  default?: string;
  help: string;
}

export const FLAGS: Record<string, FlagSpec> = {
  routers: { env: 'PAAS_AGENT_ROUTERS', help: 'https://HOST:PORT of routers\' --listen-tunnel listeners, comma-separated (one is enough: the others are learnt from it)' },
  app: { env: 'PAAS_AGENT_APP', help: 'the app this agent serves (the token must belong to it)' },
  id: { env: 'PAAS_AGENT_ID', help: 'the instance id: its record is instances/<app>/<id> with "url": "tunnel://<id>"' },
  to: { env: 'PAAS_AGENT_TO', help: 'the local app, http://127.0.0.1:PORT' },
  ca: { env: 'PAAS_AGENT_CA', help: 'PEM file of the CA(s) that signed the routers\' tunnel certificate (default: the system\'s CAs)' },
  sessions: { env: 'PAAS_AGENT_SESSIONS', default: '2', help: 'sessions kept open to every router' },
  'drain-timeout': { env: 'PAAS_AGENT_DRAIN_TIMEOUT', default: '30s', help: 'on SIGTERM, how long open requests may take to finish before the sessions are cut' },
  'log-level': { env: 'LOG_LEVEL', default: 'info', help: 'fatal, error, warn, info, debug or trace' },
};

export function helpText(): string {
  const lines = [
    'Usage: PAAS_AGENT_TOKEN=<token> paas-agent --routers URL[,URL...] --app APP --id ID',
    '                                           --to http://127.0.0.1:PORT [--ca FILE]',
    '',
    'Flags (each also read from the environment variable shown; flags win):',
  ];
  lines.push(...flagHelpLines(FLAGS, [{ env: TOKEN_ENV, help: 'the token paas-deploy tunnel-token create printed' }]));
  lines.push('', `Durations: Go syntax, ${DURATION_EXAMPLES}; a bare number is refused except 0.`);
  lines.push('Exit codes: 0 drained (SIGTERM), 130 interrupted (SIGINT), 1 refused by a router, 2 bad flag.');
  return lines.join('\n');
}

export function versionText(): string {
  return `paas-agent ${AGENT_VERSION} (Node ${process.version})`;
}

/** A duration in the syntax of every paas command (@paas/registry parseDuration), in milliseconds. */
function parseDuration(text: string, what: string): number {
  const d = parseGoDuration(text);
  if (!d.ok) throw new ConfigError(`${what}: ${d.error}`);
  return Math.round(d.ms);
}

export function parseRouterUrl(text: string, what: string): RouterAddress {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new ConfigError(`${what}: ${JSON.stringify(text)} is not a URL (https://HOST:PORT)`);
  }
  if (u.protocol !== 'https:' || u.port === '' || u.pathname !== '/' || u.search !== '') throw new ConfigError(`${what}: ${JSON.stringify(text)} must be https://HOST:PORT`);
  return { url: `https://${u.host}`, host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port) };
}


export function parseConfig(argv: string[], env: NodeJS.ProcessEnv): ParsedCommandLine<AgentConfig> {
  const line = readCommandLine(argv, env, FLAGS, (message) => new ConfigError(message));
  if ('help' in line) return { help: true };
  if ('version' in line) return { help: false, version: true };
  const raw = line.raw;
  const required = (name: string) => {
    const r = raw(name);
    if (r.text === undefined) throw new ConfigError(`--${name} (${FLAGS[name]!.env}) is required`);
    return r as { text: string; what: string };
  };

  const routersRaw = required('routers');
  const routers = routersRaw.text.split(',').map((s) => s.trim()).filter(Boolean).map((u) => parseRouterUrl(u, routersRaw.what));
  if (routers.length === 0) throw new ConfigError(`${routersRaw.what}: no router given`);
  const app = required('app');
  if (!isName(app.text)) throw new ConfigError(`${app.what}: ${JSON.stringify(app.text)} must match ${NAME_SHAPE}`);
  const id = required('id');
  if (!isName(id.text)) throw new ConfigError(`${id.what}: ${JSON.stringify(id.text)} must match ${NAME_SHAPE}`);
  const toRaw = required('to');
  const to = /^http:\/\/(\[[0-9a-f:]+\]|[a-zA-Z0-9.-]+):(\d{1,5})\/?$/.exec(toRaw.text);
  if (!to || Number(to[2]) > 65535) throw new ConfigError(`${toRaw.what}: ${JSON.stringify(toRaw.text)} must be http://HOST:PORT`);
  const caRaw = raw('ca');
  let ca: string | undefined;
  if (caRaw.text !== undefined) {
    try {
      ca = readFileSync(caRaw.text, 'utf8');
    } catch (err) {
      throw new ConfigError(`${caRaw.what}: cannot read ${JSON.stringify(caRaw.text)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError(`${caRaw.what}: ${JSON.stringify(caRaw.text)} holds no PEM certificate`);
  }
  const token = env[TOKEN_ENV];
  if (token === undefined || token === '') throw new ConfigError(`${TOKEN_ENV} is not set (the token paas-deploy tunnel-token create printed)`);
  if (tokenIdOf(token) === undefined) throw new ConfigError(`${TOKEN_ENV}: not a token (expected <token-id>.<secret>, as paas-deploy tunnel-token create prints it)`);
  const sessionsRaw = raw('sessions');
  const sessions = Number(sessionsRaw.text);
  if (!/^\d+$/.test(sessionsRaw.text ?? '') || sessions < 1 || sessions > 16) throw new ConfigError(`${sessionsRaw.what}: ${JSON.stringify(sessionsRaw.text)} must be an integer from 1 to 16`);
  const level = raw('log-level');
  if (!LOG_LEVELS.has(level.text!)) throw new ConfigError(`${level.what}: ${JSON.stringify(level.text)} is not one of ${[...LOG_LEVELS].join(', ')}`);
  const drain = raw('drain-timeout');
  return {
    help: false,
    config: {
      routers,
      app: app.text,
      id: id.text,
      to: { host: to[1]!.replace(/^\[|\]$/g, ''), port: Number(to[2]) },
      ca,
      token,
      sessions,
      drainTimeoutMs: parseDuration(drain.text!, drain.what),
      logLevel: level.text!,
    },
  };
}
