/**
 * Command line and environment → RouterConfig. Every flag has an environment variable; a bad
 * value stops start-up with one line naming the flag, the variable and what was wrong.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { DURATION_EXAMPLES, EtcdSecurityError, flagHelpLines, isCertName, isName, loadEtcdSecurity, LOG_LEVELS, readCommandLine, type GivenText, NAME_SHAPE, type ParsedCommandLine, normalizePrefix, parseDuration as parseGoDuration, parseKeyRing, PASSWORD_ENV, type EtcdSecurity, type KeyRing } from '@paas/registry';
import { ROUTER_VERSION } from './version.js';
import { UPSTREAM_CLIENT_CHOICES, type UpstreamClientChoice } from './transport/upstream.js';
import { CLIENT_PARSER_CHOICES, type ClientParserChoice } from './listeners/client-parser.js';

export interface ListenAddress {
  host: string;
  port: number;
}

export interface RouterConfig {
  etcdEndpoints: string[];
  /** TLS files read and checked, and the etcd user (see @paas/registry loadEtcdSecurity). */
  etcdSecurity: EtcdSecurity;
  prefix: string;
  listen: ListenAddress;
  admin: ListenAddress;
  id: string;
  leaseTtlSeconds: number;
  startTimeoutMs: number;
  connectTimeoutMs: number;
  upstreamTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** Idle time of a client's keep-alive connection, announced as `Keep-Alive: timeout=N`. */
  clientKeepAliveTimeoutMs: number;
  /** Time a client has to send a complete request head. */
  requestHeaderTimeoutMs: number;
  upstreamClient: UpstreamClientChoice;
  clientParser: ClientParserChoice;
  shutdownTimeoutMs: number;
  drainWaitMs: number;
  digestCheckMs: number;
  retryAfterSeconds: number;
  maxAttempts: number;
  accessLog: boolean;
  /** The access log's own file (implies accessLog); the router's log (stdout) when not set. */
  accessLogFile: string | undefined;
  logLevel: string;
  /** Worker processes sharing the traffic port (node:cluster); 1 runs the router in this process. */
  workers: number;
  /** The TLS listener (HTTP/2 and HTTP/1.1); none when not set. */
  listenTls: ListenAddress | undefined;
  /** The `certs/` name served to a handshake whose name no certificate covers (or that names none). */
  defaultCert: string | undefined;
  /** The https port clients reach, for `tls.redirect` Locations (443: no port in the Location). */
  publicHttpsPort: number;
  /** How many TLS contexts (one per certificate in use) are kept built. */
  tlsContextCache: number;
  /** The agent tunnel listener; none when not set. */
  listenTunnel: ListenAddress | undefined;
  /** The `certs/` name the tunnel listener serves (required with listenTunnel). */
  tunnelCert: string | undefined;
  /** The address agents are told to reach this router's tunnel listener at. */
  tunnelAdvertise: string | undefined;
  /** Agent tunnel sessions this router holds at most; agents past it are refused, to retry later. */
  tunnelMaxSessions: number;
  /** Sessions one tunnel instance (its agent) may hold to this router. */
  tunnelMaxSessionsPerInstance: number;
  /** How long a tunnel instance's agent has to open its connection to the app and say so. */
  tunnelConnectTimeoutMs: number;
  /** Label request metrics by app (series grow with the number of apps). */
  metricsPerApp: boolean;
  /** Keys that decrypt certificate records' `keyEnc`, by kid (empty without --key-ring). */
  keyRing: KeyRing;
  /** Automatic HTTPS (--acme-directory with --acme-email); undefined: this router orders nothing. */
  acme: AcmeConfig | undefined;
}

export interface AcmeConfig {
  directory: string;
  email: string;
  /** PEM text of --acme-ca: the CA(s) that signed the directory's TLS certificate. */
  caPem: string | undefined;
  ordersPerMinute: number;
  retryBaseMs: number;
}

export class ConfigError extends Error {}

interface FlagSpec {
  env: string;
  default?: string;
  help: string;
  boolean?: boolean;
}

export const FLAGS: Record<string, FlagSpec> = {
  etcd: { env: 'ETCD_ENDPOINTS', default: 'http://127.0.0.1:2379', help: 'etcd endpoints, comma-separated' },
  'etcd-ca': { env: 'ETCD_CA', help: 'PEM file of the CA(s) that signed etcd\'s server certificate (https:// endpoints; default: the system\'s CAs)' },
  'etcd-cert': { env: 'ETCD_CERT', help: 'PEM client certificate for etcd (with --etcd-key); etcd takes its CN as the user when no --etcd-user is given' },
  'etcd-key': { env: 'ETCD_KEY', help: 'PEM private key of --etcd-cert' },
  'etcd-user': { env: 'ETCD_USER', help: `etcd user; its password is read from the environment variable ${PASSWORD_ENV} only` },
  prefix: { env: 'PAAS_PREFIX', default: '/paas', help: 'key prefix in etcd' },
  listen: { env: 'ROUTER_LISTEN', default: '0.0.0.0:8080', help: 'traffic listener host:port' },
  admin: { env: 'ROUTER_ADMIN', default: '127.0.0.1:9090', help: 'admin listener host:port (/healthz /readyz /status /routes /metrics)' },
  id: { env: 'ROUTER_ID', help: 'router id in <prefix>/routers/<id> (default: host name)' },
  'lease-ttl': { env: 'ROUTER_LEASE_TTL', default: '10s', help: 'TTL of the lease under the status record' },
  'start-timeout': { env: 'ROUTER_START_TIMEOUT', default: '30s', help: 'give up when the first load from etcd has not succeeded by then' },
  'connect-timeout': { env: 'ROUTER_CONNECT_TIMEOUT', default: '2s', help: 'upstream connect timeout' },
  'upstream-timeout': { env: 'ROUTER_UPSTREAM_TIMEOUT', default: '60s', help: 'time an instance has to send response headers (then 504), and between body chunks' },
  'keepalive-timeout': { env: 'ROUTER_KEEPALIVE_TIMEOUT', default: '4s', help: 'idle upstream connections are closed after this (an instance that sends Keep-Alive: timeout=N gets N-2s, up to 60s); keep it below the instances\' own' },
  'client-keepalive-timeout': { env: 'ROUTER_CLIENT_KEEPALIVE_TIMEOUT', default: '10s', help: 'idle client connections are closed after this, announced to clients as Keep-Alive: timeout=N; at least 1s, and 1s shorter than --shutdown-timeout so a stop never cuts an idle connection' },
  'request-header-timeout': { env: 'ROUTER_REQUEST_HEADER_TIMEOUT', default: '10s', help: 'a client has this long to send a request head (from its first byte, or from connecting), then gets 408' },
  'upstream-client': { env: 'ROUTER_UPSTREAM_CLIENT', default: 'auto', help: 'native (Node\'s internal HTTP parser, fastest), portable (undici, public APIs only) or auto (native when its start-up check passes)' },
  'client-parser': { env: 'ROUTER_CLIENT_PARSER', default: 'auto', help: 'what serves client HTTP/1.1 connections: native (Node\'s internal HTTP parser driven by the router, fastest), node (Node\'s http server, public APIs only) or auto (native when its start-up check passes)' },
  'shutdown-timeout': { env: 'ROUTER_SHUTDOWN_TIMEOUT', default: '30s', help: 'on SIGTERM, after --drain-wait: how long requests in flight and idle client connections may take to end before connections are cut' },
  'drain-wait': { env: 'ROUTER_DRAIN_WAIT', default: '0s', help: 'on SIGTERM, keep serving this long with /readyz at 503 before closing the listener' },
  'digest-check': { env: 'ROUTER_DIGEST_CHECK', default: '15s', help: 'how often to compare the table digest with peers at the same revision' },
  'retry-after': { env: 'ROUTER_RETRY_AFTER', default: '5', help: 'Retry-After seconds on 503 answers' },
  'max-attempts': { env: 'ROUTER_MAX_ATTEMPTS', default: '3', help: 'instances tried per request when connections fail' },
  'metrics-per-app': { env: 'ROUTER_METRICS_PER_APP', default: 'false', help: 'label request counts and upstream latency by app (series grow with the apps)', boolean: true },
  'access-log': { env: 'ROUTER_ACCESS_LOG', default: 'false', help: 'log one line per request (client, status, bytes, ms, app, instance, upstream)', boolean: true },
  'access-log-file': { env: 'ROUTER_ACCESS_LOG_FILE', help: 'write the access log to this file (appended) instead of stdout; turns --access-log on' },
  'log-level': { env: 'LOG_LEVEL', default: 'info', help: 'fatal, error, warn, info, debug or trace' },
  'key-ring': { env: 'ROUTER_KEY_RING', help: 'JSON file { "<kid>": "<base64 of 32 bytes>", ... }: the keys that decrypt certificate records\' keyEnc (several kids, so keys can rotate)' },
  workers: { env: 'ROUTER_WORKERS', default: '1', help: 'worker processes sharing --listen; each is a router <id>-w<k> with its own etcd watch and status record' },
  'listen-tls': { env: 'ROUTER_LISTEN_TLS', help: 'TLS listener host:port (HTTP/2 and HTTP/1.1 by ALPN; certificates from <prefix>/certs/); off when not set' },
  'default-cert': { env: 'ROUTER_DEFAULT_CERT', help: 'certs/<name> served when no certificate covers the handshake\'s server name (or it sends none); else the handshake fails' },
  'public-https-port': { env: 'ROUTER_PUBLIC_HTTPS_PORT', default: '443', help: 'https port clients use, in the Location of tls.redirect answers' },
  'acme-directory': { env: 'ROUTER_ACME_DIRECTORY', help: 'ACME directory URL (https://): the fleet obtains and renews certificates for the exact hosts of apps with tls.acme (with --acme-email)' },
  'acme-email': { env: 'ROUTER_ACME_EMAIL', help: 'contact e-mail of the fleet\'s ACME account' },
  'acme-ca': { env: 'ROUTER_ACME_CA', help: 'PEM file of the CA(s) that signed the ACME directory\'s TLS certificate (default: the system\'s CAs)' },
  'acme-orders-per-minute': { env: 'ROUTER_ACME_ORDERS_PER_MINUTE', default: '10', help: 'new ACME orders the whole fleet may start per minute' },
  'acme-retry': { env: 'ROUTER_ACME_RETRY', default: '1m', help: 'wait after a host\'s failed order, doubling with each failure in a row up to 64 times it' },
  'tls-context-cache': { env: 'ROUTER_TLS_CONTEXT_CACHE', default: '1000', help: 'TLS contexts kept built (one per certificate in use, ~30 KB each), least recently used dropped first' },
  'listen-tunnel': { env: 'ROUTER_LISTEN_TUNNEL', help: 'agent tunnel listener host:port (paas-agent connects here over TLS); off when not set' },
  'tunnel-cert': { env: 'ROUTER_TUNNEL_CERT', help: 'certs/<name> the tunnel listener serves (required with --listen-tunnel)' },
  'tunnel-max-sessions': { env: 'ROUTER_TUNNEL_MAX_SESSIONS', default: '5000', help: 'agent tunnel sessions this router holds at most; more agents are refused (they retry later)' },
  'tunnel-max-sessions-per-instance': { env: 'ROUTER_TUNNEL_MAX_SESSIONS_PER_INSTANCE', default: '16', help: 'tunnel sessions one instance\'s agent may hold to this router' },
  'tunnel-connect-timeout': { env: 'ROUTER_TUNNEL_CONNECT_TIMEOUT', default: '10s', help: 'how long an agent has to reach its app for a new connection (--connect-timeout is for direct instances)' },
  'tunnel-advertise': { env: 'ROUTER_TUNNEL_ADVERTISE', help: 'https://HOST:PORT agents are told to reach this router\'s tunnel listener at (default: https://<--listen-tunnel>)' },
};

/** The router's version (its package.json), for --version. */
export function versionText(): string {
  return `paas-router ${ROUTER_VERSION} (Node ${process.version})`;
}

/** Each flag on its own line with its variable, what it does wrapped below it: at most 100 columns. */
export function helpText(): string {
  const lines = [
    'Usage: paas-router [flags]',
    '',
    'Loads every record under <prefix> in etcd, watches it, and routes HTTP and WebSocket',
    'traffic by host and path to app instances.',
    '',
    'Flags (each also read from the environment variable shown; flags win):',
  ];
  lines.push(...flagHelpLines(FLAGS, [{ env: PASSWORD_ENV, help: 'password of --etcd-user' }]));
  lines.push('', `Durations: Go syntax, e.g. ${DURATION_EXAMPLES.slice(5)}; a bare number is refused except 0.`);
  lines.push('Booleans: 1/true/yes/on or 0/false/no/off. Exit codes: 0 stopped (SIGTERM), 130 interrupted');
  lines.push('(SIGINT), 1 failed, 2 bad flag or variable.');
  return lines.join('\n');
}

/** A duration in the syntax both commands share (@paas/registry parseDuration), in whole milliseconds. */
export function parseDuration(text: string, what: string): number {
  const d = parseGoDuration(text);
  if (!d.ok) throw new ConfigError(`${what}: ${d.error}`);
  return Math.round(d.ms);
}

function parseAddress(text: string, what: string): ListenAddress {
  const m = /^(\[[0-9a-f:]+\]|[a-zA-Z0-9.-]*):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new ConfigError(`${what}: ${JSON.stringify(text)} is not host:port`);
  const host = m[1]!.replace(/^\[|\]$/g, '') || '0.0.0.0';
  return { host, port };
}

function parseEndpoints(text: string, what: string): string[] {
  const list = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (list.length === 0) throw new ConfigError(`${what}: no endpoint given`);
  for (const e of list) {
    let u: URL;
    try {
      u = new URL(e);
    } catch {
      throw new ConfigError(`${what}: ${JSON.stringify(e)} is not a URL (e.g. http://127.0.0.1:2379)`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError(`${what}: ${JSON.stringify(e)} must be http:// or https://`);
  }
  return list;
}

function parseInteger(text: string, what: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n < min || n > max) throw new ConfigError(`${what}: ${JSON.stringify(text)} must be an integer from ${min} to ${max}`);
  return n;
}

function parseBoolean(text: string, what: string): boolean {
  if (/^(1|true|yes|on)$/i.test(text)) return true;
  if (/^(0|false|no|off)$/i.test(text)) return false;
  throw new ConfigError(`${what}: ${JSON.stringify(text)} must be true or false`);
}

function defaultId(): string {
  const h = hostname().toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+|-+$/g, '').slice(0, 63);
  return isName(h) ? h : 'router';
}

/**
 * The announced timeout is whole seconds (Node sends floor(ms / 1000)), and Node keeps an idle
 * connection up to 1 s past it: a stop waits that long for idle connections to end by themselves.
 */
function checkClientKeepAlive(config: RouterConfig, keepAlive: GivenText, shutdown: GivenText): void {
  if (config.clientKeepAliveTimeoutMs < 1000) throw new ConfigError(`${keepAlive.what}: ${JSON.stringify(keepAlive.text)} must be at least 1s (clients are told whole seconds)`);
  if (config.clientKeepAliveTimeoutMs + 1000 > config.shutdownTimeoutMs) {
    throw new ConfigError(`${keepAlive.what}: ${JSON.stringify(keepAlive.text)} must be at least 1s shorter than ${shutdown.what} (${shutdown.text}), or a stop cuts idle client connections`);
  }
}

function etcdSecurity(endpoints: string[], raw: (name: string) => GivenText, env: NodeJS.ProcessEnv): EtcdSecurity {
  const given = (name: string) => {
    const { text, what } = raw(name);
    return text === undefined ? undefined : { value: text, what };
  };
  try {
    return loadEtcdSecurity({
      endpoints,
      ca: given('etcd-ca'),
      cert: given('etcd-cert'),
      key: given('etcd-key'),
      user: given('etcd-user'),
      password: env[PASSWORD_ENV] || undefined,
    });
  } catch (err) {
    if (err instanceof EtcdSecurityError) throw new ConfigError(err.message);
    throw err;
  }
}

/** A flag without a default: undefined when neither it nor its variable is given. */
function optional<T>(given: GivenText, parse: (text: string, what: string) => T): T | undefined {
  return given.text === undefined ? undefined : parse(given.text, given.what);
}

function readKeyRing(file: string, what: string): KeyRing {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${what}: cannot read ${JSON.stringify(file)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return parseKeyRing(text);
  } catch (err) {
    throw new ConfigError(`${what}: ${JSON.stringify(file)}: ${(err as Error).message}`);
  }
}

function readPemFile(file: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${what}: cannot read ${JSON.stringify(file)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError(`${what}: ${JSON.stringify(file)} holds no PEM certificate`);
  return text;
}

function acmeConfig(raw: (name: string) => GivenText): AcmeConfig | undefined {
  const directory = raw('acme-directory');
  const email = raw('acme-email');
  if (directory.text === undefined) {
    if (email.text !== undefined) throw new ConfigError(`${email.what}: given without --acme-directory`);
    if (raw('acme-ca').text !== undefined) throw new ConfigError(`${raw('acme-ca').what}: given without --acme-directory`);
    return undefined;
  }
  let url: URL;
  try {
    url = new URL(directory.text);
  } catch {
    throw new ConfigError(`${directory.what}: ${JSON.stringify(directory.text)} is not a URL`);
  }
  if (url.protocol !== 'https:') throw new ConfigError(`${directory.what}: ${JSON.stringify(directory.text)} must be https:// (RFC 8555)`);
  if (email.text === undefined) throw new ConfigError(`${email.what}: required with --acme-directory`);
  if (!/^[^\s@<>]+@[^\s@<>]+$/.test(email.text)) throw new ConfigError(`${email.what}: ${JSON.stringify(email.text)} is not an e-mail address`);
  const retry = raw('acme-retry');
  const retryBaseMs = parseDuration(retry.text ?? '', retry.what);
  if (retryBaseMs < 1000) throw new ConfigError(`${retry.what}: must be at least 1s`);
  const perMinute = raw('acme-orders-per-minute');
  return {
    directory: directory.text,
    email: email.text,
    caPem: optional(raw('acme-ca'), readPemFile),
    ordersPerMinute: parseInteger(perMinute.text ?? '', perMinute.what, 1, 1000),
    retryBaseMs,
  };
}


export function parseConfig(argv: string[], env: NodeJS.ProcessEnv): ParsedCommandLine<RouterConfig> {
  const line = readCommandLine(argv, env, FLAGS, (message) => new ConfigError(message));
  if ('help' in line) return { help: true };
  if ('version' in line) return { help: false, version: true };
  const raw = line.raw;
  const get = <T>(name: string, parse: (text: string, what: string) => T): T => {
    const { text, what } = raw(name);
    return parse(text ?? '', what);
  };

  const idRaw = raw('id');
  const id = idRaw.text ?? defaultId();
  if (!isName(id)) throw new ConfigError(`${idRaw.what}: ${JSON.stringify(id)} must match ${NAME_SHAPE}`);

  const etcdEndpoints = get('etcd', parseEndpoints);
  const config: RouterConfig = {
    etcdEndpoints,
    etcdSecurity: etcdSecurity(etcdEndpoints, raw, env),
    prefix: get('prefix', (t, w) => {
      try {
        return normalizePrefix(t);
      } catch (err) {
        throw new ConfigError(`${w}: ${(err as Error).message}`);
      }
    }),
    listen: get('listen', parseAddress),
    admin: get('admin', parseAddress),
    id,
    leaseTtlSeconds: get('lease-ttl', (t, w) => {
      const ms = parseDuration(t, w);
      if (ms < 2000 || ms > 600_000) throw new ConfigError(`${w}: lease TTL must be between 2s and 10m`);
      return Math.round(ms / 1000);
    }),
    startTimeoutMs: get('start-timeout', parseDuration),
    connectTimeoutMs: get('connect-timeout', parseDuration),
    upstreamTimeoutMs: get('upstream-timeout', parseDuration),
    keepAliveTimeoutMs: get('keepalive-timeout', parseDuration),
    clientKeepAliveTimeoutMs: get('client-keepalive-timeout', parseDuration),
    requestHeaderTimeoutMs: get('request-header-timeout', parseDuration),
    upstreamClient: get('upstream-client', (t, w) => {
      if (!(UPSTREAM_CLIENT_CHOICES as readonly string[]).includes(t)) throw new ConfigError(`${w}: ${JSON.stringify(t)} is not one of ${UPSTREAM_CLIENT_CHOICES.join(', ')}`);
      return t as UpstreamClientChoice;
    }),
    clientParser: get('client-parser', (t, w) => {
      if (!(CLIENT_PARSER_CHOICES as readonly string[]).includes(t)) throw new ConfigError(`${w}: ${JSON.stringify(t)} is not one of ${CLIENT_PARSER_CHOICES.join(', ')}`);
      return t as ClientParserChoice;
    }),
    shutdownTimeoutMs: get('shutdown-timeout', parseDuration),
    drainWaitMs: get('drain-wait', parseDuration),
    digestCheckMs: get('digest-check', parseDuration),
    retryAfterSeconds: get('retry-after', (t, w) => parseInteger(t, w, 0, 86_400)),
    maxAttempts: get('max-attempts', (t, w) => parseInteger(t, w, 1, 10)),
    accessLog: get('access-log', parseBoolean) || raw('access-log-file').text !== undefined,
    accessLogFile: raw('access-log-file').text,
    logLevel: get('log-level', (t, w) => {
      if (!LOG_LEVELS.has(t)) throw new ConfigError(`${w}: ${JSON.stringify(t)} is not one of ${[...LOG_LEVELS].join(', ')}`);
      return t;
    }),
    workers: get('workers', (t, w) => parseInteger(t, w, 1, 64)),
    listenTls: optional(raw('listen-tls'), parseAddress),
    defaultCert: optional(raw('default-cert'), (t, w) => {
      if (!isCertName(t)) throw new ConfigError(`${w}: ${JSON.stringify(t)} is not a certificate name (lower-case letters, digits, - and ., 1 to 253 characters)`);
      return t;
    }),
    publicHttpsPort: get('public-https-port', (t, w) => parseInteger(t, w, 1, 65535)),
    tlsContextCache: get('tls-context-cache', (t, w) => parseInteger(t, w, 1, 1_000_000)),
    keyRing: raw('key-ring').text === undefined ? new Map() : get('key-ring', readKeyRing),
    acme: acmeConfig(raw),
    metricsPerApp: get('metrics-per-app', parseBoolean),
    listenTunnel: optional(raw('listen-tunnel'), parseAddress),
    tunnelCert: optional(raw('tunnel-cert'), (t, w) => {
      if (!isCertName(t)) throw new ConfigError(`${w}: ${JSON.stringify(t)} is not a certificate name (lower-case letters, digits, - and ., 1 to 253 characters)`);
      return t;
    }),
    tunnelAdvertise: optional(raw('tunnel-advertise'), (t, w) => {
      if (!/^https:\/\/[^/?#\s]+:\d{1,5}$/.test(t)) throw new ConfigError(`${w}: ${JSON.stringify(t)} must be https://HOST:PORT`);
      return t;
    }),
    tunnelMaxSessions: get('tunnel-max-sessions', (t, w) => parseInteger(t, w, 1, 1_000_000)),
    tunnelMaxSessionsPerInstance: get('tunnel-max-sessions-per-instance', (t, w) => parseInteger(t, w, 1, 1024)),
    tunnelConnectTimeoutMs: get('tunnel-connect-timeout', parseDuration),
  };
  if (config.listenTunnel !== undefined && config.tunnelCert === undefined) throw new ConfigError('--listen-tunnel needs --tunnel-cert (ROUTER_TUNNEL_CERT): the certs/ name agents verify');
  if (config.listenTunnel !== undefined && config.workers > 1) throw new ConfigError('--listen-tunnel cannot be combined with --workers > 1: an agent\'s sessions end in one worker while requests arrive at every worker; run one router process per core instead (README, "Agent tunnels and --workers")');
  if (config.listenTunnel !== undefined && config.tunnelAdvertise === undefined) {
    const { host, port } = config.listenTunnel;
    config.tunnelAdvertise = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  }
  if (config.workers > 1 && id.length > 59) throw new ConfigError(`${idRaw.what}: ${JSON.stringify(id)} must be at most 59 characters with --workers (worker ids are <id>-w<k>)`);
  for (const [key, what] of [['connectTimeoutMs', '--connect-timeout'], ['upstreamTimeoutMs', '--upstream-timeout'], ['startTimeoutMs', '--start-timeout'], ['digestCheckMs', '--digest-check'], ['requestHeaderTimeoutMs', '--request-header-timeout'], ['tunnelConnectTimeoutMs', '--tunnel-connect-timeout']] as const) {
    if (config[key] <= 0) throw new ConfigError(`${what}: must be more than 0`);
  }
  checkClientKeepAlive(config, raw('client-keepalive-timeout'), raw('shutdown-timeout'));
  return { help: false, config };
}
