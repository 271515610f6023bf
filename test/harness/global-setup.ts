/**
 * vitest globalSetup of the "integration" project: starts the etcd shared by every test file once
 * (see startSharedEtcd for where it comes from) and provides its endpoints to the tests, which read
 * them with `sharedEtcdEndpoints()` or `inject('etcdEndpoints')` and work under a `uniquePrefix()`.
 */
import type { TestProject } from 'vitest/node';
import { startSharedEtcd } from './etcd.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Client URLs of the shared etcd, e.g. ["http://127.0.0.1:41234"]. */
    etcdEndpoints: string[];
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const etcd = await startSharedEtcd();
  console.log(`[global-setup] shared etcd at ${etcd.endpoints.join(',')} from ${etcd.source}`);
  project.provide('etcdEndpoints', etcd.endpoints);
  return () => etcd.stop();
}
