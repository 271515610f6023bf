import type { BalanceStrategy } from '@paas/registry';
import type { Balancer } from './balancer.js';
import { LeastConnectionsBalancer } from './least-connections.js';
import { RandomBalancer } from './random.js';
import { RoundRobinBalancer } from './round-robin.js';

export function createBalancer(strategy: BalanceStrategy): Balancer {
  switch (strategy) {
    case 'round-robin':
      return new RoundRobinBalancer();
    case 'least-connections':
      return new LeastConnectionsBalancer();
    case 'random':
      return new RandomBalancer();
  }
}
