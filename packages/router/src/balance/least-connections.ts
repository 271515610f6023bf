import type { Backend } from '../table/backend.js';
import { eligible, type Balancer } from './balancer.js';

/**
 * The backend with the fewest open requests per unit of weight. The scan starts one past the
 * previous choice, so ties (an idle pool) rotate round robin instead of piling onto the first.
 */
export class LeastConnectionsBalancer implements Balancer {
  readonly strategy = 'least-connections';
  private ready: readonly Backend[] = [];
  private cursor = 0;

  reset(ready: readonly Backend[]): void {
    this.ready = ready;
    this.cursor = 0;
  }

  pick(now: number, exclude: Backend | undefined): Backend | undefined {
    return this.choose(now, exclude, false) ?? this.choose(now, exclude, true);
  }

  private choose(now: number, exclude: Backend | undefined, panic: boolean): Backend | undefined {
    const ready = this.ready;
    const n = ready.length;
    let best: Backend | undefined;
    let bestIndex = 0;
    for (let k = 0; k < n; k++) {
      const i = this.cursor + k < n ? this.cursor + k : this.cursor + k - n;
      const b = ready[i]!;
      if (!eligible(b, now, exclude, panic)) continue;
      // inflight/weight compared without dividing: a/wa < b/wb  <=>  a*wb < b*wa
      if (best === undefined || b.inflight * best.weight < best.inflight * b.weight) {
        best = b;
        bestIndex = i;
      }
    }
    if (best !== undefined) this.cursor = bestIndex + 1 < n ? bestIndex + 1 : 0;
    return best;
  }
}
