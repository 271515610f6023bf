/**
 * etcd3's fault-handling slots, filled with small policies of our own.
 *
 * etcd3's defaults (cockatiel) are a per-host circuit breaker that opens for 5 s after 3
 * consecutive failures, plus a global retry of every recoverable error 3 times. After etcd is
 * stopped and restarted that means up to 5 s of "Execution prevented because the circuit breaker
 * is open" before the first call is even tried, and the blind retry re-sends writes (a txn whose
 * answer was lost is sent again and then "fails" its compare). So: a breaker that tries again
 * after 1 s, and a retry that only moves an UNAVAILABLE call to another endpoint.
 *
 * cockatiel is not a direct dependency of this package, hence the tiny IPolicy implementations.
 */
import { isRecoverableError, GRPCUnavailableError, type IOptions } from 'etcd3';

type FaultHandling = NonNullable<IOptions['faultHandling']>;
type Policy = NonNullable<FaultHandling['global']>;
type PolicyContext = Parameters<Parameters<Policy['execute']>[0]>[0];
type WatchBackoff = NonNullable<FaultHandling['watchBackoff']>;

/** Thrown instead of calling a host whose breaker is open. Counts as a connectivity error. */
export class EtcdHostUnavailableError extends Error {
  constructor(host: string, failures: number, retryInMs: number) {
    super(`etcd at ${host} is unreachable (${failures} consecutive failures); trying it again in ${retryInMs} ms`);
    this.name = 'EtcdHostUnavailableError';
  }
}

const noEvent = () => ({ dispose() {} });

/** The parts of cockatiel's IPolicy that etcd3 never calls. */
abstract class PolicyBase implements Policy {
  declare readonly _altReturn: never;
  readonly onSuccess = noEvent;
  readonly onFailure = noEvent;
  protected readonly context: PolicyContext = { signal: new AbortController().signal };
  abstract execute<T>(fn: (context: PolicyContext) => PromiseLike<T> | T): Promise<T>;
}

/**
 * Per host: after `threshold` consecutive recoverable failures, calls fail at once with
 * EtcdHostUnavailableError for `halfOpenAfterMs`; then one call at a time goes through as a probe
 * until one succeeds. Any answer from etcd, even an error, shows the host is reachable.
 */
export class HostBreaker extends PolicyBase {
  private failures = 0;
  private openUntil = 0;
  private probing = false;

  constructor(
    private readonly host: string,
    private readonly threshold = 3,
    private readonly halfOpenAfterMs = 1_000,
  ) {
    super();
  }

  /**
   * Opens the breaker now for `ms`: the member answers but is of no use (its watch lost the
   * leader or stalled), so the pool tries the other endpoints first.
   */
  avoidFor(ms: number): void {
    this.failures = Math.max(this.failures, this.threshold);
    this.openUntil = Math.max(this.openUntil, Date.now() + ms);
  }

  async execute<T>(fn: (context: PolicyContext) => PromiseLike<T> | T): Promise<T> {
    const open = this.failures >= this.threshold;
    if (open && (Date.now() < this.openUntil || this.probing)) {
      throw new EtcdHostUnavailableError(this.host, this.failures, Math.max(0, this.openUntil - Date.now()));
    }
    this.probing = open;
    try {
      const result = await fn(this.context);
      this.failures = 0;
      return result;
    } catch (err) {
      if (err instanceof Error && isRecoverableError(err)) {
        this.failures++;
        if (this.failures >= this.threshold) this.openUntil = Date.now() + this.halfOpenAfterMs;
      } else {
        this.failures = 0;
      }
      throw err;
    } finally {
      if (open) this.probing = false;
    }
  }
}

/**
 * Global: an UNAVAILABLE call (the connection failed; typically nothing was sent) is tried on the
 * next endpoint, up to one try per endpoint. Other errors, deadlines included, go to the caller:
 * whether a write whose answer was lost was applied is for the caller to find out.
 */
export class NextEndpointRetry extends PolicyBase {
  constructor(private readonly endpoints: number) {
    super();
  }

  async execute<T>(fn: (context: PolicyContext) => PromiseLike<T> | T): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn(this.context);
      } catch (err) {
        if (attempt >= this.endpoints || !(err instanceof GRPCUnavailableError)) throw err;
      }
    }
  }
}

/**
 * The delay before etcd3's watch manager re-opens a lost watch stream. Nothing in this package
 * uses etcd3's watcher (the mirror has its own stream, watch-stream.ts); etcd3 only asks for it.
 */
export function watchStreamBackoff(delayMs: number): WatchBackoff {
  const backoff: WatchBackoff = { duration: delayMs, next: () => backoff };
  return backoff;
}

export function faultHandling(endpoints: string[]): FaultHandling {
  return {
    host: (host) => new HostBreaker(host),
    global: new NextEndpointRetry(endpoints.length),
    watchBackoff: watchStreamBackoff(250),
  };
}
