/**
 * The two kinds of failure the deployer reports: a bad command line or bad options (exit 2), and a
 * deployment that failed (exit 1, after rolling back what it wrote).
 */
import { describeAccessRefused, isName, NAME_SHAPE } from '@paas/registry';
import type { StepRecord } from './steps.js';

/** Bad usage: an unknown flag, a bad URL or app name. The CLI prints one line and exits 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export type FailureKind =
  | 'invalid' // options the library cannot act on
  | 'not-found' // the app record or instance does not exist
  | 'lock-held' // another deployment of the app holds the lock
  | 'lock-lost' // the lock's lease was lost mid-run
  | 'unhealthy' // a new instance never passed its health check
  | 'conflict' // the app's instances changed under us (compare-and-swap failed)
  | 'no-routers' // no live router could confirm the change
  | 'router-timeout' // a live router did not apply the change in time
  | 'rejected' // a router rejected a record we wrote
  | 'aborted' // cancelled (signal, Ctrl-C)
  | 'etcd'; // etcd itself failed

/** What a rollback did: keys removed or restored, and keys it left alone (and why). */
export interface RollbackReport {
  removed: string[];
  restored: string[];
  skipped: { id: string; reason: string }[];
  revision?: bigint;
  error?: string;
}

/** A deployment that failed. `rollback` is set when the run undid what it had written. */
export class DeployError extends Error {
  override name = 'DeployError';
  readonly kind: FailureKind;
  steps: StepRecord[] = [];
  rollback?: RollbackReport;
  /** Extra lines for the operator (what was left behind, what to do next). */
  notes: string[] = [];

  constructor(kind: FailureKind, message: string, opts?: { cause?: unknown }) {
    super(message, opts?.cause === undefined ? undefined : { cause: opts.cause });
    this.kind = kind;
  }
}

/** Turns anything thrown into a DeployError, keeping DeployErrors as they are. */
export function asDeployError(err: unknown): DeployError {
  if (err instanceof DeployError) return err;
  if (err instanceof Error && err.name === 'AbortError') {
    if (err.cause instanceof DeployError) return err.cause;
    return new DeployError('aborted', err.cause instanceof Error ? err.cause.message : 'aborted', { cause: err });
  }
  const refused = describeAccessRefused(err);
  if (refused) return new DeployError('etcd', refused, { cause: err });
  const message = err instanceof Error ? err.message : String(err);
  return new DeployError('etcd', `etcd: ${cleanEtcdMessage(message)}`, { cause: err });
}

/** grpc-js messages carry noise ("Resolution note: ", status codes): keep the part an operator reads. */
export function cleanEtcdMessage(message: string): string {
  return message
    .replace(/\s*Resolution note:\s*$/, '')
    .replace(/^\d+ [A-Z_]+: /, '')
    .trim();
}

/** Options naming an app or instance with an invalid name fail before anything is touched. */
export function requireName(what: 'app name' | 'instance id', name: string): void {
  if (!isName(name)) throw new DeployError('invalid', `${what} ${JSON.stringify(name)} does not match ${NAME_SHAPE}`);
}
