/**
 * The fleet-wide limit on new ACME orders per minute: `--acme-orders-per-minute` slots in etcd
 * (`acme/order-slots/<n>`), each a lease-backed key created only if absent and held for a
 * minute after an order starts. A router finds no free slot → it waits, whatever the others do,
 * so a fleet of N routers never sends the CA more than the limit (Let's Encrypt counts orders
 * per account, and the account is the fleet's).
 */
import type { Etcd, KeyLayout } from '@paas/registry';

const SLOT_MS = 60_000;

export class OrderSlots {
  private readonly held = new Set<{ release(): Promise<void> }>();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly etcd: Etcd,
    private readonly layout: KeyLayout,
    private readonly perMinute: number,
    private readonly holder: string,
    private readonly ttlSeconds: number,
  ) {}

  /** Takes a slot for the next minute; false when all are taken. */
  async take(): Promise<boolean> {
    const dir = this.layout.acmeOrderSlot(0).slice(0, -1);
    const { entries } = await this.etcd.listPrefix(dir);
    const taken = new Set(entries.map((e) => e.key.slice(dir.length)));
    for (let n = 0; n < this.perMinute; n++) {
      if (taken.has(String(n))) continue;
      const res = await this.etcd.tryLock(this.layout.acmeOrderSlot(n), this.holder, this.ttlSeconds);
      if (!res.ok) continue;
      const lock = res.lock;
      this.held.add(lock);
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.held.delete(lock);
        void lock.release().catch(() => undefined);
      }, SLOT_MS);
      timer.unref();
      this.timers.add(timer);
      return true;
    }
    return false;
  }

  /**
   * On stop: the slots stay taken until their leases expire (the TTL), not for the rest of the
   * minute; the etcd client's close stops their keep-alives.
   */
  close(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.held.clear();
  }
}
