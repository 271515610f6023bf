/**
 * `tunnels/<app>/<id>/<router-id>`: `{connections, since}` while this router holds sessions from
 * an instance's agent, gone when it holds none (deleted at once) or when the router dies (the
 * key's lease lapses, with the router's --lease-ttl). Each record has its own lease (a LeasedKey,
 * as the status record): a lost lease is re-granted and the record written again.
 */
import type { Etcd, KeyLayout, LeasedKey, TunnelPresenceRecord } from '@paas/registry';
import type { PresenceSink } from './sessions.js';

export interface PresenceLogger {
  warn(obj: object, msg: string): void;
}

export class TunnelPresence implements PresenceSink {
  private readonly keys = new Map<string, LeasedKey>();

  constructor(
    private readonly etcd: Etcd,
    private readonly layout: KeyLayout,
    private readonly routerId: string,
    private readonly ttlSeconds: number,
    private readonly log: PresenceLogger,
  ) {}

  changed(app: string, id: string, connections: number, since: number): void {
    const key = this.layout.tunnelPresence(app, id, this.routerId);
    let leased = this.keys.get(key);
    if (connections === 0) {
      if (leased === undefined) return;
      this.keys.delete(key);
      leased.close({ revoke: true }).catch((err: Error) => this.log.warn({ key, err: err.message }, 'could not remove the tunnel presence record'));
      return;
    }
    if (leased === undefined) this.keys.set(key, (leased = this.etcd.leasedKey(key, this.ttlSeconds)));
    const value: TunnelPresenceRecord = { connections, since: new Date(since).toISOString() };
    leased.set(JSON.stringify(value)).catch((err: Error) => this.log.warn({ key, err: err.message }, 'could not write the tunnel presence record; will retry'));
  }

  async close(): Promise<void> {
    const all = [...this.keys.values()];
    this.keys.clear();
    await Promise.all(all.map((k) => k.close({ revoke: true }).catch(() => undefined)));
  }
}
