/**
 * The router's own answers, exactly as the contract words them, and the one place their heads are
 * built: as a header list for a ServerResponse (plain HTTP) and as raw HTTP/1.1 text for a socket
 * the HTTP server has let go of (WebSocket upgrades, unparsable requests).
 */
import { nodeHttp } from '../node-http.js';

/** An answer the router gives itself. A maintenance override target is one too (status, message). */
export interface Answer {
  readonly status: number;
  readonly message: string;
  /** 503 for want of a ready instance: carries `Retry-After`. */
  readonly retryAfter?: boolean;
  /** The request's framing cannot be trusted (or its body is not read): the connection is closed after it. */
  readonly close?: boolean;
  /** A redirect's target. */
  readonly location?: string;
}

function answer(status: number, extra: { retryAfter?: boolean; close?: boolean } = {}): Answer {
  return Object.freeze({ status, message: nodeHttp.STATUS_CODES[status]!, ...extra });
}

export const BAD_REQUEST = answer(400, { close: true });
export const NOT_FOUND = answer(404);
/** A request over TLS for a host the connection's certificate does not cover (RFC 9110 §15.5.20). */
export const MISDIRECTED = answer(421);
export const REQUEST_TIMEOUT = answer(408, { close: true });
export const HEADERS_TOO_LARGE = answer(431, { close: true });
export const NOT_IMPLEMENTED = answer(501, { close: true });
export const BAD_GATEWAY = answer(502);
export const UNAVAILABLE = answer(503, { retryAfter: true });
export const GATEWAY_TIMEOUT = answer(504);

/** `tls.redirect`: 308 to the same host, path and query on https (a new object per request: it carries the Location). */
export function redirectAnswer(location: string): Answer {
  return { status: 308, message: nodeHttp.STATUS_CODES[308]!, location };
}

/** The contract's answers to upstream failures, by status. */
export const FAILURE_ANSWER = { 502: BAD_GATEWAY, 503: UNAVAILABLE, 504: GATEWAY_TIMEOUT } as const;

const TEXT = 'text/plain; charset=utf-8';

/**
 * The head of an answer as a header list. `retryAfter`: the configured value, sent with 503 for
 * want of an instance; `close`: the connection ends after this answer (shutdown, bad framing);
 * `hsts`: the app's Strict-Transport-Security, over TLS; `http2`: an HTTP/2 stream, where
 * connection-specific headers do not exist (RFC 9113 §8.2.2: a stream ends alone).
 */
export function answerHeaders(a: Answer, requestId: string, retryAfter: string, close: boolean, hsts?: string, http2 = false): string[] {
  const out = ['content-type', TEXT, 'content-length', String(Buffer.byteLength(a.message)), 'x-content-type-options', 'nosniff', 'x-request-id', requestId];
  if (a.retryAfter === true) out.push('retry-after', retryAfter);
  if (a.location !== undefined) out.push('location', a.location);
  if (hsts !== undefined) out.push('strict-transport-security', hsts);
  if (!http2 && (close || a.close === true)) out.push('connection', 'close');
  return out;
}

/** The whole answer as HTTP/1.1 text for a raw socket (write it as UTF-8); the connection always closes after it. */
export function rawAnswer(a: Answer, requestId: string, retryAfter: string, hsts?: string): string {
  const headers = answerHeaders(a, requestId, retryAfter, true, hsts);
  let head = `HTTP/1.1 ${a.status} ${nodeHttp.STATUS_CODES[a.status] ?? ''}\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return `${head}\r\n${a.message}`;
}
