/** The router's report of what it has applied, as /status shows it and etcd stores it. */
import type { RouterStatusRecord } from '@paas/registry';
import type { TableSync } from '../records/table-sync.js';

/** Draining instances are always listed (0 when idle) so a deployer can wait for them; others only when busy. */
export function inflightReport(sync: TableSync): Record<string, number> {
  const out: Record<string, number> = {};
  for (const b of sync.table.reportedBackends()) out[b.key] = b.inflight;
  return out;
}

export function statusRecord(sync: TableSync, startedAt: string): RouterStatusRecord {
  return {
    revision: sync.revision.toString(),
    digest: sync.digest(),
    routes: sync.table.routeCount(),
    rejected: sync.rejected(),
    inflight: inflightReport(sync),
    conflicts: sync.table.conflicts(),
    startedAt,
    updatedAt: new Date().toISOString(),
  };
}
