/**
 * One isolated deployment world per test: a unique key prefix in the shared etcd, a client, an app
 * record, test instances and fake routers, all cleaned up by `close()`.
 */
import { connectEtcd, KeyLayout, type Etcd, type InstanceRecord } from '@paas/registry';
import { FakeRouter, type FakeRouterOptions } from './fake-router.js';
import { startInstance, type TestInstance } from './instances.js';

export class World {
  readonly etcd: Etcd;
  readonly layout: KeyLayout;
  readonly routers: FakeRouter[] = [];
  readonly instances: TestInstance[] = [];
  private readonly cleanups: (() => Promise<unknown>)[] = [];

  constructor(
    readonly endpoints: string[],
    readonly prefix: string,
  ) {
    this.etcd = connectEtcd({ endpoints });
    this.layout = new KeyLayout(prefix);
  }

  async app(app: string, record: Record<string, unknown> = { routes: [{ host: `${app}.example.com` }] }): Promise<bigint> {
    return this.etcd.put(this.layout.app(app), JSON.stringify(record));
  }

  async router(id: string, opts: Partial<FakeRouterOptions> = {}): Promise<FakeRouter> {
    const r = await FakeRouter.start({ endpoints: this.endpoints, prefix: this.prefix, id, ...opts });
    this.routers.push(r);
    return r;
  }

  async instance(opts: { healthy?: boolean } = {}): Promise<TestInstance> {
    const i = await startInstance(opts);
    this.instances.push(i);
    return i;
  }

  /** Writes an instance record directly (as an earlier deployment or etcdctl would have). */
  async put(app: string, id: string, record: InstanceRecord | Record<string, unknown>): Promise<bigint> {
    return this.etcd.put(this.layout.instance(app, id), JSON.stringify(record));
  }

  /** The app's instances as stored: id -> record (and mod revision). */
  async read(app: string): Promise<Map<string, InstanceRecord & { modRevision: bigint }>> {
    const { entries } = await this.etcd.listPrefix(this.layout.instancesOf(app));
    const m = new Map<string, InstanceRecord & { modRevision: bigint }>();
    for (const e of entries) {
      m.set(e.key.slice(this.layout.instancesOf(app).length), { ...(JSON.parse(e.value.toString('utf8')) as InstanceRecord), modRevision: e.modRevision });
    }
    return m;
  }

  onClose(fn: () => Promise<unknown>): void {
    this.cleanups.push(fn);
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.cleanups.map((fn) => fn()));
    await Promise.allSettled(this.routers.map((r) => r.stop()));
    await Promise.allSettled(this.instances.map((i) => i.close()));
    await this.etcd.close();
  }
}
