import type { Backend } from '../table/backend.js';
import { eligible, type Balancer } from './balancer.js';

/**
 * Smooth weighted round robin (nginx): each pick adds every candidate's weight to its running
 * score, takes the highest and subtracts the total from it. Weights 5,1,1 give a,a,b,a,c,a,a:
 * exact proportions over every cycle, spread out rather than in bursts.
 */
export class RoundRobinBalancer implements Balancer {
  readonly strategy = 'round-robin';
  private ready: readonly Backend[] = [];
  /** Running score per ready backend, same order. */
  private scores: number[] = [];

  reset(ready: readonly Backend[]): void {
    this.ready = ready;
    this.scores = ready.map(() => 0);
  }

  pick(now: number, exclude: Backend | undefined): Backend | undefined {
    return this.choose(now, exclude, false) ?? this.choose(now, exclude, true);
  }

  private choose(now: number, exclude: Backend | undefined, panic: boolean): Backend | undefined {
    const ready = this.ready;
    const scores = this.scores;
    let total = 0;
    let best = -1;
    for (let i = 0; i < ready.length; i++) {
      const b = ready[i]!;
      if (!eligible(b, now, exclude, panic)) continue;
      const score = scores[i]! + b.weight;
      scores[i] = score;
      total += b.weight;
      if (best < 0 || score > scores[best]!) best = i;
    }
    if (best < 0) return undefined;
    scores[best] = scores[best]! - total;
    return ready[best];
  }
}
