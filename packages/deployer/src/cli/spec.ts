/**
 * The command line: every command, its positionals and flags, and the environment variable behind
 * each flag. Help text is generated from here, so the two cannot disagree.
 */
import { DURATION_EXAMPLES, HELP_WIDTH, PASSWORD_ENV, wrapText } from '@paas/registry';

export type FlagKind = 'string' | 'list' | 'boolean' | 'duration' | 'seconds' | 'integer';

export interface FlagSpec {
  name: string;
  kind: FlagKind;
  env: string;
  /** Placeholder in help ("URL", "DURATION"). */
  value?: string;
  help: string;
  /** Default as shown in help (the library holds the real defaults). */
  default?: string;
}

export type CommandName = 'app set' | 'register' | 'redeploy' | 'retire' | 'status' | 'cert set' | 'cert list' | 'cert rm' | 'tunnel-token create' | 'tunnel-token list' | 'tunnel-token rm' | 'maintenance on' | 'maintenance off' | 'ui' | 'table' | 'diff';

export interface CommandSpec {
  name: CommandName;
  /** e.g. ['<app>'] or ['<app>', '<id>'] or ['[<app>]'] */
  positionals: string[];
  summary: string;
  description: string[];
  flags: FlagSpec[];
}

export const GLOBAL_FLAGS: FlagSpec[] = [
  { name: 'etcd', kind: 'list', env: 'ETCD_ENDPOINTS', value: 'URL[,URL]', help: 'etcd endpoints (repeat or comma-separate)', default: 'http://127.0.0.1:2379' },
  { name: 'etcd-ca', kind: 'string', env: 'ETCD_CA', value: 'FILE', help: "PEM CA(s) that signed etcd's server certificate (https:// endpoints; default: the system's CAs)" },
  { name: 'etcd-cert', kind: 'string', env: 'ETCD_CERT', value: 'FILE', help: 'PEM client certificate for etcd (with --etcd-key); etcd takes its CN as the user without --etcd-user' },
  { name: 'etcd-key', kind: 'string', env: 'ETCD_KEY', value: 'FILE', help: 'PEM private key of --etcd-cert' },
  { name: 'etcd-user', kind: 'string', env: 'ETCD_USER', value: 'NAME', help: `etcd user; its password only from the environment variable ${PASSWORD_ENV}` },
  { name: 'prefix', kind: 'string', env: 'PAAS_PREFIX', value: 'PREFIX', help: 'key prefix of the routing data', default: '/paas' },
];

/** Not a flag: a password on the command line would show in `ps`. */
const PASSWORD_LINE = { left: `  env ${PASSWORD_ENV}`, help: 'password of --etcd-user' };

const routerTimeout: FlagSpec = {
  name: 'router-timeout',
  kind: 'duration',
  env: 'PAAS_DEPLOY_ROUTER_TIMEOUT',
  value: 'DURATION',
  help: 'how long a live router may stay behind a change before the command fails naming it',
  default: '10s',
};
const drainTimeout: FlagSpec = {
  name: 'drain-timeout',
  kind: 'duration',
  env: 'PAAS_DEPLOY_DRAIN_TIMEOUT',
  value: 'DURATION',
  help: 'how long to wait for requests in flight to draining instances before deleting them anyway',
  default: '30s',
};
const healthTimeout: FlagSpec = {
  name: 'health-timeout',
  kind: 'duration',
  env: 'PAAS_DEPLOY_HEALTH_TIMEOUT',
  value: 'DURATION',
  help: "how long a new instance may take to answer 2xx on the app's health check path",
  default: '30s',
};
const lockTtl: FlagSpec = {
  name: 'lock-ttl',
  kind: 'seconds',
  env: 'PAAS_DEPLOY_LOCK_TTL',
  value: 'DURATION',
  help: "TTL of the app lock's lease: how long a crashed deployer blocks the next run",
  default: '10s',
};
const allowNoRouters: FlagSpec = {
  name: 'allow-no-routers',
  kind: 'boolean',
  env: 'PAAS_DEPLOY_ALLOW_NO_ROUTERS',
  help: 'proceed when no router is live (nothing confirms the change)',
};
const historyHost: FlagSpec = { name: 'host', kind: 'string', env: 'PAAS_DEPLOY_HOST', value: 'HOST', help: 'only what a request for HOST may meet: its routes (exact, wildcard, host-less), override, certificates' };
const historyKeyRing: FlagSpec = { name: 'key-ring', kind: 'string', env: 'PAAS_KEY_RING', value: 'FILE', help: "the routers' key ring: certificates with keyEnc are rejected without it, as by routers" };
const release: FlagSpec = { name: 'release', kind: 'string', env: 'PAAS_DEPLOY_RELEASE', value: 'R', help: 'release label stored on the instances (and used in generated ids)' };

export const COMMANDS: CommandSpec[] = [
  {
    name: 'app set',
    positionals: ['<app>'],
    summary: 'create or update an app record (which hosts and paths go to the app)',
    description: [
      'Routes are every --host combined with every --path (a host alone without --path,',
      'host-less routes with --path only). Without --host and --path the routes are kept.',
      'Fields not given (balance, health check, unknown fields) are kept from the existing record.',
      'The record is validated before writing, written with compare-and-swap, and the command',
      'waits until the live routers have applied it.',
    ],
    flags: [
      { name: 'host', kind: 'list', env: 'PAAS_APP_HOSTS', value: 'HOST', help: 'exact host or *.suffix (repeat, or comma-separate in the env)' },
      { name: 'path', kind: 'list', env: 'PAAS_APP_PATHS', value: 'PATH', help: 'path prefix (repeat)' },
      { name: 'balance', kind: 'string', env: 'PAAS_APP_BALANCE', value: 'STRATEGY', help: 'round-robin, least-connections or random' },
      { name: 'health-check-path', kind: 'string', env: 'PAAS_APP_HEALTH_CHECK_PATH', value: 'PATH', help: 'path routers and the deployer check on instances', default: '/healthz' },
      { name: 'health-check-interval', kind: 'duration', env: 'PAAS_APP_HEALTH_CHECK_INTERVAL', value: 'DURATION', help: "routers' active check interval" },
      { name: 'health-check-timeout', kind: 'duration', env: 'PAAS_APP_HEALTH_CHECK_TIMEOUT', value: 'DURATION', help: 'timeout of one check' },
      routerTimeout,
    ],
  },
  {
    name: 'register',
    positionals: ['<app>'],
    summary: 'add one instance (ready after its health check passes) and wait for the routers',
    description: [
      'Health-checks the instance, writes it (compare-and-swap), and waits until every live router',
      'has applied it; a router that stays behind past --router-timeout fails the command and the',
      'instance is removed again. An instance already registered with the same URL is reused.',
    ],
    flags: [
      { name: 'url', kind: 'string', env: 'PAAS_DEPLOY_URL', value: 'URL', help: 'instance origin, http(s)://host:port' },
      { name: 'id', kind: 'string', env: 'PAAS_DEPLOY_ID', value: 'ID', help: 'instance id (default: <release>-<random>)' },
      release,
      { name: 'weight', kind: 'integer', env: 'PAAS_DEPLOY_WEIGHT', value: 'N', help: 'balancing weight 1..100' },
      { name: 'state', kind: 'string', env: 'PAAS_DEPLOY_STATE', value: 'STATE', help: 'ready (health-checked first) or starting (no traffic, no check)', default: 'ready' },
      healthTimeout,
      routerTimeout,
      lockTtl,
      allowNoRouters,
    ],
  },
  {
    name: 'redeploy',
    positionals: ['<app>'],
    summary: 'replace every instance of an app with new ones, with zero downtime',
    description: [
      'Steps: take the app lock; health-check the new instances; write them ready (one',
      'compare-and-swap transaction, revision R1); wait until every live router reports R1;',
      'mark every other instance draining (R2) and wait for the routers; wait until no router',
      'reports a request in flight to them (bounded by --drain-timeout); delete them.',
      'Any failure before the old instances are marked draining removes the new ones again.',
      'Re-running after a crash finishes the job: instances with the same URL are reused and',
      'instances left draining are drained and deleted.',
    ],
    flags: [
      { name: 'url', kind: 'list', env: 'PAAS_DEPLOY_URLS', value: 'URL', help: 'new instance origin (repeat; comma-separate in the env)' },
      release,
      healthTimeout,
      routerTimeout,
      drainTimeout,
      lockTtl,
      allowNoRouters,
    ],
  },
  {
    name: 'retire',
    positionals: ['<app>', '<id>'],
    summary: 'drain one instance and delete it once nothing is in flight to it',
    description: [
      'Marks the instance draining, waits until every live router has applied that and reports',
      'no request in flight to it (bounded by --drain-timeout), then deletes it.',
      'Refuses to retire the last ready instance of an app unless --force is given.',
    ],
    flags: [
      routerTimeout,
      drainTimeout,
      lockTtl,
      allowNoRouters,
      { name: 'force', kind: 'boolean', env: 'PAAS_DEPLOY_FORCE', help: 'retire even the last ready instance' },
    ],
  },
  {
    name: 'status',
    positionals: ['[<app>]'],
    summary: 'the fleet in one screen: routers, their revision, lag and digest; apps and instances',
    description: [
      'Routers: applied revision, lag behind etcd, table digest (marked "!" when it differs from',
      'peers at the same revision), rejected records. Apps: routes, and each instance with its',
      'state, release, URL and requests in flight summed over routers.',
    ],
    flags: [{ name: 'json', kind: 'boolean', env: 'PAAS_DEPLOY_JSON', help: 'print JSON instead of tables' }],
  },
  {
    name: 'cert set',
    positionals: ['<name>'],
    summary: 'write a certificate and its key to <prefix>/certs/<name>, checked as routers check it',
    description: [
      'The record is judged with the routers\' own validation before anything is written: PEM',
      'certificates (leaf first, then intermediates), a key matching the leaf, DNS subjectAltNames,',
      'not expired. With --key-ring and --kid the key is written encrypted (keyEnc, AES-256-GCM) with',
      'that key of the ring; routers need the same key ring (paas-router --key-ring).',
    ],
    flags: [
      { name: 'cert', kind: 'string', env: 'PAAS_CERT_FILE', value: 'FILE', help: 'PEM certificate chain, leaf first' },
      { name: 'key', kind: 'string', env: 'PAAS_CERT_KEY_FILE', value: 'FILE', help: 'PEM private key of the leaf' },
      { name: 'key-ring', kind: 'string', env: 'PAAS_KEY_RING', value: 'FILE', help: 'JSON key ring { "<kid>": "<base64 of 32 bytes>" } to encrypt the key with' },
      { name: 'kid', kind: 'string', env: 'PAAS_KEY_RING_KID', value: 'KID', help: 'which key of --key-ring encrypts it' },
    ],
  },
  {
    name: 'cert list',
    positionals: [],
    summary: 'the certificate records: name, hosts, notAfter, days left',
    description: ['Judged by their certificate alone (an encrypted key needs the routers\' key ring).'],
    flags: [],
  },
  {
    name: 'cert rm',
    positionals: ['<name>'],
    summary: 'delete a certificate record',
    description: ['Routers stop serving it as soon as they apply the deletion.'],
    flags: [],
  },
  {
    name: 'tunnel-token create',
    positionals: ['<app>'],
    summary: 'make a token for paas-agent serving <app> through a tunnel; prints the secret once',
    description: [
      'Writes tunnel-tokens/<app>/<token-id> holding only the SHA-256 of the secret (and its expiry):',
      'the secret is printed once and stored nowhere. Give it to the agent in PAAS_AGENT_TOKEN.',
      'The token lets an agent serve instances of <app> only.',
    ],
    flags: [{ name: 'expires', kind: 'duration', env: 'PAAS_DEPLOY_TOKEN_EXPIRES', value: 'DURATION', help: 'the token (and the sessions opened with it) ends after this, e.g. 720h (30 days)' }],
  },
  {
    name: 'tunnel-token list',
    positionals: ['<app>'],
    summary: "list an app's tunnel tokens (ids and expiry; secrets are never stored)",
    description: [],
    flags: [{ name: 'json', kind: 'boolean', env: 'PAAS_DEPLOY_JSON', help: 'print JSON instead of a table' }],
  },
  {
    name: 'tunnel-token rm',
    positionals: ['<app>', '<token-id>'],
    summary: 'revoke a tunnel token: routers close the sessions opened with it',
    description: [],
    flags: [],
  },
  {
    name: 'maintenance on',
    positionals: ['<host>'],
    summary: 'answer every request for <host> with a maintenance page, for a while or until off',
    description: [
      'Writes the override record overrides/<host> = {"maintenance": {"status": N, "message": TEXT}}',
      '(judged by the routers\' own parser first) and waits for the live routers to apply it. With',
      '--for it is written on a lease nobody keeps alive, so it ends by itself; status lists it.',
    ],
    flags: [
      { name: 'status', kind: 'integer', env: 'PAAS_DEPLOY_MAINTENANCE_STATUS', value: 'N', help: 'the status code of the answers (200 to 599)', default: '503' },
      { name: 'message', kind: 'string', env: 'PAAS_DEPLOY_MAINTENANCE_MESSAGE', value: 'TEXT', help: 'the body of the answers', default: 'Down for maintenance' },
      { name: 'for', kind: 'duration', env: 'PAAS_DEPLOY_MAINTENANCE_FOR', value: 'DURATION', help: 'end by itself after this (an etcd lease), e.g. 30m' },
      routerTimeout,
    ],
  },
  {
    name: 'table',
    positionals: [],
    summary: "the routing table as routers build it, now or at an earlier revision of etcd's history",
    description: [
      'Built by the routers\' own code from the records at that revision: routes and the instances',
      'behind them (state, weight), overrides, certificates (hosts, notAfter, fingerprint), and',
      'rejected records with their key and reason; the digest is the one routers report. etcd',
      'keeps history back to its last compaction. It keeps no times: a time (RFC 3339, e.g.',
      "2026-11-29T14:02:00Z) is dated by the routers' status writes in etcd's history (each router",
      'writes after every change it applies and every few seconds): the newest revision whose last',
      'status write is at or before it. Certificates are judged with the clock of now.',
    ],
    flags: [
      { name: 'at', kind: 'string', env: 'PAAS_DEPLOY_AT', value: 'REVISION|TIME', help: 'the etcd revision, or RFC 3339 time, to show (default: now)' },
      historyHost,
      historyKeyRing,
      { name: 'json', kind: 'boolean', env: 'PAAS_DEPLOY_JSON', help: 'print JSON instead of tables' },
    ],
  },
  {
    name: 'diff',
    positionals: ['<from>', '[<to>]'],
    summary: 'what routing changed between two revisions or times (<to> defaults to now)',
    description: [
      'Each of <from> and <to> is an etcd revision or an RFC 3339 time, dated as for table --at.',
      'Compares the routing tables routers build at the two revisions, grouped by host: routes,',
      'instances and their state and weight, app settings, overrides, certificates (by fingerprint',
      'and notAfter), then rejected records. Lines start with + (added), - (removed) or ~ (changed).',
      'Status records, locks and acme/ are not routing: a revision touching only those changes nothing.',
    ],
    flags: [
      historyHost,
      historyKeyRing,
      { name: 'json', kind: 'boolean', env: 'PAAS_DEPLOY_JSON', help: 'print JSON instead of text' },
    ],
  },
  {
    name: 'maintenance off',
    positionals: ['<host>'],
    summary: "delete <host>'s maintenance override and wait for the routers to apply it",
    description: ['An override that sends the host to an app is left alone (delete it with etcdctl).'],
    flags: [routerTimeout],
  },
  {
    name: 'ui',
    positionals: [],
    summary: 'serve the fleet page: routers, apps, instances and problems, live from one etcd watch',
    description: [
      'One web page with what status prints and more: routers (revision, lag, digest, load), apps',
      'and their instances (state, and per router health and requests in flight), the records',
      'routers reject or warn about, overrides, certificates and tunnels. One etcd watch of the',
      'prefix feeds every open page (Server-Sent Events); GET /fleet.json is the same data as JSON.',
      'The page has no login: it serves only where --listen says. Runs until Ctrl-C.',
    ],
    flags: [{ name: 'listen', kind: 'string', env: 'PAAS_DEPLOY_UI_LISTEN', value: 'HOST:PORT', help: 'address to serve the page on (an IP address and a port)', default: '127.0.0.1:8081' }],
  },
];

export function findCommand(name: string): CommandSpec | undefined {
  return COMMANDS.find((c) => c.name === name);
}

const HELP_FLAG = { left: '  -h, --help', help: 'this help' };
const EXIT_CODES = 'Exit codes: 0 ok, 1 failed (and rolled back where it wrote), 2 bad usage, 130 interrupted (Ctrl-C).';

const VERSION_FLAG = { left: '  --version', help: 'the version, and exit' };

/** Two columns: the flag and what it does (wrapped to 100 columns); its env variable and default below. */
function flagLines(flags: FlagSpec[], extra: { left: string; help: string }[] = []): string[] {
  const rows = [
    ...flags.map((f) => ({
      left: `  --${f.name}${f.value ? ` ${f.value}` : ''}`,
      help: f.help,
      more: [`env ${f.env}`, ...(f.default ? [`default ${f.default}`] : [])].join(', '),
    })),
    ...extra.map((e) => ({ ...e, more: '' })),
  ];
  const width = Math.max(...rows.map((r) => r.left.length)) + 2;
  const indent = ' '.repeat(width);
  return rows.flatMap((r) => [...wrapText(r.help, indent, HELP_WIDTH, r.left.padEnd(width)), ...(r.more ? [`${indent}${r.more}`] : [])]);
}

export function usageLine(c: CommandSpec): string {
  const required = c.flags.filter((f) => ((c.name === 'register' || c.name === 'redeploy') && f.name === 'url') || (c.name === 'cert set' && (f.name === 'cert' || f.name === 'key')));
  const req = required.map((f) => `--${f.name} ${f.value}${f.kind === 'list' ? ' [--url URL ...]' : ''}`);
  if (c.name === 'cert set') req.push('[--key-ring FILE --kid KID]');
  return ['paas-deploy', c.name, ...c.positionals, ...req, '[flags]'].join(' ');
}

export function commandHelp(c: CommandSpec): string {
  return [
    `Usage: ${usageLine(c)}`,
    '',
    `${c.summary[0]!.toUpperCase()}${c.summary.slice(1)}.`,
    ...c.description,
    '',
    ...(c.flags.length > 0 ? ['Flags:', ...flagLines(c.flags), ''] : []),
    'Global flags:',
    ...flagLines(GLOBAL_FLAGS, [PASSWORD_LINE, HELP_FLAG, VERSION_FLAG]),
    '',
    `Durations: Go syntax, ${DURATION_EXAMPLES}; a bare number is refused except 0.`,
    'Boolean env: 1/true/yes or 0/false/no.',
    EXIT_CODES,
  ].join('\n');
}

export function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return [
    'Usage: paas-deploy [--etcd URL] [--prefix PREFIX] <command> [args] [flags]',
    '',
    'Registers and retires app instances with zero downtime, gated on what every router reports',
    'having applied (the status records under <prefix>/routers/).',
    '',
    'Commands:',
    ...COMMANDS.flatMap((c) => wrapText(c.summary, ' '.repeat(width + 2), HELP_WIDTH, `  ${c.name.padEnd(width)}`)),
    '',
    'Global flags:',
    ...flagLines(GLOBAL_FLAGS, [PASSWORD_LINE, { left: HELP_FLAG.left, help: 'this help; "paas-deploy <command> --help" for a command\'s flags' }, VERSION_FLAG]),
    '',
    EXIT_CODES,
  ].join('\n');
}
