/**
 * The routing decision, one for every request kind (plain HTTP, WebSocket upgrades, and the
 * transports to come): a request head in, and out either an answer of the router's own (404,
 * 503, a maintenance override, a refused head) or the app and instance to forward to.
 */
import type { Backend } from '../table/backend.js';
import type { RoutingTable } from '../table/routing-table.js';
import { NOT_FOUND, UNAVAILABLE, type Answer } from './answers.js';
import { mayRetry, type FailureVerdict } from './failure.js';
import type { RequestHead } from './request-head.js';

/** The answer to give, or null: forward to `head.backend` (of app `head.pool`). */
export function decide(table: RoutingTable, head: RequestHead, now: number): Answer | null {
  if (head.error !== null) return head.error;
  const target = table.lookup(head.host, head.path);
  if (target === undefined) return NOT_FOUND;
  if (target.kind === 'maintenance') return target;
  head.pool = target;
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
