/**
 * A stand-in for a router in integration tests of the deployer: it mirrors the watched range of a
 * real etcd and publishes a real status record on its own lease (`<prefix>/routers/<id>`), like the
 * contract says a router does, and lets a test make it misbehave: freeze (stop advancing while
 * staying live), hold requests "in flight" to an instance, reject a key, die (lease expires) or shut
 * down (key revoked at once). It proxies nothing; the e2e tests use real routers for that.
 */
import { createHash } from 'node:crypto';
import { connectEtcd, KeyLayout, type Etcd, type LeasedKey, type Mirror, type Rejected, type WatchEvent } from '@paas/registry';

export interface FakeRouterOptions {
  endpoints: string[];
  prefix: string;
  id: string;
  /** Lease TTL of the status record (default 2 s, so a killed fake router disappears quickly). */
  ttlSeconds?: number;
  /** Start frozen at the first snapshot's revision. */
  frozen?: boolean;
}

export class FakeRouter {
  readonly id: string;
  readonly layout: KeyLayout;
  /** The revision this router says it has applied. */
  applied = 0n;
  /** The newest revision seen in the watched range (applied unless frozen). */
  seen = 0n;
  frozen: boolean;
  /** Every revision published, in order. */
  readonly published: bigint[] = [];
  private readonly etcd: Etcd;
  private readonly status: LeasedKey;
  private mirror: Mirror | undefined;
  /** instance key -> state as seen in etcd */
  private readonly states = new Map<string, string>();
  private readonly inflight = new Map<string, number>();
  private readonly rejected: Rejected[] = [];
  private digestOverride: string | undefined;
  private dead = false;

  private constructor(opts: FakeRouterOptions) {
    this.id = opts.id;
    this.layout = new KeyLayout(opts.prefix);
    this.frozen = opts.frozen ?? false;
    this.etcd = connectEtcd({ endpoints: opts.endpoints });
    this.status = this.etcd.leasedKey(this.layout.router(opts.id), opts.ttlSeconds ?? 2);
  }

  static async start(opts: FakeRouterOptions): Promise<FakeRouter> {
    const r = new FakeRouter(opts);
    const range = r.layout.watchedRange();
    r.mirror = r.etcd.mirror(range, {
      onSnapshot: (entries, revision) => {
        r.states.clear();
        for (const e of entries) r.track({ type: 'put', key: e.key, value: e.value, createRevision: e.createRevision, modRevision: e.modRevision });
        r.advance(revision);
      },
      onRevision: (events, revision) => {
        for (const e of events) r.track(e);
        r.advance(revision);
      },
      onProgress: (revision) => r.advance(revision),
    });
    await r.mirror.start();
    await r.publish();
    return r;
  }

  /** Stops applying (the status record stays, alive on its lease, at the current revision). */
  freeze(): void {
    this.frozen = true;
  }

  /** Applies everything seen meanwhile and resumes. */
  async resume(): Promise<void> {
    this.frozen = false;
    this.applied = this.seen > this.applied ? this.seen : this.applied;
    await this.publish();
  }

  /** Reports `count` requests in flight to instance `<app>/<id>`. */
  async setInflight(app: string, id: string, count: number): Promise<void> {
    this.inflight.set(`${app}/${id}`, count);
    await this.publish();
  }

  /** Lists `key` as rejected at `revision` (as a router does with a record it cannot use). */
  async reject(key: string, revision: bigint, error: string): Promise<void> {
    this.rejected.push({ key, revision: revision.toString(), error });
    await this.publish();
  }

  async setDigest(digest: string): Promise<void> {
    this.digestOverride = digest;
    await this.publish();
  }

  /** Dies: keep-alives stop, the status key disappears when the lease expires (TTL). */
  async kill(): Promise<void> {
    if (this.dead) return;
    this.dead = true;
    await this.mirror?.close();
    await this.status.close({ revoke: false });
    await this.etcd.close();
  }

  /** Clean shutdown: the status key is revoked at once. */
  async stop(): Promise<void> {
    if (this.dead) return;
    this.dead = true;
    await this.mirror?.close();
    await this.status.close({ revoke: true });
    await this.etcd.close();
  }

  private track(e: WatchEvent): void {
    const ref = this.layout.parse(e.key);
    if (!ref.ok || ref.ref.kind !== 'instance') return;
    if (e.type === 'delete') {
      this.states.delete(e.key);
      return;
    }
    try {
      const v = JSON.parse(e.value.toString('utf8')) as { state?: string };
      this.states.set(e.key, String(v.state));
    } catch {
      this.states.delete(e.key);
    }
  }

  private advance(revision: bigint): void {
    if (revision > this.seen) this.seen = revision;
    if (this.frozen || this.dead) return;
    if (revision > this.applied) {
      this.applied = revision;
      void this.publish().catch(() => {});
    }
  }

  private record(): string {
    const inflight: Record<string, number> = {};
    for (const [key, state] of this.states) {
      if (state !== 'draining') continue;
      const ref = this.layout.parse(key);
      if (ref.ok && ref.ref.kind === 'instance') inflight[`${ref.ref.app}/${ref.ref.id}`] = 0;
    }
    for (const [k, n] of this.inflight) inflight[k] = n;
    const digest = this.digestOverride ?? createHash('sha256').update(JSON.stringify([...this.states].sort())).digest('hex').slice(0, 16);
    return JSON.stringify({
      revision: this.applied.toString(),
      digest,
      routes: this.states.size,
      rejected: this.rejected,
      inflight,
      updatedAt: new Date().toISOString(),
    });
  }

  private async publish(): Promise<void> {
    if (this.dead) return;
    this.published.push(this.applied);
    await this.status.set(this.record());
  }
}
