import type { Backend } from '../table/backend.js';

const FIRST_EJECTION_MS = 1000;
const MAX_EJECTION_MS = 30_000;

/**
 * A connection to the backend was refused or reset: eject it for 1 s, doubling with each
 * consecutive failure up to 30 s. Balancers skip it until then unless nothing else is left.
 * Failures while it is already ejected (requests that were in flight, or panic-mode tries) do
 * not escalate, so one burst of concurrent failures costs one ejection, not thirty seconds.
 */
export function recordFailure(backend: Backend, now: number): void {
  if (backend.ejectedUntil > now) return;
  backend.consecutiveFailures++;
  const ms = Math.min(FIRST_EJECTION_MS * 2 ** (backend.consecutiveFailures - 1), MAX_EJECTION_MS);
  backend.ejectedUntil = now + ms;
}

export function recordSuccess(backend: Backend): void {
  backend.consecutiveFailures = 0;
  backend.ejectedUntil = 0;
}
