/**
 * The live routers' tunnel addresses, as their status records (on their leases) give them: what
 * a router tells a connecting agent, so one address is enough for an agent to reach the fleet.
 * Read from etcd at most once per CACHE_MS: 100 agents reconnecting at once cost one read.
 */
import { parseRouterStatusRecord, type Etcd, type KeyLayout } from '@paas/registry';

const CACHE_MS = 1000;

export function livePeers(etcd: Etcd, layout: KeyLayout, self: string): () => Promise<string[]> {
  let cached: { at: number; list: Promise<string[]> } | undefined;
  return () => {
    const now = Date.now();
    if (cached === undefined || now - cached.at > CACHE_MS) {
      const list = etcd.listPrefix(layout.routersDir).then(({ entries }) => {
        const out = new Set<string>([self]);
        for (const e of entries) {
          const r = parseRouterStatusRecord(e.value);
          if (r.ok && typeof r.value.tunnel === 'string') out.add(r.value.tunnel);
        }
        return [...out].sort();
      });
      list.catch(() => {
        cached = undefined;
      });
      cached = { at: now, list };
    }
    return cached.list;
  };
}
