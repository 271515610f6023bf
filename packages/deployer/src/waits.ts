/**
 * Waiting on the routers' own reports: "every live router has applied revision R" and "no live router
 * has a request in flight to these draining instances". Both are driven by the fleet's change events
 * (a router advancing, appearing or disappearing) with one timer for the bound, never by polling.
 */
import { DeployError } from './errors.js';
import type { InflightEntry, ProgressListener, RouterProgress, StepName } from './events.js';
import type { RouterFleet, RouterView } from './fleet.js';
import { formatMs } from './duration.js';

export interface ApplyWaitOptions {
  step: StepName;
  timeoutMs: number;
  /** Without routers nothing confirms the change: fail, unless this is set. */
  allowNoRouters: boolean;
  /** Keys we wrote: a router that lists one of them as rejected at or after `target` fails the wait. */
  keys?: string[];
  signal?: AbortSignal | undefined;
}

export interface ApplyWaitReport {
  target: bigint;
  ms: number;
  /** Routers that confirmed, with how long after the start of the wait they did. */
  routers: { id: string; ms: number }[];
  /** Routers whose status key disappeared (lease expired, shut down) during the wait. */
  gone: string[];
  joined: string[];
}

/** Resolves once every live router reports a revision >= target. */
export function waitForRevision(fleet: RouterFleet, target: bigint, opts: ApplyWaitOptions, emit: ProgressListener): Promise<ApplyWaitReport> {
  const t0 = performance.now();
  const keys = new Set(opts.keys ?? []);
  const confirmedAt = new Map<string, number>();
  const gone: string[] = [];
  const joined: string[] = [];
  let known = new Set(fleet.list().map((r) => r.id));
  let lastPendingKey = '';

  const check = (finish: Finish<ApplyWaitReport>) => {
    const elapsed = performance.now() - t0;
    const routers = fleet.list();
    const ids = new Set(routers.map((r) => r.id));
    for (const id of known) {
      if (!ids.has(id)) {
        gone.push(id);
        emit({ type: 'router-gone', step: opts.step, router: id });
      }
    }
    for (const id of ids) {
      if (!known.has(id)) {
        joined.push(id);
        emit({ type: 'router-joined', step: opts.step, router: id });
      }
    }
    known = ids;

    for (const r of routers) {
      const rejected = r.status?.rejected.find((x) => keys.has(x.key) && safeBigInt(x.revision) >= target);
      if (rejected) {
        finish(new DeployError('rejected', `router ${r.id} rejected ${rejected.key} (revision ${rejected.revision}): ${rejected.error}`));
        return;
      }
      if (keys.size > 0 && r.revision >= target && mayHideRejection(r, target)) {
        finish(
          new DeployError(
            'rejected',
            `router ${r.id} lists only ${r.status!.rejected.length} of its ${r.status!.rejectedCount} rejected records, all at or after revision ${target}: cannot tell whether it accepted what this run wrote (its /status lists them all)`,
          ),
        );
        return;
      }
      if (r.revision >= target && !confirmedAt.has(r.id)) {
        confirmedAt.set(r.id, elapsed);
        emit({ type: 'router-applied', step: opts.step, router: r.id, revision: r.revision, ms: elapsed });
      }
    }
    const pending = routers.filter((r) => r.revision < target);
    if (routers.length === 0 && opts.allowNoRouters) {
      finish(undefined, report());
      return;
    }
    if (routers.length > 0 && pending.length === 0) {
      finish(undefined, report());
      return;
    }
    const pendingKey = pending.map((r) => `${r.id}@${r.revision}`).join(',');
    if (pendingKey !== lastPendingKey) {
      lastPendingKey = pendingKey;
      emit({
        type: 'routers-waiting',
        step: opts.step,
        target,
        elapsedMs: elapsed,
        pending: pending.map(progressOf),
        applied: routers.length - pending.length,
      });
    }
  };

  const report = (): ApplyWaitReport => ({
    target,
    ms: performance.now() - t0,
    routers: [...confirmedAt].filter(([id]) => known.has(id)).map(([id, ms]) => ({ id, ms })),
    gone,
    joined,
  });

  const onTimeout = (finish: Finish<ApplyWaitReport>) => {
    const routers = fleet.list();
    const pending = routers.filter((r) => r.revision < target);
    if (routers.length === 0) {
      finish(
        new DeployError(
          'no-routers',
          `no live router confirmed revision ${target} within ${formatMs(opts.timeoutMs)}: no status record under the routers directory${gone.length ? ` (gone during the wait: ${gone.join(', ')})` : ''}`,
        ),
      );
      return;
    }
    const named = pending.map((r) => describeBehind(r, target)).join('; ');
    finish(
      new DeployError(
        'router-timeout',
        `router${pending.length === 1 ? '' : 's'} ${pending.map((r) => r.id).join(', ')} did not apply revision ${target} within ${formatMs(opts.timeoutMs)}: ${named}${fleet.connected ? '' : ' (the deployer has lost etcd)'}`,
      ),
    );
  };

  return waitOnFleet(fleet, opts.timeoutMs, opts.signal, check, onTimeout);
}

export interface DrainWaitOptions {
  /** "<app>/<id>" of the draining instances. */
  instances: string[];
  /** The revision at which they became draining: a router behind it cannot vouch for them yet. */
  minRevision: bigint;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}

export interface DrainWaitReport {
  ms: number;
  timedOut: boolean;
  /** What was still in flight (or unconfirmed) when the timeout passed. */
  remaining: InflightEntry[];
  /** Routers that had not applied minRevision when the timeout passed. */
  behind: string[];
  /** Highest total in flight seen during the wait. */
  peak: number;
  /**
   * Routers whose record could not list every instance in flight (`inflightComplete: false`) and
   * omits one of these: its count is unknown, so the wait goes on (bounded by the timeout).
   */
  unreported: string[];
}

/**
 * Resolves once every live router that has applied `minRevision` reports 0 in flight for each
 * instance (a missing entry counts as 0), or when the timeout passes (`timedOut`, never a rejection:
 * the contract deletes draining instances after the drain timeout anyway).
 */
export function waitForDrain(fleet: RouterFleet, opts: DrainWaitOptions, emit: ProgressListener): Promise<DrainWaitReport> {
  const t0 = performance.now();
  let peak = 0;
  let lastKey = '';

  const state = () => {
    const remaining: InflightEntry[] = [];
    const behind: string[] = [];
    const unreported: string[] = [];
    for (const r of fleet.list()) {
      if (r.revision < opts.minRevision || !r.status) {
        behind.push(r.id);
        continue;
      }
      // A missing entry means 0 only in a complete report; in a cut one it means "not known".
      const complete = r.status.inflightComplete !== false;
      for (const instance of opts.instances) {
        const count = r.status.inflight[instance];
        if (count === undefined && !complete) {
          if (!unreported.includes(r.id)) unreported.push(r.id);
        } else if (count !== undefined && count > 0) remaining.push({ router: r.id, instance, count });
      }
    }
    return { remaining, behind, unreported };
  };

  const check = (finish: Finish<DrainWaitReport>) => {
    const { remaining, behind, unreported } = state();
    const total = remaining.reduce((n, e) => n + e.count, 0);
    peak = Math.max(peak, total);
    if (remaining.length === 0 && behind.length === 0 && unreported.length === 0) {
      finish(undefined, { ms: performance.now() - t0, timedOut: false, remaining, behind, peak, unreported });
      return;
    }
    const key = JSON.stringify([remaining, behind, unreported]);
    if (key !== lastKey) {
      lastKey = key;
      emit({ type: 'inflight', elapsedMs: performance.now() - t0, total, remaining });
    }
  };

  const onTimeout = (finish: Finish<DrainWaitReport>) => {
    const { remaining, behind, unreported } = state();
    finish(undefined, { ms: performance.now() - t0, timedOut: true, remaining, behind, peak, unreported });
  };

  return waitOnFleet(fleet, opts.timeoutMs, opts.signal, check, onTimeout);
}

type Finish<T> = (err: unknown, report?: T) => void;

/**
 * Runs `check` now and on every fleet change until one of them calls finish; `onTimeout` once
 * the bound passes; an abort rejects. Listeners and the timer are released exactly once.
 */
function waitOnFleet<T>(
  fleet: RouterFleet,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  check: (finish: Finish<T>) => void,
  onTimeout: (finish: Finish<T>) => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let unsubscribe: () => void = () => {};
    let done = false;
    const finish: Finish<T> = (err, report) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      unsubscribe();
      signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(report!);
    };
    const onAbort = () => finish(signal?.reason ?? new DeployError('aborted', 'aborted'));
    if (signal?.aborted) {
      onAbort();
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    timer = setTimeout(() => onTimeout(finish), timeoutMs);
    unsubscribe = fleet.onChange(() => check(finish));
    check(finish);
  });
}

function progressOf(r: RouterView): RouterProgress {
  return { id: r.id, revision: r.status ? r.revision : undefined };
}

function describeBehind(r: RouterView, target: bigint): string {
  const updated = r.status?.updatedAt ? Date.parse(r.status.updatedAt) : NaN;
  const quiet = Number.isFinite(updated)
    ? `status written ${formatMs(Math.max(0, Date.now() - updated))} ago`
    : `no status change seen for ${formatMs(performance.now() - r.seenAt)}`;
  if (!r.status) return `${r.id} has an unreadable status record (${r.error}), ${quiet}`;
  return `${r.id} is at revision ${r.revision} (${target - r.revision} behind), ${quiet}`;
}

/**
 * The router's record lists only some of its rejected records (the newest: see the router's
 * status-record.ts), and every listed one is at or after `target`: one of ours may be among
 * those left out.
 */
function mayHideRejection(r: RouterView, target: bigint): boolean {
  const s = r.status;
  if (!s || s.rejectedCount === undefined || s.rejectedCount <= s.rejected.length) return false;
  return s.rejected.every((x) => safeBigInt(x.revision) >= target);
}

function safeBigInt(s: string): bigint {
  try {
    return BigInt(s);
  } catch {
    return -1n;
  }
}
