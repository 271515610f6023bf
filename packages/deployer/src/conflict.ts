/** Turning a failed compare-and-swap into a clear error: the lock was lost, or what changed and where. */
import type { Etcd, KeyLayout } from '@paas/registry';
import { DeployError } from './errors.js';
import { describeDrift, readInstances, type Expectation } from './instances.js';
import { stillHeld } from './lock.js';

export async function conflictError(
  etcd: Etcd,
  layout: KeyLayout,
  app: string,
  lock: { key: string; revision: bigint },
  expected: Expectation,
  what: string,
): Promise<DeployError> {
  if (!(await stillHeld(etcd, lock.key, lock.revision))) {
    return new DeployError('lock-lost', `lost the lock ${lock.key} before ${what}: nothing written`);
  }
  const now = await readInstances(etcd, layout, app);
  const drift = describeDrift(expected, now);
  const detail = drift.length > 0 ? drift.join('; ') : 'a compared key changed and changed back';
  return new DeployError('conflict', `the instances of ${app} changed while deploying (${detail}): did not ${what}; re-run once the other change is done`);
}
