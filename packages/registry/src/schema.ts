/**
 * The record shapes of the contract: one TypeBox schema per key kind. The TypeScript types, the
 * validator (parse.ts) and the examples in docs/CONTRACT.md all come from here; a test checks the
 * docs against these examples. Objects allow unknown fields (forward compatibility).
 */
import { Type, type Static } from '@sinclair/typebox';
import { NAME_PATTERN } from './names.js';

const Name = Type.String({ pattern: NAME_PATTERN, description: 'lower-case name, 1-63 chars' });

export const BALANCE_STRATEGIES = ['round-robin', 'least-connections', 'random'] as const;
export const INSTANCE_STATES = ['starting', 'ready', 'draining'] as const;

export const RouteSchema = Type.Object({
  host: Type.Optional(Type.String({ maxLength: 253, description: 'exact host, or *.suffix for any subdomain' })),
  path: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, pattern: '^/[^?#\\s]*$', description: 'path prefix, default /' })),
}, { description: 'at least one of host and path: a catch-all is written {"path": "/"}' });

export const HealthCheckSchema = Type.Object({
  path: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, pattern: '^/[^#\\s]*$', default: '/healthz' })),
  intervalMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 3_600_000, default: 2000 })),
  timeoutMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 60_000, default: 1000 })),
});

/** An app's TLS behaviour at the edge (docs/CONTRACT.md, "App record: tls"). */
export const AppTlsSchema = Type.Object({
  redirect: Type.Optional(Type.Boolean({ default: false, description: 'plain-HTTP requests for the app get 308 to https' })),
  hsts: Type.Optional(
    Type.String({ minLength: 1, maxLength: 256, pattern: '^[\\x20-\\x7e]+$', description: 'value of Strict-Transport-Security on the app\'s answers over TLS' }),
  ),
  acme: Type.Optional(Type.Boolean({ default: false, description: 'the fleet obtains a certificate for the app\'s exact hosts' })),
});

export const AppRecordSchema = Type.Object(
  {
    routes: Type.Array(RouteSchema, { maxItems: 1000 }),
    balance: Type.Optional(Type.Union(BALANCE_STRATEGIES.map((s) => Type.Literal(s)), { default: 'round-robin' })),
    healthCheck: Type.Optional(HealthCheckSchema),
    tls: Type.Optional(AppTlsSchema),
  },
  {
    examples: [
      {
        routes: [{ host: 'www.mango.com' }, { host: '*.mango.com', path: '/api' }, { path: '/mango' }],
        balance: 'round-robin',
        healthCheck: { path: '/healthz', intervalMs: 2000 },
      },
    ],
  },
);

export const InstanceRecordSchema = Type.Object(
  {
    url: Type.String({ maxLength: 2048, description: 'http:// or https:// origin with a port' }),
    state: Type.Union(INSTANCE_STATES.map((s) => Type.Literal(s))),
    release: Type.Optional(Type.String({ maxLength: 256 })),
    weight: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 1 })),
  },
  { examples: [{ url: 'http://10.0.0.3:8080', state: 'ready', release: 'v2', weight: 1 }] },
);

export const MaintenanceSchema = Type.Object({
  status: Type.Integer({ minimum: 200, maximum: 599 }),
  message: Type.String({ maxLength: 4096 }),
});

export const OverrideRecordSchema = Type.Union(
  [
    Type.Object({ maintenance: MaintenanceSchema }),
    Type.Object({ app: Name }),
  ],
  { examples: [{ maintenance: { status: 503, message: 'Back at 14:00' } }, { app: 'mango-canary' }] },
);

export const CERT_KEY_ALGORITHMS = ['A256GCM'] as const;

export const EncryptedKeySchema = Type.Object({
  kid: Type.String({ minLength: 1, maxLength: 64, description: 'which key of the routers\' key ring (--key-ring) encrypted it' }),
  alg: Type.Union(CERT_KEY_ALGORITHMS.map((a) => Type.Literal(a))),
  iv: Type.String({ maxLength: 64, description: 'base64 of the 12-byte GCM nonce' }),
  data: Type.String({ maxLength: 65_536, description: 'base64 of the ciphertext of the key\'s PEM text, then the 16-byte GCM tag' }),
});

/** Exactly one of `key` and `keyEnc` (checked in certs.ts, with the certificate itself). */
export const CertRecordSchema = Type.Object(
  {
    cert: Type.String({ minLength: 1, maxLength: 65_536, description: 'PEM: the leaf first, then intermediates' }),
    key: Type.Optional(Type.String({ minLength: 1, maxLength: 65_536, description: 'the private key as PEM' })),
    keyEnc: Type.Optional(EncryptedKeySchema),
    source: Type.Optional(
      Type.String({ pattern: '^[a-z0-9-]{1,32}$', description: 'who issued it; absent means "etcd" (an operator\'s record); the ACME issuer writes "acme"' }),
    ),
  },
  {
    examples: [
      { cert: '-----BEGIN CERTIFICATE-----\n...leaf first, then intermediates...\n-----END CERTIFICATE-----\n', key: '-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n' },
    ],
  },
);

export const RejectedSchema = Type.Object({
  key: Type.String(),
  revision: Type.String(),
  error: Type.String(),
  kept: Type.Optional(
    Type.Union([Type.String({ pattern: '^[0-9]+$' }), Type.Null()], {
      description: 'the table holds the key as of this revision (its last good value), or nothing (null)',
    }),
  ),
});

/** A record accepted with fields the schema does not know: most often a typo, which is otherwise silently ignored. */
export const RecordWarningSchema = Type.Object({
  key: Type.String(),
  revision: Type.String(),
  unknownFields: Type.Array(Type.String(), { description: 'paths of the fields ignored, e.g. routes.0.hots' }),
});

export const INSTANCE_HEALTH_PROBLEMS = ['ejected', 'failing'] as const;

/** An instance the router does not send traffic to while it has a healthy alternative. */
export const UnhealthyInstanceSchema = Type.Object({
  instance: Type.String({ description: '"<app>/<id>"' }),
  problem: Type.Union(INSTANCE_HEALTH_PROBLEMS.map((s) => Type.Literal(s)), {
    description: 'ejected: connections to it failed (passive check); failing: its health check fails (active check)',
  }),
  reason: Type.String(),
  since: Type.String({ description: 'ISO time the problem began' }),
  until: Type.Optional(Type.String({ description: 'ejected: ISO time the ejection ends (it is tried again then)' })),
});

/** What a router's own process is doing, sampled every few seconds (issue 13: "know when it is over capacity"). */
export const RouterLoadSchema = Type.Object({
  requestsPerSecond: Type.Number({ minimum: 0, description: 'answers given per second over the last sample period (every listener, WebSocket upgrades included)' }),
  connections: Type.Integer({ minimum: 0, description: 'client connections open on the traffic listeners' }),
  eventLoopUtilization: Type.Number({ minimum: 0, maximum: 1, description: 'share of the period the event loop was busy' }),
  cpu: Type.Number({ minimum: 0, description: 'CPU used by the process over the period, in cores' }),
  rssBytes: Type.Integer({ minimum: 0 }),
  loadAverage: Type.Number({ minimum: 0, description: "the machine's 1-minute load average" }),
  sampledAt: Type.String(),
});

export const RouterStatusRecordSchema = Type.Object(
  {
    revision: Type.String({ pattern: '^[0-9]+$', description: 'etcd revision fully applied' }),
    currentRevision: Type.Optional(
      Type.String({ pattern: '^[0-9]+$', description: 'the router is known to have every change in its watched range up to this revision (at least revision; moves with etcd progress notices)' }),
    ),
    digest: Type.String({ description: 'hash of the applied table; equal on routers with equal records' }),
    routes: Type.Integer({ minimum: 0 }),
    rejected: Type.Array(RejectedSchema, { description: 'in the record under routers/: at most 20 (the newest), sorted by key; /status lists all' }),
    rejectedCount: Type.Optional(Type.Integer({ minimum: 0, description: 'how many records are rejected, listed or not' })),
    inflight: Type.Record(Type.String(), Type.Integer({ minimum: 0 }), {
      description: '"<app>/<id>" -> open requests and WebSockets, always present for draining instances',
    }),
    inflightComplete: Type.Optional(
      Type.Boolean({ description: 'false: the record could not hold every entry; an instance not listed has an unknown count, not 0' }),
    ),
    conflicts: Type.Optional(Type.Array(Type.Object({ host: Type.String(), path: Type.String(), app: Type.String(), winner: Type.String() }))),
    conflictsCount: Type.Optional(Type.Integer({ minimum: 0, description: 'how many route conflicts there are, listed or not' })),
    certificatesExpiringSoon: Type.Optional(
      Type.Integer({ minimum: 0, description: 'how many served certificates expire within 14 days (the list is in /status)' }),
    ),
    warnings: Type.Optional(Type.Array(RecordWarningSchema, { description: 'in the record under routers/: at most 20 (the newest), sorted by key; /status lists all' })),
    warningsCount: Type.Optional(Type.Integer({ minimum: 0, description: 'how many accepted records have warnings, listed or not' })),
    unhealthy: Type.Optional(Type.Array(UnhealthyInstanceSchema, { description: 'in the record under routers/: at most 20, sorted by instance; /status lists all' })),
    unhealthyCount: Type.Optional(Type.Integer({ minimum: 0, description: 'how many instances are ejected or failing, listed or not' })),
    startedAt: Type.Optional(Type.String()),
    updatedAt: Type.Optional(Type.String()),
    tunnel: Type.Optional(Type.String({ description: "https://HOST:PORT of the router's tunnel listener, when it has one" })),
    load: Type.Optional(RouterLoadSchema),
  },
  {
    examples: [
      {
        revision: '1042',
        digest: '9f2c4e1a7b3d5f60',
        routes: 3,
        rejected: [{ key: '/paas/instances/mango/web-3', revision: '1040', error: 'url: must be an http:// or https:// origin with a port' }],
        inflight: { 'mango/web-1': 0 },
      },
    ],
  },
);

/** `tunnel-tokens/<app>/<token-id>`: only the hash of an agent's secret (docs/CONTRACT.md, "Tunnel records"). */
export const TunnelTokenRecordSchema = Type.Object(
  {
    sha256: Type.String({ pattern: '^[0-9a-f]{64}$', description: 'hex SHA-256 of the secret' }),
    expiresAt: Type.Optional(Type.String({ maxLength: 64, description: 'ISO-8601; the token and its sessions end then' })),
  },
  { examples: [{ sha256: '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08', expiresAt: '2027-01-01T00:00:00.000Z' }] },
);

/** `tunnels/<app>/<id>/<router-id>`: that router holds `connections` sessions from the instance's agent. */
export const TunnelPresenceRecordSchema = Type.Object(
  {
    connections: Type.Integer({ minimum: 1 }),
    since: Type.String({ description: 'ISO-8601: when the first of them opened' }),
  },
  { examples: [{ connections: 2, since: '2026-11-29T20:00:00.000Z' }] },
);

export type Route = Static<typeof RouteSchema>;
export type HealthCheck = Static<typeof HealthCheckSchema>;
export type AppTls = Static<typeof AppTlsSchema>;
export type AppRecord = Static<typeof AppRecordSchema>;
export type BalanceStrategy = (typeof BALANCE_STRATEGIES)[number];
export type InstanceState = (typeof INSTANCE_STATES)[number];
export type InstanceRecord = Static<typeof InstanceRecordSchema>;
export type OverrideRecord = Static<typeof OverrideRecordSchema>;
export type RouterStatusRecord = Static<typeof RouterStatusRecordSchema>;
export type RouterLoad = Static<typeof RouterLoadSchema>;
export type EncryptedKey = Static<typeof EncryptedKeySchema>;
export type CertRecord = Static<typeof CertRecordSchema>;
export type Rejected = Static<typeof RejectedSchema>;

/**
 * The fleet's ACME state, under `<prefix>/acme/` (outside the routers' watched range; see
 * docs/CONTRACT.md, "ACME state"). One account per directory URL, its key encrypted with the
 * key ring when the routers have one.
 */
export const AcmeAccountSchema = Type.Object({
  directory: Type.String({ minLength: 1, maxLength: 2048 }),
  email: Type.String({ minLength: 1, maxLength: 254 }),
  key: Type.Optional(Type.String({ minLength: 1, maxLength: 65_536, description: 'the account\'s private key as PEM' })),
  keyEnc: Type.Optional(EncryptedKeySchema),
});

/** A pending HTTP-01 challenge, on the ordering router's lock lease: any router answers it. */
export const AcmeChallengeSchema = Type.Object({
  host: Type.String({ minLength: 1, maxLength: 253 }),
  keyAuthorization: Type.String({ minLength: 1, maxLength: 1024 }),
});

/** What the fleet knows of one host's orders: written by the lock holder only, kept across restarts. */
export const AcmeHostStateSchema = Type.Object({
  /** Failed attempts in a row (0 after an issue). */
  failures: Type.Integer({ minimum: 0 }),
  lastError: Type.Optional(Type.String({ maxLength: 2048 })),
  lastErrorAt: Type.Optional(Type.String()),
  /** No attempt before this (ISO-8601): the back-off after a failure. */
  nextAttemptAt: Type.Optional(Type.String()),
  /** The ACME order in progress: a router taking the lock after a crash resumes it. */
  orderUrl: Type.Optional(Type.String({ maxLength: 2048 })),
  orderedBy: Type.Optional(Type.String({ maxLength: 253 })),
  issuedAt: Type.Optional(Type.String()),
});

export type AcmeAccount = Static<typeof AcmeAccountSchema>;
export type AcmeChallenge = Static<typeof AcmeChallengeSchema>;
export type AcmeHostState = Static<typeof AcmeHostStateSchema>;
export type RecordWarning = Static<typeof RecordWarningSchema>;
export type UnhealthyInstance = Static<typeof UnhealthyInstanceSchema>;
export type TunnelTokenRecord = Static<typeof TunnelTokenRecordSchema>;
export type TunnelPresenceRecord = Static<typeof TunnelPresenceRecordSchema>;
