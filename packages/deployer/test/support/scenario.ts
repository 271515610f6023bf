/**
 * Set-up shared by the deployer's integration tests: the app `mango` recorded under a fresh
 * prefix of the shared etcd, two v1 instances already serving, and a failed deployment's error.
 */
import { expect } from 'vitest';
import { DeployError } from '@paas/deployer';
import { sharedEtcdEndpoints, uniquePrefix } from '../../../../test/harness/etcd.js';
import { World } from './world.js';

export async function mangoWorld(name: string): Promise<World> {
  const world = new World(sharedEtcdEndpoints(), uniquePrefix(`deployer-${name}`));
  await world.app('mango');
  return world;
}

/** Two v1 instances already serving, as a previous deployment left them. */
export async function serveV1(w: World): Promise<{ ids: string[]; revisions: bigint[] }> {
  const a = await w.instance();
  const b = await w.instance();
  const revisions = [
    await w.put('mango', 'v1-a', { url: a.url, state: 'ready', release: 'v1' }),
    await w.put('mango', 'v1-b', { url: b.url, state: 'ready', release: 'v1' }),
  ];
  return { ids: ['v1-a', 'v1-b'], revisions };
}

export async function expectDeployError(p: Promise<unknown>): Promise<DeployError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(DeployError);
    return err as DeployError;
  }
  throw new Error('expected the deployment to fail');
}
