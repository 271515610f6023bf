import type { BalanceStrategy } from '@paas/registry';
import type { Backend } from '../table/backend.js';

/**
 * Chooses among an app's ready backends. Every strategy prefers available backends (not ejected,
 * not failed by the active check) and, when none is, falls back to any ready one ("panic mode",
 * as in Envoy) so the request is still tried. `exclude` (the backend that just failed) is never
 * chosen: undefined means no other ready backend exists.
 */
export interface Balancer {
  readonly strategy: BalanceStrategy;
  /** The app's ready backends changed (added, removed, state or weight): start over. */
  reset(ready: readonly Backend[]): void;
  pick(now: number, exclude: Backend | undefined): Backend | undefined;
}

/** Whether `b` may take the request in this pass; the panic pass ignores health. */
export function eligible(b: Backend, now: number, exclude: Backend | undefined, panic: boolean): boolean {
  return b !== exclude && (panic || b.isAvailable(now));
}
