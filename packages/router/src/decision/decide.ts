/**
 * The routing decision, one for every request kind (plain HTTP, WebSocket upgrades, and the
 * transports to come): a request head in, and out either an answer of the router's own (404,
 * 503, a maintenance override, a refused head) or the app and instance to forward to.
 */
import type { Backend } from '../table/backend.js';
import type { RoutingTable } from '../table/routing-table.js';
import { certCovers } from '../table/cert-index.js';
import { MISDIRECTED, NOT_FOUND, redirectAnswer, UNAVAILABLE, type Answer } from './answers.js';
import { mayRetry, type FailureVerdict } from './failure.js';
import type { RequestHead } from './request-head.js';

/** ACME HTTP-01 challenges are answered over plain HTTP whatever `tls.redirect` says (as Caddy and Traefik do). */
export const ACME_CHALLENGE_PATH = '/.well-known/acme-challenge/';

/**
 * The answer to give, or null: forward to `head.backend` (of app `head.pool`).
 * `httpsPort`: what follows the host in a `tls.redirect` Location (`:8443`, or '' for 443).
 */
export function decide(table: RoutingTable, head: RequestHead, now: number, httpsPort = ''): Answer | null {
  if (head.error !== null) return head.error;
  // A client may reuse a connection for any host its certificate covers (HTTP/2 coalescing):
  // one it does not cover was meant for another connection (RFC 9110 §15.5.20).
  if (head.cert !== null && !certCovers(head.cert, head.host)) return MISDIRECTED;
  const target = table.lookup(head.host, head.path);
  if (target === undefined) return NOT_FOUND;
  if (target.kind === 'maintenance') return target;
  head.pool = target;
  if (!head.secure && target.record?.tls?.redirect === true && !head.path.startsWith(ACME_CHALLENGE_PATH)) {
    return redirectAnswer(`https://${head.host}${httpsPort}${head.path}`);
  }
  const backend = target.pick(now);
  if (backend === undefined) return UNAVAILABLE;
  head.backend = backend;
  return null;
}

/**
 * After attempt number `attempts` to `failed` failed: the instance to try next, or undefined when
 * the request must not be sent again (see mayRetry) or no other instance is left.
 */
export function retryTarget(head: RequestHead, failed: Backend, verdict: FailureVerdict, attempts: number, maxAttempts: number, bodyTouched: boolean, now: number): Backend | undefined {
  if (attempts >= maxAttempts || !mayRetry(verdict, head.method, head.hasBody, bodyTouched)) return undefined;
  const next = head.pool!.pick(now, failed);
  return next !== failed ? next : undefined;
}
