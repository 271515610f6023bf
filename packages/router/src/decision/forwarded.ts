/**
 * The headers of a forwarded exchange, both ways, for every transport: the client's headers go
 * to the instance minus hop-by-hop ones (RFC 9110 §7.6.1) and those the Connection header lists,
 * the client's Host is kept (as gorouter and Traefik do), X-Forwarded-* and X-Request-Id are
 * added; the instance's answer goes back minus its hop-by-hop headers, with X-Request-Id.
 */
import type { RequestHead } from './request-head.js';

/** RFC 9110 §7.6.1 connection-specific fields, plus the legacy ones still seen in the wild. */
export const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade'];

const RESPONSE_SKIP = new Set(HOP_BY_HOP);

/** Connection tokens that name no header. */
const CONNECTION_OPTIONS = new Set(['close', 'keep-alive', 'upgrade']);

const NO_LENGTH_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'CONNECT']);

/**
 * Header names a Connection value lists (lower-case, besides close/keep-alive/upgrade, and never
 * Host): hop-by-hop for this connection only, so they are not forwarded. Undefined when none.
 */
function connectionListed(value: string): Set<string> | undefined {
  // The common values, as instances and clients send them, name no header.
  if (value.length <= 10) {
    const v = value.toLowerCase();
    if (v === 'keep-alive' || v === 'close') return undefined;
  }
  let out: Set<string> | undefined;
  for (const part of value.split(',')) {
    const name = part.trim().toLowerCase();
    if (name === '' || CONNECTION_OPTIONS.has(name) || name === 'host') continue;
    (out ??= new Set()).add(name);
  }
  return out;
}

function removeListed(headers: string[], listed: Set<string>): void {
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    if (listed.has(headers[i]!.toLowerCase())) headers.splice(i, 2);
  }
}

/**
 * Completes `head.headers` for the instance, once the decision is to forward: the headers the
 * client's Connection lists out; X-Forwarded-For (appended to the client's), -Proto, -Host and
 * X-Request-Id in; and, as undici does, `content-length: 0` for a body-less request of a method
 * that usually has a body.
 */
export function addForwardedHeaders(head: RequestHead, remoteAddress: string, proto: string, port?: string): void {
  const headers = head.headers;
  if (head.connection !== undefined) {
    const listed = connectionListed(head.connection);
    if (listed !== undefined) removeListed(headers, listed);
  }
  headers.push('x-forwarded-for', head.xff === undefined ? remoteAddress : `${head.xff}, ${remoteAddress}`, 'x-forwarded-proto', proto, 'x-request-id', head.id);
  if (head.hostHeader !== undefined) headers.push('x-forwarded-host', head.hostHeader);
  if (port !== undefined) headers.push('x-forwarded-port', port);
  if (!head.hasBody && !head.hasLength && !NO_LENGTH_METHODS.has(head.method)) headers.push('content-length', '0');
}

/**
 * The instance's answer headers for the client: hop-by-hop ones and those its Connection lists
 * out (so nothing connection-specific reaches an HTTP/2 stream), X-Request-Id in, the app's
 * Strict-Transport-Security over TLS (replacing the instance's own), and `connection: close`
 * when the client's HTTP/1.1 connection ends after it.
 */
export function forwardedResponseHeaders(raw: string[], requestId: string, close: boolean, hsts?: string): string[] {
  const out: string[] = [];
  let listed: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (RESPONSE_SKIP.has(lower)) {
      if (lower === 'connection') listed = connectionListed(raw[i + 1]!);
      continue;
    }
    if (hsts !== undefined && lower === 'strict-transport-security') continue;
    out.push(name, raw[i + 1]!);
  }
  if (listed !== undefined) removeListed(out, listed);
  out.push('x-request-id', requestId);
  if (hsts !== undefined) out.push('strict-transport-security', hsts);
  if (close) out.push('connection', 'close');
  return out;
}

/** The app's `tls.hsts`, for an answer over TLS once the decision found the app; else undefined. */
export function hstsOf(head: RequestHead): string | undefined {
  return head.secure ? head.pool?.record?.tls?.hsts : undefined;
}
