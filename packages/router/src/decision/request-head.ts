/**
 * What a request is, read once from its head: the host and path it routes by, its request id, the
 * header list an instance would receive, and whether the head is acceptable at all. Every
 * listener reads requests through here, so plain HTTP and WebSocket upgrades (and the transports
 * still to come) validate and route alike.
 *
 * Validation, as nginx, HAProxy and Envoy do it (RFC 9110, RFC 9112), before anything goes to an
 * instance: no Host in HTTP/1.1, or more than one, is 400; a Transfer-Encoding other than `chunked` is 501 (Node
 * already refuses the framings it cannot parse, such as `gzip` alone or with Content-Length);
 * Transfer-Encoding in an HTTP/1.0 request is 400; a target that is neither origin-form (`/p`)
 * nor absolute-form (`http://host/p`) is 400. An absolute-form target routes by its authority
 * (RFC 9112 §3.2.2), which replaces the client's Host; the instance receives origin-form.
 * Dot-segments are removed before routing (dot-segments.ts).
 *
 * HTTP/2 (httpVersion '2.0', Node's raw header list with its pseudo-headers first): `:authority`
 * is read as an absolute-form target's authority (it wins over a Host header and reaches the
 * instance as Host), `:path` is the target, the other pseudo-headers are dropped, and the
 * Cookie fields HTTP/2 may split are joined with "; " for the HTTP/1.1 instance (RFC 9113 §8.2.3).
 */
import { randomUUID } from 'node:crypto';
import type { Backend } from '../table/backend.js';
import type { ServedCertificate } from '../table/cert-index.js';
import type { AppPool } from '../table/routing-table.js';
import { BAD_REQUEST, NOT_IMPLEMENTED, type Answer } from './answers.js';
import { removeDotSegments } from './dot-segments.js';
import { HOP_BY_HOP } from './forwarded.js';
import { normalizeHost } from './host.js';
import { SANE_REQUEST_ID } from './request-id.js';

/** Request header names (lower-case) never copied upstream as they are. */
const REQUEST_SKIP = new Set([
  ...HOP_BY_HOP,
  // answered by the listener (100 Continue)
  'expect',
  // rewritten by the router
  'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id',
]);

const SLASH = 0x2f;
const COLON = 0x3a;

/** One request as the decision sees it; the listeners' per-request objects extend it. */
export class RequestHead {
  method = '';
  /** Origin-form target for the instance: the path with dot-segments removed, then the query. */
  path = '';
  /** Lookup key: lower-case, no port, no trailing dot. */
  host = '';
  /** What the instance gets as Host and X-Forwarded-Host: the client's Host, or the absolute-form authority. */
  hostHeader: string | undefined = undefined;
  hasHost = false;
  /** The client's sane X-Request-Id, or a new one. */
  id = '';
  /** Header name/value pairs for the instance: the client's, minus hop-by-hop and rewritten ones. */
  headers: string[] = [];
  /** X-Forwarded-For the client sent (joined). */
  xff: string | undefined = undefined;
  /** Connection the client sent (joined): the headers it lists are not forwarded. */
  connection: string | undefined = undefined;
  /** Expect the client sent (its first), for the listeners that answer it themselves. */
  expect: string | undefined = undefined;
  hasBody = false;
  hasLength = false;
  /** Set when the head is refused: the answer. */
  error: Answer | null = null;
  /** The request came over TLS (set by the listener). */
  secure = false;
  /** Over TLS: the certificate the connection's handshake served; the request's host must be one it covers. */
  cert: ServedCertificate | null = null;
  /** The decision: the app, and the instance chosen (set by decide()). */
  pool: AppPool | null = null;
  backend: Backend | null = null;
}

/** Where the authority of an absolute-form target (`http://` or `https://`) ends; -1 when the target is not one. */
function absoluteAuthorityEnd(target: string): number {
  const colon = target.indexOf('://');
  if (colon !== 4 && colon !== 5) return -1;
  const scheme = target.slice(0, colon).toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') return -1;
  const start = colon + 3;
  let end = start;
  while (end < target.length) {
    const c = target.charCodeAt(end);
    if (c === SLASH || c === 0x3f /* ? */ || c === 0x23 /* # */) break;
    end++;
  }
  return end;
}

/** The origin-form target with dot-segments removed; the same string when there are none. */
function resolvedTarget(target: string): string {
  const q = target.indexOf('?');
  const end = q < 0 ? target.length : q;
  const path = removeDotSegments(target, end);
  if (q < 0) return path;
  return path.length === end ? target : path + target.slice(q);
}

/**
 * Reads a request head into `head`. `raw`: the header list as received (Node's rawHeaders).
 * On a refused head, `head.error` is set and `head.id` is still usable for the answer.
 */
export function readRequestHead(head: RequestHead, method: string, target: string, httpVersion: string, raw: string[]): void {
  head.method = method;
  let authority: string | undefined;
  if (target.charCodeAt(0) === SLASH) {
    head.path = resolvedTarget(target);
  } else {
    const end = absoluteAuthorityEnd(target);
    if (end > 0) {
      authority = target.slice(target.indexOf('://') + 3, end);
      const rest = target.slice(end);
      head.path = resolvedTarget(rest.charCodeAt(0) === SLASH ? rest : `/${rest}`);
    }
  }
  const headers = head.headers;
  // Locals while reading, stored once at the end: this loop runs for every header of every request.
  let hosts = 0;
  let hostHeader: string | undefined;
  let givenId: string | undefined;
  let xff: string | undefined;
  let connection: string | undefined;
  let expect: string | undefined;
  let te: string | undefined;
  let hasBody = false;
  let hasLength = false;
  const http2 = httpVersion === '2.0';
  /** HTTP/2: where the first Cookie field went in `headers`. */
  let cookieAt = -1;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    if (http2 && name.charCodeAt(0) === COLON) {
      if (name === ':authority') authority = value;
      continue;
    }
    const lower = name.toLowerCase();
    if (!REQUEST_SKIP.has(lower)) {
      if (lower === 'host') {
        if (++hosts > 1 || authority !== undefined) continue;
        hostHeader = value;
      } else if (lower === 'content-length') {
        hasLength = true;
        if (value !== '0') hasBody = true;
      } else if (http2 && lower === 'cookie') {
        if (cookieAt >= 0) {
          headers[cookieAt + 1] += `; ${value}`;
          continue;
        }
        cookieAt = headers.length;
      }
      headers.push(name, value);
      continue;
    }
    switch (lower) {
      case 'x-forwarded-for':
        xff = xff === undefined ? value : `${xff}, ${value}`;
        break;
      case 'x-request-id':
        givenId ??= value;
        break;
      case 'transfer-encoding':
        te = te === undefined ? value : `${te}, ${value}`;
        break;
      case 'connection':
        connection = connection === undefined ? value : `${connection}, ${value}`;
        break;
      case 'expect':
        expect ??= value;
        break;
    }
  }
  head.hostHeader = hostHeader;
  head.xff = xff;
  head.connection = connection;
  head.expect = expect;
  head.hasBody = hasBody;
  head.hasLength = hasLength;
  head.id = givenId !== undefined && SANE_REQUEST_ID.test(givenId) ? givenId : randomUUID();
  // RFC 9112 §3.2: exactly one Host in HTTP/1.1 (none is allowed in HTTP/1.0).
  if (hosts > 1 || (hosts === 0 && authority === undefined && httpVersion !== '1.0')) {
    head.error = BAD_REQUEST;
    return;
  }
  if (authority !== undefined) {
    // userinfo is deprecated (RFC 9110 §4.2.4) and an empty authority names no host.
    if (authority === '' || authority.includes('@')) {
      head.error = BAD_REQUEST;
      return;
    }
    head.hostHeader = authority;
    headers.push('host', authority);
  }
  // Neither origin-form nor absolute-form (`*`, an authority-form CONNECT; over HTTP/2 a `:path` like them).
  if (head.path === '') {
    head.error = BAD_REQUEST;
    return;
  }
  head.hasHost = head.hostHeader !== undefined;
  head.host = normalizeHost(head.hostHeader);
  if (te !== undefined) {
    if (httpVersion === '1.0') {
      // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means the framing is faulty.
      head.error = BAD_REQUEST;
      return;
    }
    if (te.length !== 7 || te.toLowerCase() !== 'chunked') {
      head.error = NOT_IMPLEMENTED;
      return;
    }
    head.hasBody = true;
  }
}
