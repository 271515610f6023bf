/**
 * register: add one instance to an app (ready once its health check passes, or `starting`), and
 * wait until every live router has applied it. A router that stays behind rolls the write back.
 */
import { instanceUrlError, type Etcd, type InstanceRecord, type KeyLayout } from '@paas/registry';
import { healthPathOf, requireApp } from './apps.js';
import { conflictError } from './conflict.js';
import { applyDetail } from './drain.js';
import { asDeployError, DeployError, requireName } from './errors.js';
import { noProgress, type ProgressListener } from './events.js';
import { readinessSummary, waitAllHealthy } from './health.js';
import { normalizeUrl } from './ids.js';
import { commitChanges, expectationOf, readInstances } from './instances.js';
import type { LockHolder } from './lock.js';
import { planInstances, type PlannedInstance } from './plan.js';
import { DEFAULTS, describeRollback, type Timeouts } from './redeploy.js';
import { rollback, type WrittenChange } from './rollback.js';
import { closeSession, openSession, requireRouters, type Session } from './session.js';
import { StepTimer, type StepRecord } from './steps.js';
import { waitForRevision, type ApplyWaitReport } from './waits.js';

export interface RegisterOptions extends Omit<Timeouts, 'drainTimeoutMs'> {
  app: string;
  url: string;
  id?: string | undefined;
  release?: string | undefined;
  weight?: number | undefined;
  /** `ready` (default, after a health check) or `starting` (no health check, no traffic yet). */
  state?: Extract<InstanceRecord['state'], 'ready' | 'starting'>;
  allowNoRouters?: boolean;
  holder?: LockHolder;
  signal?: AbortSignal;
  random?: () => string;
}

export interface RegisterResult {
  app: string;
  instance: PlannedInstance;
  state: 'ready' | 'starting';
  revision: bigint;
  confirm: ApplyWaitReport;
  steps: StepRecord[];
  totalMs: number;
}

export function checkRegisterOptions(opts: RegisterOptions): void {
  requireName('app name', opts.app);
  if (opts.id !== undefined) requireName('instance id', opts.id);
  const err = instanceUrlError(opts.url.replace(/\/+$/, ''));
  if (err) throw new DeployError('invalid', `${opts.url}: ${err}`);
  if (opts.weight !== undefined && (!Number.isInteger(opts.weight) || opts.weight < 1 || opts.weight > 100)) {
    throw new DeployError('invalid', `weight must be an integer from 1 to 100, not ${opts.weight}`);
  }
}

export async function register(etcd: Etcd, layout: KeyLayout, opts: RegisterOptions, progress: ProgressListener = noProgress): Promise<RegisterResult> {
  checkRegisterOptions(opts);
  const routerTimeoutMs = opts.routerTimeoutMs ?? DEFAULTS.routerTimeoutMs;
  const state = opts.state ?? 'ready';
  const allowNoRouters = opts.allowNoRouters ?? false;
  const steps = new StepTimer(progress);
  const written: WrittenChange[] = [];
  let session: Session | undefined;
  try {
    const s = (session = await openSession(
      etcd,
      layout,
      opts.app,
      { lockTtlSeconds: opts.lockTtlSeconds ?? DEFAULTS.lockTtlSeconds, holder: opts.holder, command: 'register', signal: opts.signal },
      steps,
      progress,
    ));
    const appRecord = await requireApp(etcd, layout, opts.app);
    requireRouters(s, allowNoRouters);
    const url = normalizeUrl(opts.url);
    if (state === 'ready') {
      const healthPath = healthPathOf(appRecord);
      await steps.run(
        'health',
        () =>
          waitAllHealthy(
            [url],
            { path: healthPath, timeoutMs: opts.healthTimeoutMs ?? DEFAULTS.healthTimeoutMs, attemptTimeoutMs: appRecord.healthCheck?.timeoutMs ?? 1000, signal: s.signal },
            progress,
            { etcd, layout, app: opts.app, fleet: s.fleet },
          ),
        (r) => readinessSummary(r, healthPath),
      );
    } else {
      steps.skip('health', 'state starting: no health check');
    }

    const snapshot = await readInstances(etcd, layout, opts.app);
    const plan = planInstances(snapshot, [{ url, id: opts.id }], {
      app: opts.app,
      state,
      release: opts.release,
      weight: opts.weight,
      keyOf: (id) => layout.instance(opts.app, id),
      ...(opts.random ? { random: opts.random } : {}),
    });
    const instance = plan.instances[0]!;
    const revision = await steps.run(
      'write',
      async () => {
        if (plan.changes.length === 0) return instance.unchangedAt ?? snapshot.revision;
        const rev = await commitChanges(etcd, plan.changes, { fence: [s.lock.fence()] });
        if (rev === undefined) throw await conflictError(etcd, layout, opts.app, { key: s.lock.key, revision: s.lock.lock.revision }, expectationOf(snapshot), 'register the instance');
        for (const c of plan.changes) written.push({ change: c, revision: rev });
        progress({ type: 'written', step: 'write', revision: rev, ids: [instance.id] });
        return rev;
      },
      (rev) => `${opts.app}/${instance.id} ${state} at revision ${rev}${plan.changes.length === 0 ? ' (already registered)' : instance.reused ? ' (reused)' : ''}`,
    );
    const confirm = await steps.run(
      'confirm',
      () => waitForRevision(s.fleet, revision, { step: 'confirm', timeoutMs: routerTimeoutMs, allowNoRouters, keys: [instance.key], signal: s.signal }, progress),
      applyDetail,
    );
    return { app: opts.app, instance, state, revision, confirm, steps: steps.records, totalMs: steps.elapsedMs() };
  } catch (e) {
    const err = asDeployError(e);
    if (written.length > 0 && session) {
      const s = session;
      try {
        err.rollback = await steps.run('rollback', () => rollback(etcd, written, { key: s.lock.key, revision: s.lock.lock.revision }), describeRollback);
      } catch (rbErr) {
        err.rollback = { removed: [], restored: [], skipped: [], error: rbErr instanceof Error ? rbErr.message : String(rbErr) };
      }
    }
    err.steps = steps.records;
    throw err;
  } finally {
    await closeSession(session);
  }
}
