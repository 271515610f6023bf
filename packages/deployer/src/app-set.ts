/**
 * app set: write an app record (routes from --host/--path, keeping the existing record's other
 * fields unless given), validated with the registry schema, with compare-and-swap against the record
 * read; then wait for the live routers to apply it and report a route conflict they see.
 */
import { type AppRecord, type Etcd, type KeyLayout } from '@paas/registry';
import { buildAppRecord, readApp, type AppSettings } from './apps.js';
import { applyDetail } from './drain.js';
import { asDeployError, DeployError, requireName } from './errors.js';
import { noProgress, type ProgressListener } from './events.js';
import { RouterFleet } from './fleet.js';
import { DEFAULTS } from './redeploy.js';
import { StepTimer, type StepRecord } from './steps.js';
import { waitForRevision, type ApplyWaitReport } from './waits.js';

export interface AppSetOptions extends AppSettings {
  app: string;
  routerTimeoutMs?: number;
  signal?: AbortSignal;
}

export interface AppSetResult {
  app: string;
  record: AppRecord;
  created: boolean;
  /** undefined when the record was already exactly this. */
  revision: bigint | undefined;
  confirm: ApplyWaitReport | undefined;
  /** Route conflicts the routers report for this app ("host/path won by other-app"). */
  conflicts: string[];
  steps: StepRecord[];
}

export async function setApp(etcd: Etcd, layout: KeyLayout, opts: AppSetOptions, progress: ProgressListener = noProgress): Promise<AppSetResult> {
  requireName('app name', opts.app);
  const steps = new StepTimer(progress);
  let fleet: RouterFleet | undefined;
  try {
    const existing = await readApp(etcd, layout, opts.app);
    const record = buildAppRecord(existing?.json, opts);
    const key = layout.app(opts.app);
    const value = JSON.stringify(record);
    let revision: bigint | undefined;
    if (existing && existing.entry.value.toString('utf8') === value) {
      steps.skip('write-app', `${key} already holds this record`);
    } else {
      revision = await steps.run(
        'write-app',
        async () => {
          const res = await etcd.txn(
            [existing ? { key, target: 'mod', op: '=', value: existing.entry.modRevision } : { key, target: 'version', op: '=', value: 0n }],
            [{ put: key, value }],
          );
          if (!res.succeeded) throw new DeployError('conflict', `${key} changed while writing it (someone else wrote it): nothing written; re-run`);
          return res.revision;
        },
        (rev) => `${key} ${existing ? 'updated' : 'created'} at revision ${rev}`,
      );
    }
    fleet = await RouterFleet.open(etcd, layout);
    const f = fleet;
    const target = revision ?? existing!.entry.modRevision;
    const confirm = await steps.run(
      'confirm-app',
      () =>
        waitForRevision(
          f,
          target,
          { step: 'confirm-app', timeoutMs: opts.routerTimeoutMs ?? DEFAULTS.routerTimeoutMs, allowNoRouters: true, keys: [key], signal: opts.signal },
          progress,
        ),
      (r) => (r.routers.length ? applyDetail(r) : 'no live router'),
    );
    const conflicts = new Set<string>();
    for (const r of f.list()) {
      for (const c of r.status?.conflicts ?? []) {
        if (c.app === opts.app && c.winner !== opts.app) conflicts.add(`${c.host}${c.path} is served by ${c.winner}`);
      }
    }
    for (const c of conflicts) progress({ type: 'warning', message: `route conflict: ${c} (created first)` });
    return { app: opts.app, record, created: !existing, revision, confirm, conflicts: [...conflicts], steps: steps.records };
  } catch (e) {
    const err = asDeployError(e);
    err.steps = steps.records;
    if (err.kind === 'router-timeout' || err.kind === 'rejected') err.notes.push('the app record is written; routers apply it once they catch up');
    throw err;
  } finally {
    await fleet?.close().catch(() => {});
  }
}
