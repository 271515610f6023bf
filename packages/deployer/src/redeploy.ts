/**
 * redeploy: replace every instance of an app with new ones, with zero downtime, gated on what the
 * routers themselves report having applied.
 *
 *   1 lock       the per-app lock (a second run fails fast, naming the holder)
 *   2 health     every new instance answers 2xx on the health path (else nothing is written)
 *   3 write      one CAS transaction: new instances `ready`                          -> R1
 *   4 confirm    every live router reports revision >= R1 (else roll back)
 *   5 drain      one CAS transaction: every other instance `draining`                -> R2
 *                every live router reports revision >= R2
 *   6 inflight   no router reports a request in flight to them (bounded), then delete
 *
 * Any failure before the draining transaction removes what this run wrote. The run is idempotent:
 * instances already registered with a wanted URL are reused, and instances a dead run left
 * draining are drained and deleted like any other old instance.
 */
import { instanceUrlError, type Etcd, type KeyLayout } from '@paas/registry';
import { healthPathOf, requireApp } from './apps.js';
import { conflictError } from './conflict.js';
import { applyDetail, drainAndDelete, type DrainOutcome } from './drain.js';
import { asDeployError, DeployError, requireName } from './errors.js';
import { noProgress, type ProgressListener } from './events.js';
import { readinessSummary, waitAllHealthy } from './health.js';
import { normalizeUrl } from './ids.js';
import { commitChanges, expectationOf, readInstances, describeDrift, type InstanceEntry } from './instances.js';
import type { LockHolder } from './lock.js';
import { planInstances, type PlannedInstance } from './plan.js';
import { rollback, type WrittenChange } from './rollback.js';
import { closeSession, openSession, requireRouters, type Session } from './session.js';
import { StepTimer, type StepRecord } from './steps.js';
import { waitForRevision, type ApplyWaitReport } from './waits.js';

export interface Timeouts {
  /** How long each new instance may take to pass its health check (default 30 s). */
  healthTimeoutMs?: number;
  /** How long a live router may stay behind a revision we wait on (default 10 s). */
  routerTimeoutMs?: number;
  /** How long to wait for requests in flight to draining instances (default 30 s). */
  drainTimeoutMs?: number;
  /** TTL of the app lock's lease: how long a dead deployer blocks the next run (default 10 s). */
  lockTtlSeconds?: number;
}

export const DEFAULTS = {
  healthTimeoutMs: 30_000,
  routerTimeoutMs: 10_000,
  drainTimeoutMs: 30_000,
  lockTtlSeconds: 10,
} as const satisfies Required<Timeouts>;

export interface RedeployOptions extends Timeouts {
  app: string;
  urls: string[];
  release?: string | undefined;
  /** Proceed when no router is live (nothing confirms traffic); off by default. */
  allowNoRouters?: boolean;
  holder?: LockHolder;
  signal?: AbortSignal;
  /** Id generator for new instances (tests). */
  random?: () => string;
}

export interface RedeployResult {
  app: string;
  release: string | undefined;
  instances: PlannedInstance[];
  /** Revision at which the new instances were ready (R1). */
  readyRevision: bigint;
  confirm: ApplyWaitReport;
  /** The old instances' drain; undefined when there was none. */
  drain: DrainOutcome | undefined;
  /** Old instances left alone because their record is invalid. */
  ignored: { id: string; error: string }[];
  steps: StepRecord[];
  totalMs: number;
}

export function checkRedeployOptions(opts: RedeployOptions): void {
  requireName('app name', opts.app);
  if (opts.urls.length === 0) throw new DeployError('invalid', 'at least one --url is needed');
  const seen = new Set<string>();
  for (const url of opts.urls) {
    const err = instanceUrlError(url.replace(/\/+$/, ''));
    if (err) throw new DeployError('invalid', `${url}: ${err}`);
    const n = normalizeUrl(url);
    if (seen.has(n)) throw new DeployError('invalid', `--url ${url} is given twice`);
    seen.add(n);
  }
}

export async function redeploy(etcd: Etcd, layout: KeyLayout, opts: RedeployOptions, progress: ProgressListener = noProgress): Promise<RedeployResult> {
  checkRedeployOptions(opts);
  const t = { ...DEFAULTS, ...definedOnly(opts) };
  const allowNoRouters = opts.allowNoRouters ?? false;
  const steps = new StepTimer(progress);
  const written: WrittenChange[] = [];
  let drainCommitted: bigint | undefined;
  let session: Session | undefined;
  try {
    const s = (session = await openSession(etcd, layout, opts.app, { lockTtlSeconds: t.lockTtlSeconds, holder: opts.holder, command: 'redeploy', signal: opts.signal }, steps, progress));
    const appRecord = await requireApp(etcd, layout, opts.app);
    requireRouters(s, allowNoRouters);

    // 2. Health check every wanted instance (reused ones too: they are about to take all traffic).
    const healthPath = healthPathOf(appRecord);
    await steps.run(
      'health',
      () =>
        waitAllHealthy(
          opts.urls.map(normalizeUrl),
          { path: healthPath, timeoutMs: t.healthTimeoutMs, attemptTimeoutMs: appRecord.healthCheck?.timeoutMs ?? 1000, signal: s.signal },
          progress,
          { etcd, layout, app: opts.app, fleet: s.fleet },
        ),
      (r) => readinessSummary(r, healthPath),
    );

    // 3. One CAS transaction: the new instances ready.
    const snapshot = await readInstances(etcd, layout, opts.app);
    const plan = planInstances(
      snapshot,
      opts.urls.map((url) => ({ url })),
      { app: opts.app, state: 'ready', release: opts.release, keyOf: (id) => layout.instance(opts.app, id), ...(opts.random ? { random: opts.random } : {}) },
    );
    const expected = expectationOf(snapshot);
    const readyRevision = await steps.run(
      'write',
      async () => {
        if (plan.changes.length === 0) {
          return plan.instances.reduce((m, i) => (i.unchangedAt !== undefined && i.unchangedAt > m ? i.unchangedAt : m), 0n);
        }
        const changedIds = new Set(plan.changes.map((c) => c.id));
        const unchanged = [...snapshot.byId.values()].filter((e) => !changedIds.has(e.id));
        const rev = await commitChanges(etcd, plan.changes, { unchanged, fence: [s.lock.fence()] });
        if (rev === undefined) throw await conflictError(etcd, layout, opts.app, lockRef(s), expected, 'write the new instances');
        for (const c of plan.changes) {
          written.push({ change: c, revision: rev });
          expected.set(c.id, rev);
        }
        progress({ type: 'written', step: 'write', revision: rev, ids: plan.changes.map((c) => c.id) });
        return rev;
      },
      (rev) => {
        const reused = plan.instances.filter((i) => i.reused).length;
        const ids = plan.instances.map((i) => i.id).join(', ');
        return plan.changes.length === 0 ? `${ids} already ready (revision ${rev})` : `${ids} ready at revision ${rev}${reused ? ` (${reused} reused)` : ''}`;
      },
    );

    // 4. Every live router has applied R1.
    const confirm = await steps.run(
      'confirm',
      () =>
        waitForRevision(
          s.fleet,
          readyRevision,
          { step: 'confirm', timeoutMs: t.routerTimeoutMs, allowNoRouters, keys: plan.instances.map((i) => i.key), signal: s.signal },
          progress,
        ),
      applyDetail,
    );

    // 5 and 6. Every other instance draining, confirmed, drained, deleted.
    const now = await readInstances(etcd, layout, opts.app);
    const drift = describeDrift(expected, now);
    if (drift.length > 0) {
      throw new DeployError('conflict', `the instances of ${opts.app} changed while deploying (${drift.join('; ')}): did not drain the old ones; re-run once the other change is done`);
    }
    const newIds = new Set(plan.instances.map((i) => i.id));
    const others = [...now.byId.values()].filter((e) => !newIds.has(e.id));
    const old = others.filter((e) => e.record !== undefined);
    const ignored = others.filter((e) => e.record === undefined).map((e) => ({ id: e.id, error: e.error ?? 'invalid' }));
    for (const i of ignored) progress({ type: 'warning', message: `left ${opts.app}/${i.id} alone: its record is invalid (${i.error})` });

    let drain: DrainOutcome | undefined;
    if (old.length === 0) {
      for (const step of ['drain', 'confirm-drain', 'inflight', 'delete'] as const) steps.skip(step, 'no old instance');
    } else {
      const unchanged: InstanceEntry[] = [...now.byId.values()].filter((e) => !old.includes(e));
      drain = await drainAndDelete(s, old, {
        routerTimeoutMs: t.routerTimeoutMs,
        drainTimeoutMs: t.drainTimeoutMs,
        allowNoRouters,
        unchanged,
        onCommitted: (rev) => (drainCommitted = rev),
      });
    }
    return {
      app: opts.app,
      release: opts.release,
      instances: plan.instances,
      readyRevision,
      confirm,
      drain,
      ignored,
      steps: steps.records,
      totalMs: steps.elapsedMs(),
    };
  } catch (e) {
    const err = asDeployError(e);
    err.steps = steps.records;
    if (drainCommitted === undefined && written.length > 0 && session) {
      try {
        err.rollback = await steps.run('rollback', () => rollback(etcd, written, lockRef(session!)), describeRollback);
      } catch (rbErr) {
        err.rollback = { removed: [], restored: [], skipped: [], error: rbErr instanceof Error ? rbErr.message : String(rbErr) };
        err.notes.push(`the new instances ${written.map((w) => w.change.id).join(', ')} may still be ready; the old ones were not touched`);
      }
      err.steps = steps.records;
    } else if (drainCommitted !== undefined) {
      err.notes.push(
        `the new instances serve; the old ones are draining since revision ${drainCommitted} and were not all deleted: run the same redeploy again (or "paas-deploy retire") to finish`,
      );
    }
    throw err;
  } finally {
    await closeSession(session);
  }
}

export function describeRollback(r: { removed: string[]; restored: string[]; skipped: { id: string; reason: string }[] }): string {
  const parts: string[] = [];
  if (r.removed.length) parts.push(`removed ${r.removed.join(', ')}`);
  if (r.restored.length) parts.push(`restored ${r.restored.join(', ')}`);
  if (r.skipped.length) parts.push(`left ${r.skipped.map((x) => `${x.id} (${x.reason})`).join(', ')}`);
  return parts.join('; ') || 'nothing to undo';
}

function lockRef(s: Session): { key: string; revision: bigint } {
  return { key: s.lock.key, revision: s.lock.lock.revision };
}

function definedOnly(t: Timeouts): Partial<Required<Timeouts>> {
  const out: Partial<Required<Timeouts>> = {};
  for (const k of ['healthTimeoutMs', 'routerTimeoutMs', 'drainTimeoutMs', 'lockTtlSeconds'] as const) {
    const v = t[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}
