/**
 * maintenance on / off: an operator's maintenance override for one host (`overrides/<host>`, the
 * contract's override record), judged by the routers' own parser before it is written. With
 * --for it goes on a lease nobody keeps alive, so it ends by itself even if nobody remembers to
 * turn it off. Then, as app set does, it waits for the live routers to apply the change.
 */
import { hostError, parseOverrideRecord, type Etcd, type KeyLayout } from '@paas/registry';
import { applyDetail } from './drain.js';
import { asDeployError, DeployError } from './errors.js';
import { noProgress, type ProgressListener } from './events.js';
import { RouterFleet } from './fleet.js';
import { DEFAULTS } from './redeploy.js';
import { StepTimer, type StepRecord } from './steps.js';
import { waitForRevision, type ApplyWaitReport } from './waits.js';

export const DEFAULT_MAINTENANCE_STATUS = 503;
export const DEFAULT_MAINTENANCE_MESSAGE = 'Down for maintenance';

export interface MaintenanceOnOptions {
  host: string;
  status?: number;
  message?: string;
  /** The override ends by itself after this (rounded up to whole seconds). */
  forMs?: number;
  routerTimeoutMs?: number;
  signal?: AbortSignal;
}

export interface MaintenanceResult {
  key: string;
  revision: bigint;
  /** When the override ends by itself (ms since the epoch); undefined: until `maintenance off`. */
  endsAt: number | undefined;
  confirm: ApplyWaitReport;
  steps: StepRecord[];
}

/** One override as `paas-deploy status` lists it. */
export interface OverrideLine {
  host: string;
  /** "maintenance 503: Down for maintenance", "app mango", or why the record is invalid. */
  what: string;
  /** Seconds until a leased override ends (0: its lease ran out, etcd is deleting it); undefined when it has no lease. */
  endsInSeconds: number | undefined;
}

function requireHost(host: string): void {
  const err = hostError(host, false);
  if (err !== undefined) throw new DeployError('invalid', `maintenance: ${err}`);
}

/** Writes or deletes the override with `write`, then waits for the live routers to apply it. */
async function changeAndConfirm(
  etcd: Etcd,
  layout: KeyLayout,
  key: string,
  write: (steps: StepTimer) => Promise<bigint>,
  opts: { routerTimeoutMs?: number; signal?: AbortSignal },
  progress: ProgressListener,
): Promise<{ revision: bigint; confirm: ApplyWaitReport; steps: StepRecord[] }> {
  const steps = new StepTimer(progress);
  let fleet: RouterFleet | undefined;
  try {
    const revision = await write(steps);
    fleet = await RouterFleet.open(etcd, layout);
    const f = fleet;
    const confirm = await steps.run(
      'confirm-override',
      () => waitForRevision(f, revision, { step: 'confirm-override', timeoutMs: opts.routerTimeoutMs ?? DEFAULTS.routerTimeoutMs, allowNoRouters: true, keys: [key], signal: opts.signal }, progress),
      (r) => (r.routers.length ? applyDetail(r) : 'no live router'),
    );
    return { revision, confirm, steps: steps.records };
  } catch (e) {
    const err = asDeployError(e);
    err.steps = steps.records;
    if (err.kind === 'router-timeout') err.notes.push('the override is written; routers apply it once they catch up');
    throw err;
  } finally {
    await fleet?.close().catch(() => {});
  }
}

export async function maintenanceOn(etcd: Etcd, layout: KeyLayout, opts: MaintenanceOnOptions, progress: ProgressListener = noProgress): Promise<MaintenanceResult> {
  requireHost(opts.host);
  const key = layout.override(opts.host);
  const value = JSON.stringify({ maintenance: { status: opts.status ?? DEFAULT_MAINTENANCE_STATUS, message: opts.message ?? DEFAULT_MAINTENANCE_MESSAGE } });
  const judged = parseOverrideRecord(value);
  if (!judged.ok) throw new DeployError('invalid', `maintenance on: ${judged.error}`);
  const ttlSeconds = opts.forMs === undefined ? undefined : Math.max(1, Math.ceil(opts.forMs / 1000));
  let endsAt: number | undefined;
  const r = await changeAndConfirm(
    etcd,
    layout,
    key,
    (steps) =>
      steps.run(
        'write-override',
        async () => {
          const lease = ttlSeconds === undefined ? undefined : await etcd.grantLease(ttlSeconds);
          endsAt = ttlSeconds === undefined ? undefined : Date.now() + ttlSeconds * 1000;
          return etcd.put(key, value, lease === undefined ? {} : { lease });
        },
        (rev) => `${key} written at revision ${rev}${endsAt === undefined ? '' : `, ends by itself at ${new Date(endsAt).toISOString()}`}`,
      ),
    opts,
    progress,
  );
  return { key, endsAt, ...r };
}

export async function maintenanceOff(etcd: Etcd, layout: KeyLayout, opts: { host: string; routerTimeoutMs?: number; signal?: AbortSignal }, progress: ProgressListener = noProgress): Promise<MaintenanceResult> {
  requireHost(opts.host);
  const key = layout.override(opts.host);
  const existing = await etcd.get(key);
  if (existing === undefined) throw new DeployError('not-found', `maintenance off: ${key} does not exist (no override for ${opts.host})`);
  const judged = parseOverrideRecord(existing.value);
  // An override that sends the host to another app is the operator's routing, not maintenance.
  if (judged.ok && 'app' in judged.value) throw new DeployError('invalid', `maintenance off: ${key} sends ${opts.host} to app ${judged.value.app}, it is not a maintenance override: nothing deleted`);
  const r = await changeAndConfirm(
    etcd,
    layout,
    key,
    (steps) =>
      steps.run(
        'delete-override',
        async () => {
          // Only the record read: one written meanwhile is someone else's decision.
          const res = await etcd.txn([{ key, target: 'mod', op: '=', value: existing.modRevision }], [{ delete: key }]);
          if (!res.succeeded) throw new DeployError('conflict', `${key} changed while deleting it: nothing deleted; re-run`);
          return res.revision;
        },
        (rev) => `${key} deleted at revision ${rev}`,
      ),
    opts,
    progress,
  );
  return { key, endsAt: undefined, ...r };
}

/** The overrides among `entries` (a list of the prefix), with the time their leases have left. */
export async function overrideLines(etcd: Etcd, layout: KeyLayout, entries: { key: string; value: Buffer; lease: string }[]): Promise<OverrideLine[]> {
  const dir = layout.overridesDir;
  const out: OverrideLine[] = [];
  for (const e of entries) {
    if (!e.key.startsWith(dir)) continue;
    const p = parseOverrideRecord(e.value);
    const what = !p.ok ? `invalid: ${p.error}` : 'app' in p.value ? `app ${p.value.app}` : `maintenance ${p.value.maintenance.status}: ${p.value.maintenance.message}`;
    // A key still listed on a lease that has run out is being deleted by etcd: it ends now (0).
    const endsInSeconds = e.lease === '0' ? undefined : ((await etcd.leaseTimeToLive(e.lease)) ?? 0);
    out.push({ host: e.key.slice(dir.length), what, endsInSeconds });
  }
  return out;
}
