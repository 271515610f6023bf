/**
 * The per-app deployment lock: a lease-backed key (`<prefix>/rollouts/<app>`) whose value names its
 * holder. A crashed deployer's lock expires with its lease; a lost lock aborts the run; the key's
 * create revision fences every write the run makes.
 */
import { hostname } from 'node:os';
import type { Compare, Etcd, KeyLayout, Lock } from '@paas/registry';
import { DeployError } from './errors.js';
import { formatMs } from './duration.js';

export interface LockHolder {
  host: string;
  pid: number;
  startedAt: string;
  /** What the holder is doing ("redeploy", "retire web-1"). */
  command?: string;
}

export function defaultHolder(command?: string): LockHolder {
  return { host: hostname(), pid: process.pid, startedAt: new Date().toISOString(), ...(command ? { command } : {}) };
}

/** "pid 4242 on host build-7 (redeploy), since 2025-01-01T10:00:00.000Z (12s ago)", or the raw value. */
export function describeHolder(raw: string, now = Date.now()): string {
  let h: Partial<LockHolder>;
  try {
    h = JSON.parse(raw) as Partial<LockHolder>;
  } catch {
    return JSON.stringify(raw);
  }
  if (!h || typeof h !== 'object') return JSON.stringify(raw);
  const parts: string[] = [];
  parts.push(h.pid !== undefined ? `pid ${h.pid}` : 'unknown process');
  if (h.host) parts.push(`on host ${h.host}`);
  let s = parts.join(' ');
  if (h.command) s += ` (${h.command})`;
  if (h.startedAt) {
    const t = Date.parse(h.startedAt);
    s += `, since ${h.startedAt}${Number.isFinite(t) ? ` (${formatMs(Math.max(0, now - t))} ago)` : ''}`;
  }
  return s;
}

export interface AppLock {
  readonly key: string;
  readonly lock: Lock;
  /** Aborted (with a DeployError('lock-lost')) when the lock's lease is lost. */
  readonly signal: AbortSignal;
  /** A compare that holds only while this lock is the one in etcd: add it to every write. */
  fence(): Compare;
  /**
   * Deletes the key and revokes its lease. Gives up after `deadlineMs` (the lease then expires
   * after its TTL); called again, or concurrently, it waits for the same release.
   */
  release(deadlineMs?: number): Promise<void>;
}

/**
 * How long releasing the lock may take on the way out (etcd slow or unreachable): past it the
 * deployer goes anyway and the lock expires with its lease, after the lock TTL.
 */
export const RELEASE_DEADLINE_MS = 2_000;

/**
 * The app locks this process holds, so that a CLI told to quit at once (a second signal) can
 * still release them before it exits instead of leaving the app blocked for the lock TTL.
 */
const held = new Set<AppLock>();

/** Releases every app lock this process holds, each within `deadlineMs`; never rejects. */
export async function releaseHeldLocks(deadlineMs = RELEASE_DEADLINE_MS): Promise<void> {
  await Promise.allSettled([...held].map((l) => l.release(deadlineMs)));
}

export async function acquireAppLock(etcd: Etcd, layout: KeyLayout, app: string, ttlSeconds: number, holder: LockHolder): Promise<AppLock> {
  const key = layout.lock(app);
  const got = await etcd.tryLock(key, JSON.stringify(holder), ttlSeconds);
  if (!got.ok) {
    throw new DeployError(
      'lock-held',
      `another deployment of ${app} is running: the lock ${key} is held by ${describeHolder(got.holder)}; it is released when that run ends, or ${ttlSeconds}s after its holder dies`,
    );
  }
  const lock = got.lock;
  const ac = new AbortController();
  let releasing: Promise<void> | undefined;
  void lock.lost.then(() => {
    if (!releasing) ac.abort(new DeployError('lock-lost', `lost the lock ${key} (its lease expired or was revoked): stopped`));
  });
  const appLock: AppLock = {
    key,
    lock,
    signal: ac.signal,
    fence: () => ({ key, target: 'create', op: '=', value: lock.revision }),
    release: (deadlineMs = RELEASE_DEADLINE_MS) => {
      releasing ??= withDeadline(lock.release(), deadlineMs, `releasing the lock ${key}`).finally(() => held.delete(appLock));
      return releasing;
    },
  };
  held.add(appLock);
  return appLock;
}

function withDeadline(p: Promise<void>, ms: number, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeployError('etcd', `${what}: no answer from etcd within ${formatMs(ms)}; it expires with its lease`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** True when `key` still holds the lock taken at `revision`. */
export async function stillHeld(etcd: Etcd, key: string, revision: bigint): Promise<boolean> {
  const e = await etcd.get(key);
  return e !== undefined && e.createRevision === revision;
}
