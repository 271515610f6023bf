/**
 * Headers of the WebSocket leg to an instance (plain HTTP builds its own in forward.ts): the
 * client's headers go along minus hop-by-hop and handshake ones, the client's Host is kept (as
 * gorouter and Traefik do), and X-Forwarded-* and X-Request-Id are added.
 */
import type { FastifyRequest } from 'fastify';
import type { IncomingHttpHeaders } from 'node:http';

/** RFC 9110 §7.6.1 connection-specific fields, plus the legacy ones still seen in the wild. */
export const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade'];

/** Handshake fields the WebSocket client library sets itself for the upstream leg. */
const WS_HANDSHAKE = ['sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-protocol', 'sec-websocket-accept'];

/** Connection tokens that name no header. */
const CONNECTION_OPTIONS = new Set(['close', 'keep-alive', 'upgrade']);

/**
 * Header names a Connection value lists (lower-case, besides close/keep-alive/upgrade, and never
 * Host): hop-by-hop for this connection only, so they are not forwarded. Undefined when none.
 */
export function connectionListed(value: string): Set<string> | undefined {
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

function addForwarded(request: FastifyRequest, headers: IncomingHttpHeaders): void {
  const original = request.headers;
  const remote = request.raw.socket.remoteAddress ?? '';
  const prior = original['x-forwarded-for'];
  headers['x-forwarded-for'] = prior ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${remote}` : remote;
  headers['x-forwarded-proto'] = 'http';
  if (original.host !== undefined) {
    headers['x-forwarded-host'] = original.host;
    headers.host = original.host;
  }
  headers['x-request-id'] = request.id;
}

/** For the WebSocket leg: the client's headers (cookies, auth) go along, minus the handshake's own. */
export function upstreamWebSocketHeaders(_configured: Record<string, string>, request: FastifyRequest): IncomingHttpHeaders {
  const headers: IncomingHttpHeaders = { ...request.headers };
  const connection = headers.connection;
  const listed = typeof connection === 'string' ? connectionListed(connection) : undefined;
  if (listed !== undefined) for (const name of listed) delete headers[name];
  for (const name of HOP_BY_HOP) delete headers[name];
  for (const name of WS_HANDSHAKE) delete headers[name];
  addForwarded(request, headers);
  return headers;
}
