import type { Backend } from '../table/backend.js';
import { eligible, type Balancer } from './balancer.js';

/** Weighted random: each candidate with probability weight / total weight of the candidates. */
export class RandomBalancer implements Balancer {
  readonly strategy = 'random';
  private ready: readonly Backend[] = [];
  private readonly random: () => number;

  /** `random` returns a float in [0, 1); tests pass a seeded one. */
  constructor(random: () => number = Math.random) {
    this.random = random;
  }

  reset(ready: readonly Backend[]): void {
    this.ready = ready;
  }

  pick(now: number, exclude: Backend | undefined): Backend | undefined {
    return this.choose(now, exclude, false) ?? this.choose(now, exclude, true);
  }

  private choose(now: number, exclude: Backend | undefined, panic: boolean): Backend | undefined {
    const ready = this.ready;
    let total = 0;
    for (let i = 0; i < ready.length; i++) {
      const b = ready[i]!;
      if (eligible(b, now, exclude, panic)) total += b.weight;
    }
    if (total === 0) return undefined;
    let r = this.random() * total;
    let last: Backend | undefined;
    for (let i = 0; i < ready.length; i++) {
      const b = ready[i]!;
      if (!eligible(b, now, exclude, panic)) continue;
      r -= b.weight;
      if (r < 0) return b;
      last = b;
    }
    // Only reached if rounding left r at exactly 0 after the last candidate.
    return last;
  }
}
