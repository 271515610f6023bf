/**
 * Turns the raw value of one kind of record into a typed record (kinds.ts says which parser
 * serves which directory), or a reason it was rejected.
 * Never throws: every failure is a string naming what is wrong, so the caller can report it
 * with the key and keep the last good value.
 */
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import type { TSchema } from '@sinclair/typebox';
import { checkKey, decryptKey, DEFAULT_PARSE_CONTEXT, expiredError, readCertificate, type CertificateFacts, type ParseContext } from './certificate.js';
import { DASH, DOT, hostError, isLowerAlnum, isName } from './names.js';
import {
  AcmeAccountSchema,
  AcmeChallengeSchema,
  AcmeHostStateSchema,
  AppRecordSchema,
  CertRecordSchema,
  InstanceRecordSchema,
  OverrideRecordSchema,
  RouterStatusRecordSchema,
  type AcmeAccount,
  type AcmeChallenge,
  type AcmeHostState,
  TunnelPresenceRecordSchema,
  TunnelTokenRecordSchema,
  type TunnelPresenceRecord,
  type TunnelTokenRecord,
  type AppRecord,
  type CertRecord,
  type InstanceRecord,
  type OverrideRecord,
  type RouterStatusRecord,
} from './schema.js';

/** Larger values are rejected before JSON parsing: no legitimate record comes near it. */
export const MAX_VALUE_BYTES = 64 * 1024;

/**
 * `unknown`: the paths of fields the schema does not know (e.g. `routes.0.hots`), present only
 * when there are some. They are accepted (forward compatibility) but reported, since a typo'd
 * field is silently ignored otherwise.
 */
export type ParseResult<T> = { ok: true; value: T; unknown?: string[] } | { ok: false; error: string };

const checkApp = TypeCompiler.Compile(AppRecordSchema);
const checkInstance = TypeCompiler.Compile(InstanceRecordSchema);
const checkOverride = TypeCompiler.Compile(OverrideRecordSchema);
const checkRouterStatus = TypeCompiler.Compile(RouterStatusRecordSchema);
const checkCert = TypeCompiler.Compile(CertRecordSchema);
const checkAcmeAccount = TypeCompiler.Compile(AcmeAccountSchema);
const checkAcmeChallenge = TypeCompiler.Compile(AcmeChallengeSchema);
const checkAcmeHostState = TypeCompiler.Compile(AcmeHostStateSchema);
const checkTunnelToken = TypeCompiler.Compile(TunnelTokenRecordSchema);
const checkTunnelPresence = TypeCompiler.Compile(TunnelPresenceRecordSchema);

function decodeJson(raw: Uint8Array | string): ParseResult<unknown> {
  const size = typeof raw === 'string' ? Buffer.byteLength(raw) : raw.byteLength;
  if (size > MAX_VALUE_BYTES) return { ok: false, error: `value is ${size} bytes, over the ${MAX_VALUE_BYTES}-byte limit` };
  // toString() without arguments: Node's shortest path to UTF-8 (the same decoding).
  const text = typeof raw === 'string' ? raw : Buffer.isBuffer(raw) ? raw.toString() : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString();
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    return { ok: false, error: `not valid JSON: ${(err as Error).message}` };
  }
}

function check<T>(compiled: TypeCheck<TSchema>, value: unknown): ParseResult<T> {
  if (compiled.Check(value)) {
    const unknown: string[] = [];
    unknownFields(compiled.Schema(), value, '', unknown);
    return unknown.length === 0 ? { ok: true, value: value as T } : { ok: true, value: value as T, unknown };
  }
  const first = compiled.Errors(value).First();
  const where = first?.path ? first.path.slice(1).replaceAll('/', '.') : 'value';
  return { ok: false, error: `${where || 'value'}: ${first ? errorText(first.schema, first.message) : 'does not match the schema'}` };
}

/** A union of literals says what it allows (`must be one of starting, ready, draining`), not "Expected union value". */
function errorText(schema: TSchema, message: string): string {
  const variants = (schema as { anyOf?: TSchema[] }).anyOf;
  if (variants !== undefined && variants.length > 0 && variants.every((v) => v.const !== undefined)) {
    return `must be one of ${variants.map((v) => String(v.const)).join(', ')}`;
  }
  return message;
}

/**
 * Collects the paths of fields the schema does not declare, in a value that passed the check.
 * A union follows the variant whose required fields the value has (the override's two shapes).
 */
function unknownFields(schema: TSchema, value: unknown, path: string, out: string[]): void {
  if (value === null || typeof value !== 'object') return;
  const variants = (schema as { anyOf?: TSchema[] }).anyOf;
  if (variants !== undefined) {
    const v = value as Record<string, unknown>;
    const variant = variants.find((s) => s.type === 'object' && ((s.required as string[] | undefined) ?? []).every((k) => k in v));
    if (variant !== undefined) unknownFields(variant, value, path, out);
    return;
  }
  if (Array.isArray(value)) {
    const items = schema.items as TSchema | undefined;
    if (schema.type === 'array' && items !== undefined) for (let i = 0; i < value.length; i++) unknownFields(items, value[i], `${path}${i}.`, out);
    return;
  }
  const properties = schema.properties as Record<string, TSchema> | undefined;
  if (schema.type !== 'object' || properties === undefined) return;
  for (const key in value) {
    const field = properties[key];
    if (field === undefined) out.push(path + key);
    else unknownFields(field, (value as Record<string, unknown>)[key], `${path}${key}.`, out);
  }
}

function validateApp(value: AppRecord): string | undefined {
  for (let i = 0; i < value.routes.length; i++) {
    const route = value.routes[i]!;
    // A route without either would match every request: a typo (`hots`) must not make a catch-all.
    if (route.host === undefined && route.path === undefined) return `routes.${i}: needs a host or a path (a catch-all is written {"path": "/"})`;
    if (route.host !== undefined) {
      const err = hostError(route.host, true);
      if (err) return `routes.${i}.host: ${err}`;
    }
  }
  return undefined;
}

/**
 * The shape nearly every instance url has, `http(s)://<host>:<port>` with an optional `/`, the
 * host a lower-case name whose last label starts with a letter, or an IPv4 address without
 * leading zeros: no URL object needed. Anything else takes the full check (instanceUrlError).
 * Read character by character rather than matched by a regex, for the same reason as isName
 * (names.ts); test/names.test.ts holds it to the regexes it replaced.
 */
export function isPlainOrigin(url: string): boolean {
  const from = url.startsWith('http://') ? 7 : url.startsWith('https://') ? 8 : -1;
  if (from < 0) return false;
  const colon = url.indexOf(':', from);
  if (colon < 0) return false;
  let end = url.length;
  if (url.charCodeAt(end - 1) === SLASH) end--;
  const digits = end - colon - 1;
  if (digits < 1 || digits > 5) return false;
  let port = 0;
  for (let i = colon + 1; i < end; i++) {
    const d = url.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return false;
    port = port * 10 + d;
  }
  // The port must also be one URL accepts.
  return port <= 65535 && (isPlainHostName(url, from, colon) || isIpv4(url, from, colon));
}

const SLASH = 47;

/** s[from, to): labels of [a-z0-9-] joined by dots, none starting or ending with '-', the last starting with a letter. */
function isPlainHostName(s: string, from: number, to: number): boolean {
  let start = from;
  for (let i = from; i <= to; i++) {
    const c = i === to ? DOT : s.charCodeAt(i);
    if (c === DOT) {
      if (i === start || s.charCodeAt(i - 1) === DASH) return false;
      if (i === to) {
        const first = s.charCodeAt(start);
        return first >= 97 && first <= 122;
      }
      start = i + 1;
    } else if (i === start ? !isLowerAlnum(c) : !(isLowerAlnum(c) || c === DASH)) {
      return false;
    }
  }
  return false;
}

/** s[from, to): four decimal octets 0-255 without leading zeros. */
function isIpv4(s: string, from: number, to: number): boolean {
  let octets = 0;
  let start = from;
  for (let i = from; i <= to; i++) {
    const c = i === to ? DOT : s.charCodeAt(i);
    if (c !== DOT) {
      if (c < 48 || c > 57 || i - start >= 3) return false;
      continue;
    }
    const len = i - start;
    if (len === 0 || (len > 1 && s.charCodeAt(start) === 48)) return false;
    let v = 0;
    for (let k = start; k < i; k++) v = v * 10 + s.charCodeAt(k) - 48;
    if (v > 255 || ++octets > 4) return false;
    start = i + 1;
  }
  return octets === 4;
}

/** `tunnel://<id>`: the instance is served by a `paas-agent` over its tunnel sessions. */
export const TUNNEL_SCHEME = 'tunnel://';

/** The instance url must be a bare origin with an explicit port: nothing the proxy would have to drop. */
export function instanceUrlError(url: string): string | undefined {
  if (isPlainOrigin(url)) return undefined;
  // An instance behind an agent tunnel: reached over the agent's session, never dialled.
  if (url.startsWith(TUNNEL_SCHEME)) {
    const id = url.slice(TUNNEL_SCHEME.length);
    return isName(id) ? undefined : `url: ${JSON.stringify(url)}: a tunnel instance's url is tunnel://<its instance id>`;
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `url: ${JSON.stringify(url)} is not a URL`;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `url: scheme must be http or https, not ${u.protocol.slice(0, -1)}`;
  if (u.username || u.password) return 'url: must not carry credentials';
  if (u.search || u.hash || url.includes('?') || url.includes('#')) return 'url: must not have a query or fragment';
  if (u.pathname !== '/' || /^[a-z]+:\/\/[^/]+\/./i.test(url)) return 'url: must not have a path';
  // URL drops a port equal to the scheme's default, so look at the text itself.
  if (!/:\d{1,5}\/?$/.test(url)) return 'url: must give an explicit port (http://host:port)';
  if (u.hostname === '') return 'url: host is empty';
  return undefined;
}

export function parseAppRecord(raw: Uint8Array | string): ParseResult<AppRecord> {
  const json = decodeJson(raw);
  if (!json.ok) return json;
  const typed = check<AppRecord>(checkApp, json.value);
  if (!typed.ok) return typed;
  const err = validateApp(typed.value);
  return err ? { ok: false, error: err } : typed;
}

export function parseInstanceRecord(raw: Uint8Array | string): ParseResult<InstanceRecord> {
  const json = decodeJson(raw);
  if (!json.ok) return json;
  const typed = check<InstanceRecord>(checkInstance, json.value);
  if (!typed.ok) return typed;
  const err = instanceUrlError(typed.value.url);
  return err ? { ok: false, error: err } : typed;
}

export function parseOverrideRecord(raw: Uint8Array | string): ParseResult<OverrideRecord> {
  const json = decodeJson(raw);
  if (!json.ok) return json;
  const v = json.value as Record<string, unknown> | null;
  if (v && typeof v === 'object' && 'maintenance' in v && 'app' in v) {
    return { ok: false, error: 'an override has either "maintenance" or "app", not both' };
  }
  return check<OverrideRecord>(checkOverride, json.value);
}

/** The ACME records under `<prefix>/acme/` (see schema.ts). */
export function parseAcmeAccount(raw: Uint8Array | string): ParseResult<AcmeAccount> {
  const json = decodeJson(raw);
  if (!json.ok) return json;
  const typed = check<AcmeAccount>(checkAcmeAccount, json.value);
  if (typed.ok && (typed.value.key === undefined) === (typed.value.keyEnc === undefined)) return { ok: false, error: 'an ACME account record has either "key" or "keyEnc", exactly one' };
  return typed;
}

export function parseAcmeChallenge(raw: Uint8Array | string): ParseResult<AcmeChallenge> {
  const json = decodeJson(raw);
  return json.ok ? check<AcmeChallenge>(checkAcmeChallenge, json.value) : json;
}

export function parseAcmeHostState(raw: Uint8Array | string): ParseResult<AcmeHostState> {
  const json = decodeJson(raw);
  return json.ok ? check<AcmeHostState>(checkAcmeHostState, json.value) : json;
}

export function parseRouterStatusRecord(raw: Uint8Array | string): ParseResult<RouterStatusRecord> {
  const json = decodeJson(raw);
  if (!json.ok) return json;
  return check<RouterStatusRecord>(checkRouterStatus, json.value);
}


/** A valid certificate record as routers serve it: its PEM texts (the key decrypted) and the leaf's facts. */
export interface CertificateValue extends CertificateFacts {
  certPem: string;
  keyPem: string;
  /** The record's `source`, or "etcd" when it has none. */
  source: string;
}

/**
 * Judges a certificate record: shape, `key` or `keyEnc` (decrypted with ctx.keyRing), PEM
 * certificates, DNS names, the key matching the leaf, and, last, the leaf's notAfter against
 * ctx.now(), so that "expired" is said only of a record valid in every other way: the one verdict
 * that changes with time (see TableSync.expireCertificates).
 */
export function parseCertRecord(raw: Uint8Array | string, ctx: ParseContext = DEFAULT_PARSE_CONTEXT): ParseResult<CertificateValue> {
  const json = decodeJson(raw);
  if (!json.ok) return json;
  const typed = check<CertRecord>(checkCert, json.value);
  if (!typed.ok) return typed;
  const rec = typed.value;
  if ((rec.key === undefined) === (rec.keyEnc === undefined)) return { ok: false, error: 'a certificate record has either "key" or "keyEnc", exactly one' };
  let keyPem = rec.key;
  if (rec.keyEnc !== undefined) {
    const plain = decryptKey(rec.keyEnc, ctx.keyRing);
    if (!plain.ok) return plain;
    keyPem = plain.value;
  }
  const leaf = readCertificate(rec.cert);
  if (!leaf.ok) return leaf;
  const keyError = checkKey(leaf.value, keyPem!);
  if (keyError !== undefined) return { ok: false, error: keyError };
  const facts = leaf.value.facts;
  if (facts.notAfter <= ctx.now()) return expiredError(facts.notAfter);
  return { ok: true, value: { certPem: rec.cert, keyPem: keyPem!, hosts: facts.hosts, notAfter: facts.notAfter, fingerprint: facts.fingerprint, source: rec.source ?? 'etcd' } };
}

export function parseTunnelTokenRecord(raw: Uint8Array | string): ParseResult<TunnelTokenRecord> {
  const json = decodeJson(raw);
  if (!json.ok) return json;
  const typed = check<TunnelTokenRecord>(checkTunnelToken, json.value);
  if (!typed.ok) return typed;
  if (typed.value.expiresAt !== undefined && Number.isNaN(Date.parse(typed.value.expiresAt))) return { ok: false, error: `expiresAt: ${JSON.stringify(typed.value.expiresAt)} is not an ISO-8601 time` };
  return typed;
}

export function parseTunnelPresenceRecord(raw: Uint8Array | string): ParseResult<TunnelPresenceRecord> {
  const json = decodeJson(raw);
  if (!json.ok) return json;
  return check<TunnelPresenceRecord>(checkTunnelPresence, json.value);
}
