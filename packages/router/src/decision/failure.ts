/**
 * What an upstream failure means for the request: whether the instance should be ejected, whether
 * another instance may be tried, and which of the contract's answers it becomes.
 */
export interface FailureVerdict {
  /** The instance could not be reached or dropped the connection: passive health counts it. */
  connectionFailure: boolean;
  /** Nothing reached the instance, so any request may go to another one. */
  nothingSent: boolean;
  status: 502 | 503 | 504;
  reason: string;
}

/**
 * A tunnel instance without a usable session on this router (tunnel/connector.ts): like an
 * instance that refuses connections (ejected, another instance tried), except that when it was
 * the last the answer is the contract's 503: the instance is not ready here yet, not broken.
 */
export const NO_TUNNEL_SESSION = 'ENOTUNNELSESSION';

const NOTHING_SENT = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT']);
const DROPPED = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);
const TIMED_OUT = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

function codeOf(err: unknown): string {
  let e = err as { code?: unknown; cause?: unknown } | undefined;
  // A wrapped error (undici's connect errors carry the socket error as `cause`): the useful
  // code is on the innermost cause.
  for (let depth = 0; e && depth < 4; depth++) {
    if (e.cause === undefined && typeof e.code === 'string') return e.code;
    if (e.cause === undefined) break;
    e = e.cause as typeof e;
  }
  return typeof e?.code === 'string' ? e.code : 'UNKNOWN';
}

export function classifyUpstreamError(err: unknown): FailureVerdict {
  const code = codeOf(err);
  if (code === NO_TUNNEL_SESSION) return { connectionFailure: true, nothingSent: true, status: 503, reason: code };
  if (NOTHING_SENT.has(code)) {
    return { connectionFailure: true, nothingSent: true, status: code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT' ? 504 : 502, reason: code };
  }
  if (DROPPED.has(code)) return { connectionFailure: true, nothingSent: false, status: 502, reason: code };
  if (TIMED_OUT.has(code)) return { connectionFailure: false, nothingSent: false, status: 504, reason: code };
  return { connectionFailure: false, nothingSent: false, status: 502, reason: code };
}

/** RFC 9110 §9.2.2: a request of these methods may be sent again. */
export const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** A request may go to another instance when nothing was sent, or when it is idempotent and has no body. */
export function mayRetry(verdict: FailureVerdict, method: string, hasBody: boolean, bodyTouched: boolean): boolean {
  if (verdict.nothingSent) return !bodyTouched;
  return verdict.connectionFailure && IDEMPOTENT.has(method) && !hasBody;
}
