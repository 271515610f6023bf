/**
 * retire: take one instance out of service without dropping a request: draining, confirmed by every
 * live router, no request in flight (bounded), deleted. Refuses to retire the app's last ready
 * instance unless forced.
 */
import { type Etcd, type KeyLayout } from '@paas/registry';
import { drainAndDelete, type DrainOutcome } from './drain.js';
import { asDeployError, DeployError, requireName } from './errors.js';
import { noProgress, type ProgressListener } from './events.js';
import { readInstances } from './instances.js';
import type { LockHolder } from './lock.js';
import { DEFAULTS, type Timeouts } from './redeploy.js';
import { closeSession, openSession, requireRouters, type Session } from './session.js';
import { StepTimer, type StepRecord } from './steps.js';

export interface RetireOptions extends Omit<Timeouts, 'healthTimeoutMs'> {
  app: string;
  id: string;
  /** Retire even the last ready instance (the app answers 503 afterwards). */
  force?: boolean;
  allowNoRouters?: boolean;
  holder?: LockHolder;
  signal?: AbortSignal;
}

export interface RetireResult {
  app: string;
  id: string;
  drain: DrainOutcome;
  steps: StepRecord[];
  totalMs: number;
}

export async function retire(etcd: Etcd, layout: KeyLayout, opts: RetireOptions, progress: ProgressListener = noProgress): Promise<RetireResult> {
  requireName('app name', opts.app);
  requireName('instance id', opts.id);
  const allowNoRouters = opts.allowNoRouters ?? false;
  const steps = new StepTimer(progress);
  let session: Session | undefined;
  try {
    const s = (session = await openSession(
      etcd,
      layout,
      opts.app,
      { lockTtlSeconds: opts.lockTtlSeconds ?? DEFAULTS.lockTtlSeconds, holder: opts.holder, command: `retire ${opts.id}`, signal: opts.signal },
      steps,
      progress,
    ));
    requireRouters(s, allowNoRouters);
    const snapshot = await readInstances(etcd, layout, opts.app);
    const entry = snapshot.byId.get(opts.id);
    if (!entry) throw new DeployError('not-found', `no instance ${opts.app}/${opts.id} (${layout.instance(opts.app, opts.id)} does not exist)`);
    if (!entry.record) throw new DeployError('invalid', `${entry.key} is not a valid instance record (${entry.error}): delete it with etcdctl`);
    const otherReady = [...snapshot.byId.values()].filter((e) => e.id !== opts.id && e.record?.state === 'ready');
    if (entry.record.state === 'ready' && otherReady.length === 0 && !opts.force) {
      throw new DeployError('invalid', `${opts.app}/${opts.id} is the last ready instance of ${opts.app}: retiring it leaves the app answering 503 (pass --force to do it anyway)`);
    }
    const unchanged = [...snapshot.byId.values()].filter((e) => e.id !== opts.id);
    const drain = await drainAndDelete(s, [entry], {
      routerTimeoutMs: opts.routerTimeoutMs ?? DEFAULTS.routerTimeoutMs,
      drainTimeoutMs: opts.drainTimeoutMs ?? DEFAULTS.drainTimeoutMs,
      allowNoRouters,
      unchanged,
    });
    return { app: opts.app, id: opts.id, drain, steps: steps.records, totalMs: steps.elapsedMs() };
  } catch (e) {
    const err = asDeployError(e);
    err.steps = steps.records;
    throw err;
  } finally {
    await closeSession(session);
  }
}
