import type { Backend } from '../table/backend.js';

const FIRST_EJECTION_MS = 1000;
const MAX_EJECTION_MS = 30_000;

/**
 * A connection to the backend was refused or reset (`reason`): eject it for 1 s, doubling with each
 * consecutive failure up to 30 s. Balancers skip it until then unless nothing else is left.
 * Failures while it is already ejected (requests that were in flight, or panic-mode tries) do
 * not escalate, so one burst of concurrent failures costs one ejection, not thirty seconds.
 * Returns true when an ejection begins (the caller logs it once and reports the backend).
 */
export function recordFailure(backend: Backend, now: number, reason: string): boolean {
  if (backend.ejectedUntil > now) return false;
  if (backend.consecutiveFailures++ === 0) backend.ejectedSince = now;
  backend.ejectReason = reason;
  const ms = Math.min(FIRST_EJECTION_MS * 2 ** (backend.consecutiveFailures - 1), MAX_EJECTION_MS);
  backend.ejectedUntil = now + ms;
  return true;
}

/** The backend answered. True when it had been ejected: it is back. */
export function recordSuccess(backend: Backend): boolean {
  if (backend.consecutiveFailures === 0) return false;
  backend.consecutiveFailures = 0;
  backend.ejectedUntil = 0;
  backend.ejectedSince = 0;
  backend.ejectReason = '';
  return true;
}
