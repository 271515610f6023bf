/**
 * Undoing the instance writes of a failed run: each key we wrote goes back to what it was (deleted
 * when we created it), but only if it is still exactly what we wrote (its mod revision) and the lock
 * is not held by another run meanwhile. Old instances were never touched, so they keep serving.
 */
import type { Compare, Etcd, TxnOp } from '@paas/registry';
import type { RollbackReport } from './errors.js';
import type { InstanceChange } from './instances.js';

export interface WrittenChange {
  change: InstanceChange;
  /** The revision of the transaction that wrote it. */
  revision: bigint;
}

export async function rollback(etcd: Etcd, written: WrittenChange[], lock: { key: string; revision: bigint }): Promise<RollbackReport> {
  const report: RollbackReport = { removed: [], restored: [], skipped: [] };
  if (written.length === 0) return report;

  const holder = await etcd.get(lock.key);
  if (holder && holder.createRevision !== lock.revision) {
    for (const w of written) report.skipped.push({ id: w.change.id, reason: 'another run holds the app lock now' });
    return report;
  }
  const guard: Compare = holder
    ? { key: lock.key, target: 'create', op: '=', value: lock.revision }
    : { key: lock.key, target: 'version', op: '=', value: 0n };

  const undo = (w: WrittenChange): { compare: Compare; op: TxnOp } => ({
    compare: { key: w.change.key, target: 'mod', op: '=', value: w.revision },
    op: w.change.before ? { put: w.change.key, value: w.change.before.raw } : { delete: w.change.key },
  });
  const record = (w: WrittenChange, revision: bigint) => {
    (w.change.before ? report.restored : report.removed).push(w.change.id);
    report.revision = revision;
  };

  // All at once when nothing changed meanwhile; otherwise key by key, keeping what someone else changed.
  const all = written.map(undo);
  const res = await etcd.txn([guard, ...all.map((u) => u.compare)], all.map((u) => u.op));
  if (res.succeeded) {
    for (const w of written) record(w, res.revision);
    return report;
  }
  for (const w of written) {
    const u = undo(w);
    const one = await etcd.txn([guard, u.compare], [u.op]);
    if (one.succeeded) record(w, one.revision);
    else report.skipped.push({ id: w.change.id, reason: 'changed since this run wrote it (or the lock was taken)' });
  }
  return report;
}
