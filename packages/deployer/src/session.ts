/**
 * What every command that changes an app's instances holds while it runs: the app lock, a live view
 * of the routers, the step timer and one abort signal (lost lock, or the caller's signal).
 */
import type { Etcd, KeyLayout } from '@paas/registry';
import { DeployError } from './errors.js';
import type { ProgressListener } from './events.js';
import { RouterFleet } from './fleet.js';
import { acquireAppLock, defaultHolder, type AppLock, type LockHolder } from './lock.js';
import type { StepTimer } from './steps.js';

export interface SessionOptions {
  lockTtlSeconds: number;
  holder?: LockHolder | undefined;
  command: string;
  signal?: AbortSignal | undefined;
}

export interface Session {
  etcd: Etcd;
  layout: KeyLayout;
  app: string;
  lock: AppLock;
  fleet: RouterFleet;
  steps: StepTimer;
  emit: ProgressListener;
  signal: AbortSignal;
}

export async function openSession(
  etcd: Etcd,
  layout: KeyLayout,
  app: string,
  opts: SessionOptions,
  steps: StepTimer,
  emit: ProgressListener,
): Promise<Session> {
  opts.signal?.throwIfAborted();
  const holder = opts.holder ?? defaultHolder(`${opts.command} ${app}`);
  const lock = await steps.run('lock', () => acquireAppLock(etcd, layout, app, opts.lockTtlSeconds, holder), (l) => `${l.key} (lease ${l.lock.lease}, ttl ${opts.lockTtlSeconds}s)`);
  try {
    const fleet = await RouterFleet.open(etcd, layout);
    const signal = opts.signal ? AbortSignal.any([lock.signal, opts.signal]) : lock.signal;
    return { etcd, layout, app, lock, fleet, steps, emit, signal };
  } catch (err) {
    await lock.release().catch(() => {});
    throw err;
  }
}

export async function closeSession(s: Session | undefined): Promise<void> {
  if (!s) return;
  await s.fleet.close().catch(() => {});
  await s.lock.release().catch(() => {});
}

/** Fails unless some router is live (nothing would confirm the change), unless allowed. */
export function requireRouters(s: Session, allowNoRouters: boolean): void {
  if (allowNoRouters || s.fleet.list().length > 0) return;
  throw new DeployError(
    'no-routers',
    `no live router: nothing under ${s.layout.routersDir} could confirm the change (start a router, or pass --allow-no-routers)`,
  );
}

/** The abort reason as a DeployError, when the session was aborted. */
export function abortReason(s: Session): DeployError | undefined {
  if (!s.signal.aborted) return undefined;
  const r: unknown = s.signal.reason;
  return r instanceof DeployError ? r : new DeployError('aborted', r instanceof Error ? r.message : 'aborted');
}
