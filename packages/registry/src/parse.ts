/**
 * Turns the raw value of one kind of record into a typed record (kinds.ts says which parser
 * serves which directory), or a reason it was rejected.
 * Never throws: every failure is a string naming what is wrong, so the caller can report it
 * with the key and keep the last good value.
 */
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import type { TSchema } from '@sinclair/typebox';
import { hostError, isName } from './names.js';
import {
  AppRecordSchema,
  InstanceRecordSchema,
  OverrideRecordSchema,
  RouterStatusRecordSchema,
  TunnelPresenceRecordSchema,
  TunnelTokenRecordSchema,
  type TunnelPresenceRecord,
  type TunnelTokenRecord,
  type AppRecord,
  type InstanceRecord,
  type OverrideRecord,
  type RouterStatusRecord,
} from './schema.js';

/** Larger values are rejected before JSON parsing: no legitimate record comes near it. */
export const MAX_VALUE_BYTES = 64 * 1024;

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: string };

const checkApp = TypeCompiler.Compile(AppRecordSchema);
const checkInstance = TypeCompiler.Compile(InstanceRecordSchema);
const checkOverride = TypeCompiler.Compile(OverrideRecordSchema);
const checkRouterStatus = TypeCompiler.Compile(RouterStatusRecordSchema);
const checkTunnelToken = TypeCompiler.Compile(TunnelTokenRecordSchema);
const checkTunnelPresence = TypeCompiler.Compile(TunnelPresenceRecordSchema);

function decodeJson(raw: Uint8Array | string): ParseResult<unknown> {
  const size = typeof raw === 'string' ? Buffer.byteLength(raw) : raw.byteLength;
  if (size > MAX_VALUE_BYTES) return { ok: false, error: `value is ${size} bytes, over the ${MAX_VALUE_BYTES}-byte limit` };
  const text = typeof raw === 'string' ? raw : Buffer.isBuffer(raw) ? raw.toString('utf8') : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('utf8');
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    return { ok: false, error: `not valid JSON: ${(err as Error).message}` };
  }
}

function check<T>(compiled: TypeCheck<TSchema>, value: unknown): ParseResult<T> {
  if (compiled.Check(value)) return { ok: true, value: value as T };
  const first = compiled.Errors(value).First();
  const where = first?.path ? first.path.slice(1).replaceAll('/', '.') : 'value';
  return { ok: false, error: `${where || 'value'}: ${first?.message ?? 'does not match the schema'}` };
}

function validateApp(value: AppRecord): string | undefined {
  for (let i = 0; i < value.routes.length; i++) {
    const route = value.routes[i]!;
    if (route.host !== undefined) {
      const err = hostError(route.host, true);
      if (err) return `routes.${i}.host: ${err}`;
    }
  }
  return undefined;
}

/** The instance url must be a bare origin with an explicit port: nothing the proxy would have to drop. */
/** The shape nearly every instance url has (scheme, a plain host name or IPv4, a port): no URL object needed. */
const PLAIN_NAME_ORIGIN = /^https?:\/\/(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)*[a-z](?:[a-z0-9-]*[a-z0-9])?:(\d{1,5})\/?$/;
const PLAIN_IPV4_ORIGIN = /^https?:\/\/(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}:(\d{1,5})\/?$/;

function isPlainOrigin(url: string): boolean {
  const m = PLAIN_NAME_ORIGIN.exec(url) ?? PLAIN_IPV4_ORIGIN.exec(url);
  // The port must also be one URL accepts; anything else takes the full check.
  return m !== null && Number(m[m.length - 1]) <= 65535;
}

/** `tunnel://<id>`: the instance is served by a `paas-agent` over its tunnel sessions. */
export const TUNNEL_SCHEME = 'tunnel://';

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

export function parseRouterStatusRecord(raw: Uint8Array | string): ParseResult<RouterStatusRecord> {
  const json = decodeJson(raw);
  if (!json.ok) return json;
  return check<RouterStatusRecord>(checkRouterStatus, json.value);
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
