/**
 * Retiring instances without dropping a request: mark them draining (one CAS transaction), wait until
 * every live router has applied that, wait until no router reports a request in flight to them
 * (bounded), then delete them (one CAS transaction).
 */
import { conflictError } from './conflict.js';
import { formatMs } from './duration.js';
import { DeployError } from './errors.js';
import { commitChanges, compareFor, readInstances, withState, type Expectation, type InstanceChange, type InstanceEntry } from './instances.js';
import type { Session } from './session.js';
import { waitForDrain, waitForRevision, type ApplyWaitReport, type DrainWaitReport } from './waits.js';

export interface DrainOptions {
  routerTimeoutMs: number;
  drainTimeoutMs: number;
  allowNoRouters: boolean;
  /** Keys read with the instances to drain and expected unchanged (compared in the draining txn). */
  unchanged: InstanceEntry[];
  /** Called once the draining transaction committed (nothing can be rolled back after it). */
  onCommitted?: (revision: bigint) => void;
}

export interface DrainOutcome {
  ids: string[];
  /** Revision at which the instances were draining. */
  revision: bigint;
  confirm: ApplyWaitReport;
  drain: DrainWaitReport;
  deleted: string[];
  /** Instances not deleted because someone changed them during the drain. */
  kept: { id: string; reason: string }[];
  deleteRevision: bigint | undefined;
}

export async function drainAndDelete(s: Session, entries: InstanceEntry[], opts: DrainOptions): Promise<DrainOutcome> {
  const { etcd, layout, app, steps, emit } = s;
  const ids = entries.map((e) => e.id);

  // Mark draining (those not already draining: a previous run may have left some).
  const { revision, expectedAfter } = await steps.run(
    'drain',
    async () => {
      const changes: InstanceChange[] = entries
        .filter((e) => e.record?.state !== 'draining')
        .map((e) => ({ id: e.id, key: e.key, before: e, after: withState(e, 'draining') }));
      const already = entries.filter((e) => e.record?.state === 'draining');
      const expected: Expectation = new Map();
      for (const e of [...entries, ...opts.unchanged]) expected.set(e.id, e.modRevision);
      if (changes.length === 0) {
        const rev = entries.reduce((m, e) => (e.modRevision > m ? e.modRevision : m), 0n);
        return { revision: rev, expectedAfter: expected, written: 0, already: already.length };
      }
      const rev = await commitChanges(etcd, changes, { unchanged: [...already, ...opts.unchanged], fence: [s.lock.fence()] });
      if (rev === undefined) throw await conflictError(etcd, layout, app, { key: s.lock.key, revision: s.lock.lock.revision }, expected, 'mark old instances draining');
      for (const c of changes) expected.set(c.id, rev);
      emit({ type: 'written', step: 'drain', revision: rev, ids: changes.map((c) => c.id) });
      return { revision: rev, expectedAfter: expected, written: changes.length, already: already.length };
    },
    (v) => `${ids.join(', ')} draining at revision ${v.revision}${v.already ? ` (${v.already} already draining)` : ''}`,
  );
  opts.onCommitted?.(revision);

  const confirm = await steps.run(
    'confirm-drain',
    () => waitForRevision(s.fleet, revision, { step: 'confirm-drain', timeoutMs: opts.routerTimeoutMs, allowNoRouters: opts.allowNoRouters, signal: s.signal }, emit),
    (r) => applyDetail(r),
  );

  const drain = await steps.run(
    'inflight',
    () => waitForDrain(s.fleet, { instances: ids.map((id) => `${app}/${id}`), minRevision: revision, timeoutMs: opts.drainTimeoutMs, signal: s.signal }, emit),
    (d) =>
      d.timedOut
        ? `drain timeout (${formatMs(opts.drainTimeoutMs)}) passed with ${describeRemaining(d)}: deleting anyway`
        : `no request in flight${d.peak ? ` (peak ${d.peak})` : ''}`,
  );
  if (drain.timedOut) emit({ type: 'warning', message: `drain timeout passed with ${describeRemaining(drain)}; deleting anyway` });

  const del = await steps.run(
    'delete',
    () => deleteDrained(s, entries.map((e) => ({ id: e.id, key: e.key, modRevision: expectedAfter.get(e.id) as bigint }))),
    (d) => (d.deleted.length ? `${d.deleted.join(', ')} deleted at revision ${d.revision}` : 'nothing deleted') + (d.kept.length ? `; kept ${d.kept.map((k) => k.id).join(', ')}` : ''),
  );
  for (const k of del.kept) emit({ type: 'warning', message: `kept ${app}/${k.id}: ${k.reason}` });
  return { ids, revision, confirm, drain, deleted: del.deleted, kept: del.kept, deleteRevision: del.revision };
}

/** Deletes the drained keys that are still what we left them (state draining at our revision). */
async function deleteDrained(
  s: Session,
  keys: { id: string; key: string; modRevision: bigint }[],
): Promise<{ deleted: string[]; kept: { id: string; reason: string }[]; revision: bigint | undefined }> {
  const fence = s.lock.fence();
  const res = await s.etcd.txn(
    [fence, ...keys.map((k) => compareFor(k.key, k.modRevision))],
    keys.map((k) => ({ delete: k.key })),
  );
  if (res.succeeded) return { deleted: keys.map((k) => k.id), kept: [], revision: res.revision };

  // Someone changed some of them (or the lock is gone): delete only the untouched ones.
  const held = await s.etcd.get(s.lock.key);
  if (!held || held.createRevision !== s.lock.lock.revision) {
    throw new DeployError('lock-lost', `lost the lock ${s.lock.key} before deleting ${keys.map((k) => k.id).join(', ')}: they stay draining`);
  }
  const now = await readInstances(s.etcd, s.layout, s.app);
  const deletable = keys.filter((k) => now.byId.get(k.id)?.modRevision === k.modRevision);
  const kept = keys
    .filter((k) => !deletable.includes(k))
    .map((k) => {
      const cur = now.byId.get(k.id);
      return { id: k.id, reason: cur ? `changed during the drain (now ${cur.record?.state ?? 'invalid'} at revision ${cur.modRevision})` : 'already deleted' };
    });
  if (deletable.length === 0) return { deleted: [], kept, revision: undefined };
  const again = await s.etcd.txn(
    [fence, ...deletable.map((k) => compareFor(k.key, k.modRevision))],
    deletable.map((k) => ({ delete: k.key })),
  );
  if (!again.succeeded) throw new DeployError('conflict', `the instances of ${s.app} keep changing: could not delete ${deletable.map((k) => k.id).join(', ')}`);
  return { deleted: deletable.map((k) => k.id), kept, revision: again.revision };
}

export function applyDetail(r: ApplyWaitReport): string {
  const parts = [`revision ${r.target} on ${r.routers.length} router${r.routers.length === 1 ? '' : 's'} in ${formatMs(r.ms)}`];
  if (r.routers.length) parts.push(`(${r.routers.map((x) => `${x.id} ${formatMs(x.ms)}`).join(', ')})`);
  if (r.gone.length) parts.push(`gone meanwhile: ${r.gone.join(', ')}`);
  return parts.join(' ');
}

function describeRemaining(d: DrainWaitReport): string {
  const parts = d.remaining.map((e) => `${e.count} on ${e.router} to ${e.instance}`);
  if (d.behind.length) parts.push(`routers not yet confirming: ${d.behind.join(', ')}`);
  if (d.unreported.length) parts.push(`routers whose status record is too full to list them: ${d.unreported.join(', ')}`);
  return parts.join(', ') || 'nothing reported';
}
