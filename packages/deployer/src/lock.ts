/**
 * The per-app deployment lock: a lease-backed key (`<prefix>/locks/<app>`) whose value names its
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
  release(): Promise<void>;
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
  let released = false;
  void lock.lost.then(() => {
    if (!released) ac.abort(new DeployError('lock-lost', `lost the lock ${key} (its lease expired or was revoked): stopped`));
  });
  return {
    key,
    lock,
    signal: ac.signal,
    fence: () => ({ key, target: 'create', op: '=', value: lock.revision }),
    release: async () => {
      released = true;
      await lock.release();
    },
  };
}

/** True when `key` still holds the lock taken at `revision`. */
export async function stillHeld(etcd: Etcd, key: string, revision: bigint): Promise<boolean> {
  const e = await etcd.get(key);
  return e !== undefined && e.createRevision === revision;
}
