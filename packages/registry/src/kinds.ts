/**
 * The kinds of keys under the prefix, one declaration each: its directory, the shape of the
 * rest of the key, and for the records routers apply, the parser of the value (from the TypeBox
 * schema). keys.ts (classifying a key), parseRecord below and the router's table adapters
 * (packages/router/src/records/table-adapters.ts) all read these declarations, so a new kind of
 * record is one entry here and one adapter there, and no switch anywhere.
 */
import { DEFAULT_PARSE_CONTEXT, type ParseContext } from './certificate.js';
import { CERT_NAME_PATTERN, hostError, isCertName, isName, NAME_PATTERN } from './names.js';
import { parseAppRecord, parseCertRecord, parseInstanceRecord, parseOverrideRecord, TUNNEL_SCHEME, type CertificateValue, type ParseResult } from './parse.js';
import type { KeyLayout } from './keys.js';
import type { AppRecord, InstanceRecord, OverrideRecord } from './schema.js';

export type AppRef = { kind: 'app'; app: string };
export type InstanceRef = { kind: 'instance'; app: string; id: string };
export type OverrideRef = { kind: 'override'; host: string };
export type RouterRef = { kind: 'router'; id: string };
export type RolloutRef = { kind: 'rollout'; app: string };
export type CertRef = { kind: 'cert'; name: string };
export type AcmeRef = { kind: 'acme'; path: string };
export type TunnelTokenRef = { kind: 'tunnel-token'; app: string; tokenId: string };
export type TunnelPresenceRef = { kind: 'tunnel'; app: string; id: string; router: string };
export type KeyRef = AppRef | InstanceRef | OverrideRef | RouterRef | RolloutRef | CertRef | AcmeRef | TunnelTokenRef | TunnelPresenceRef;

/** One directory under the prefix. */
export interface KeyKind<R extends KeyRef = KeyRef> {
  readonly kind: R['kind'];
  readonly dir: string;
  /** Reads what follows `<dir>/`: the key's names, or why the key does not fit the layout. */
  ref(tail: string): R | string;
}

/** A directory of records that routers watch and apply; it must sort inside the watched range. */
export interface RecordKind<R extends KeyRef = KeyRef, V = unknown> extends KeyKind<R> {
  /** Parses and validates a value; never throws. `ctx`: what certificates are judged with (the others ignore it). */
  value(raw: Uint8Array | string, ctx: ParseContext): ParseResult<V>;
}

const nameError = (what: string, name: string) => `${what} ${JSON.stringify(name)} does not match ${NAME_PATTERN}`;
/** Most directories hold one name per key. */
const single = (tail: string) => tail !== '' && !tail.includes('/');

const appKind: RecordKind<AppRef, AppRecord> = {
  kind: 'app',
  dir: 'apps',
  ref: (tail) => (!single(tail) ? 'expected apps/<app>' : !isName(tail) ? nameError('app name', tail) : { kind: 'app', app: tail }),
  value: parseAppRecord,
};

const instanceKind: RecordKind<InstanceRef, InstanceRecord> = {
  kind: 'instance',
  dir: 'instances',
  ref(tail) {
    const cut = tail.indexOf('/');
    const app = tail.slice(0, cut);
    const id = tail.slice(cut + 1);
    if (cut <= 0 || id === '' || id.includes('/')) return 'expected instances/<app>/<id>';
    if (!isName(app)) return nameError('app name', app);
    if (!isName(id)) return nameError('instance id', id);
    return { kind: 'instance', app, id };
  },
  value: parseInstanceRecord,
};

const overrideKind: RecordKind<OverrideRef, OverrideRecord> = {
  kind: 'override',
  dir: 'overrides',
  ref: (tail) => (!single(tail) ? 'expected overrides/<host>' : hostError(tail, false) ?? { kind: 'override', host: tail }),
  value: parseOverrideRecord,
};

/** Certificates (docs/CONTRACT.md, "Certificate record"): "certs" sorts between "apps" and "instances". */
const certKind: RecordKind<CertRef, CertificateValue> = {
  kind: 'cert',
  dir: 'certs',
  ref: (tail) => (!single(tail) ? 'expected certs/<name>' : !isCertName(tail) ? `certificate name ${JSON.stringify(tail)} does not match ${CERT_NAME_PATTERN}` : { kind: 'cert', name: tail }),
  value: parseCertRecord,
};

const routerKind: KeyKind<RouterRef> = {
  kind: 'router',
  dir: 'routers',
  ref: (tail) => (!single(tail) ? 'expected routers/<router-id>' : { kind: 'router', id: tail }),
};

/** Deployer locks: "rollouts" sorts after "overrides/", so routers never watch it. */
const rolloutKind: KeyKind<RolloutRef> = {
  kind: 'rollout',
  dir: 'rollouts',
  ref: (tail) => (!single(tail) || !isName(tail) ? 'expected rollouts/<app>' : { kind: 'rollout', app: tail }),
};

/** The fleet's ACME state (account, locks, challenges, per-host state): "acme" sorts before "apps", so routers never watch it. */
const acmeKind: KeyKind<AcmeRef> = {
  kind: 'acme',
  dir: 'acme',
  ref: (tail) => (tail === '' ? 'expected acme/<kind>/<name>' : { kind: 'acme', path: tail }),
};

/** The names of a key under `dir/`, split on '/', each a DNS label; or why not. */
function names(tail: string, count: number, what: readonly string[], layout: string): string[] | string {
  const parts = tail.split('/');
  if (parts.length !== count) return `expected ${layout}`;
  for (let i = 0; i < count; i++) if (!isName(parts[i]!)) return nameError(what[i]!, parts[i]!);
  return parts;
}

/** Agents' token hashes: "tunnel-tokens" sorts after "routers/", so routers never watch it with the table. */
const tunnelTokenKind: KeyKind<TunnelTokenRef> = {
  kind: 'tunnel-token',
  dir: 'tunnel-tokens',
  ref(tail) {
    const n = names(tail, 2, ['app name', 'token id'], 'tunnel-tokens/<app>/<token-id>');
    return typeof n === 'string' ? n : { kind: 'tunnel-token', app: n[0]!, tokenId: n[1]! };
  },
};

/** Which router holds a tunnel session to which instance, on that router's lease; never watched by routers. */
const tunnelKind: KeyKind<TunnelPresenceRef> = {
  kind: 'tunnel',
  dir: 'tunnels',
  ref(tail) {
    const n = names(tail, 3, ['app name', 'instance id', 'router id'], 'tunnels/<app>/<id>/<router-id>');
    return typeof n === 'string' ? n : { kind: 'tunnel', app: n[0]!, id: n[1]!, router: n[2]! };
  },
};

/** The records routers apply, by kind. */
export const RECORD_KINDS = { app: appKind, instance: instanceKind, override: overrideKind, cert: certKind } as const;
/** Every directory of the layout. */
export const KEY_KINDS: readonly KeyKind[] = [appKind, instanceKind, overrideKind, certKind, routerKind, rolloutKind, acmeKind, tunnelTokenKind, tunnelKind];

export type RecordKindName = keyof typeof RECORD_KINDS;
export type RecordRef = Extract<KeyRef, { kind: RecordKindName }>;
export type RecordValue<K extends RecordKindName> = (typeof RECORD_KINDS)[K] extends RecordKind<KeyRef, infer V> ? V : never;
/** A key's names and its parsed value, e.g. `{ ref: { kind: 'app', app }, value }`. */
export type ParsedRecord = { [K in RecordKindName]: { ref: Extract<KeyRef, { kind: K }>; value: RecordValue<K> } }[RecordKindName];

const recordKinds = new Map<string, RecordKind>(Object.values(RECORD_KINDS).map((k) => [k.kind, k as RecordKind]));

/** Parses the value of a key already classified (KeyLayout.parse). */
export function parseRecord(ref: KeyRef, raw: Uint8Array | string, ctx: ParseContext = DEFAULT_PARSE_CONTEXT): ParseResult<ParsedRecord> {
  const kind = recordKinds.get(ref.kind);
  if (kind === undefined) return { ok: false, error: `${ref.kind} keys are not routing records` };
  const p = kind.value(raw, ctx);
  // A tunnel instance is reached by its own id: a url naming another would route to that one's agent.
  if (p.ok && ref.kind === 'instance' && (p.value as InstanceRecord).url.startsWith(TUNNEL_SCHEME) && (p.value as InstanceRecord).url !== TUNNEL_SCHEME + ref.id) {
    return { ok: false, error: `url: ${JSON.stringify((p.value as InstanceRecord).url)} must be tunnel://${ref.id} (the instance's own id)` };
  }
  // One small object of one shape for every kind: a full load parses every record.
  if (!p.ok) return p;
  const value = { ref, value: p.value } as ParsedRecord;
  return p.unknown === undefined ? { ok: true, value } : { ok: true, value, unknown: p.unknown };
}

/** Classifies and parses one key and value. */
export function parseEntry(layout: KeyLayout, key: string, raw: Uint8Array | string, ctx: ParseContext = DEFAULT_PARSE_CONTEXT): ParseResult<ParsedRecord> {
  const ref = layout.parse(key);
  return ref.ok ? parseRecord(ref.ref, raw, ctx) : ref;
}
