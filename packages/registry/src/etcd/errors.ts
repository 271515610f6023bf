/** Classifying what etcd3 throws: connectivity trouble (retry, show "unreachable") or not. */
import { castGrpcError, isRecoverableError, EtcdWatchStreamEnded, GRPCOutOfRangeError } from 'etcd3';
import { EtcdHostUnavailableError } from './fault-handling.js';

/** A call or stream that found etcd unreachable or too slow; it can work again later. */
export class EtcdTimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`${what}: no answer from etcd within ${ms} ms`);
    this.name = 'EtcdTimeoutError';
  }
}

/** True for errors that say "etcd could not be reached", as opposed to "etcd said no". */
export function isConnectivityError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  // Watch stream errors reach watchers as raw grpc-js errors (a plain Error with a code).
  const typed = castGrpcError(err);
  return (
    typed instanceof EtcdHostUnavailableError ||
    typed instanceof EtcdTimeoutError ||
    typed instanceof EtcdWatchStreamEnded ||
    isRecoverableError(typed)
  );
}

/**
 * A read at a revision older than the last compaction: etcd's ErrGRPCCompacted, gRPC code
 * OUT_OF_RANGE. The only other OUT_OF_RANGE of a range is ErrGRPCFutureRev, which a paged list
 * cannot get: it reads at a revision a linearizable read already returned.
 */
export function isCompactedError(err: unknown): boolean {
  return err instanceof Error && castGrpcError(err) instanceof GRPCOutOfRangeError;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
