/** Pacing retries while etcd is unreachable. */

/** Exponential back-off, 100 ms doubling up to 5 s, ±20 % jitter so many clients do not retry in step. */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly minMs = 100,
    private readonly maxMs = 5_000,
  ) {}

  /** The delay before the next try. */
  next(): number {
    const base = Math.min(this.maxMs, this.minMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return Math.min(this.maxMs, base * (0.8 + 0.4 * Math.random()));
  }

  reset(): void {
    this.attempt = 0;
  }
}

/**
 * A delay spread evenly over [0, maxMs): when a compaction sends many routers (and each of their
 * workers) back to a full list at once, their lists reach etcd spread out instead of together.
 */
export function jitteredDelay(maxMs: number, random: () => number = Math.random): number {
  return Math.floor(Math.max(0, maxMs) * Math.min(Math.max(random(), 0), 0.999_999));
}

/** Sleeps that close() can cut short, so a retry loop notices at once that it should stop. */
export class Sleeper {
  private readonly pending = new Set<() => void>();

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.pending.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.pending.add(wake);
    });
  }

  wakeAll(): void {
    for (const wake of [...this.pending]) wake();
  }
}
