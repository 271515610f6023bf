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

function dropConnectionListed(headers: IncomingHttpHeaders): void {
  const listed = headers.connection;
  if (typeof listed !== 'string') return;
  for (const name of listed.split(',')) {
    const n = name.trim().toLowerCase();
    if (n) delete headers[n];
  }
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
  dropConnectionListed(headers);
  for (const name of HOP_BY_HOP) delete headers[name];
  for (const name of WS_HANDSHAKE) delete headers[name];
  addForwarded(request, headers);
  return headers;
}
