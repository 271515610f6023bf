/**
 * Loading apps into etcd fast: big transactions through one etcd3 client (@paas/registry's
 * connectEtcd). App i is `app<i>` with host app<i>.bench.local and two ready instances; 100k apps
 * are 300k keys, which go in ~34 transactions of 9 000 puts (our etcd allows 20 000 ops per txn)
 * with a few in flight: seconds, not the minutes of one put per key.
 */
import { connectEtcd } from '@paas/registry';

export const APPS_PER_TXN = 3000;

export function appRecord(host) {
  return JSON.stringify({ routes: [{ host }] });
}

export function instanceRecord(url) {
  return JSON.stringify({ url, state: 'ready' });
}

/** The ops that create app `name` (route host `host`) with `instances` ready instances at `url`. */
export function appOps(prefix, name, host, url, instances = 2) {
  const ops = [{ put: `${prefix}/apps/${name}`, value: appRecord(host) }];
  for (let k = 0; k < instances; k++) ops.push({ put: `${prefix}/instances/${name}/i${k}`, value: instanceRecord(url) });
  return ops;
}

/** Connects one client (close it when done). */
export function client(endpoint) {
  return connectEtcd({ endpoints: [endpoint], callTimeoutMs: 60_000 });
}

/**
 * Writes apps app<from>..app<to-1>; resolves { seconds, keys, revision }. `inFlight` transactions
 * at once keep etcd busy without one huge request.
 */
export async function loadApps(etcd, { prefix, from = 0, to, backendUrl, inFlight = 3 }) {
  const started = performance.now();
  let next = from;
  let keys = 0;
  let revision = 0n;
  const worker = async () => {
    while (next < to) {
      const lo = next;
      const hi = Math.min(to, lo + APPS_PER_TXN);
      next = hi;
      const ops = [];
      for (let i = lo; i < hi; i++) ops.push(...appOps(prefix, `app${i}`, `app${i}.bench.local`, backendUrl));
      const res = await etcd.txn([], ops);
      keys += ops.length;
      if (res.revision > revision) revision = res.revision;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return { seconds: (performance.now() - started) / 1000, keys, revision };
}
