/** The final summary of a command: what changed, and each step with its timing (pure formatting). */
import type { AppSetResult } from './app-set.js';
import { formatMs } from './duration.js';
import type { DeployError } from './errors.js';
import type { RedeployResult } from './redeploy.js';
import type { RegisterResult } from './register.js';
import type { RetireResult } from './retire.js';
import type { StepRecord } from './steps.js';
import { table } from './table.js';

export function formatSteps(steps: StepRecord[]): string[] {
  const rows = steps.map((s, i) => [String(i + 1), s.ok ? 'ok' : 'FAILED', s.label, formatMs(s.ms).padStart(7), s.detail]);
  return table(['#', '', 'STEP', '   TIME', 'DETAIL'], rows, '  ');
}

export function formatRedeploySummary(r: RedeployResult): string {
  const out: string[] = [];
  out.push(`redeploy ${r.app}${r.release ? ` (release ${r.release})` : ''}: done in ${formatMs(r.totalMs)}`);
  out.push(`  serving: ${r.instances.map((i) => `${i.id} ${i.url}${i.reused ? ' (reused)' : ''}`).join(', ')}`);
  if (r.drain) {
    out.push(`  retired: ${r.drain.deleted.join(', ') || 'none'}${r.drain.kept.length ? `; kept ${r.drain.kept.map((k) => `${k.id} (${k.reason})`).join(', ')}` : ''}`);
  } else out.push('  retired: none (no old instance)');
  out.push(
    `  routers confirmed the new instances (revision ${r.readyRevision}) in ${formatMs(r.confirm.ms)}` +
      (r.confirm.routers.length ? `: ${r.confirm.routers.map((x) => `${x.id} ${formatMs(x.ms)}`).join(', ')}` : ': no live router') +
      (r.confirm.gone.length ? `; gone meanwhile: ${r.confirm.gone.join(', ')}` : ''),
  );
  if (r.drain?.drain.timedOut) out.push(`  WARNING: drain timeout passed; deleted with requests still reported in flight`);
  for (const i of r.ignored) out.push(`  WARNING: left ${r.app}/${i.id} alone: invalid record (${i.error})`);
  out.push(...formatSteps(r.steps));
  return out.join('\n');
}

export function formatRegisterSummary(r: RegisterResult): string {
  return [
    `register ${r.app}/${r.instance.id}: ${r.state} at revision ${r.revision}, confirmed by ${r.confirm.routers.length} router${r.confirm.routers.length === 1 ? '' : 's'} in ${formatMs(r.confirm.ms)}`,
    ...formatSteps(r.steps),
  ].join('\n');
}

export function formatRetireSummary(r: RetireResult): string {
  const d = r.drain;
  const head = d.deleted.includes(r.id)
    ? `retire ${r.app}/${r.id}: deleted at revision ${d.deleteRevision} after ${formatMs(r.totalMs)}`
    : `retire ${r.app}/${r.id}: not deleted (${d.kept.find((k) => k.id === r.id)?.reason ?? 'unknown'})`;
  const out = [head];
  if (d.drain.timedOut) out.push('  WARNING: drain timeout passed; deleted with requests still reported in flight');
  out.push(...formatSteps(r.steps));
  return out.join('\n');
}

export function formatAppSetSummary(r: AppSetResult): string {
  const routes = r.record.routes.map((x) => `${x.host ?? '*'}${x.path ?? ''}`).join(', ');
  const out = [
    `app ${r.app}: ${r.revision === undefined ? 'unchanged' : r.created ? `created at revision ${r.revision}` : `updated at revision ${r.revision}`}; routes ${routes}`,
  ];
  for (const c of r.conflicts) out.push(`  WARNING: route conflict: ${c}`);
  out.push(...formatSteps(r.steps));
  return out.join('\n');
}

/** What failed, what was undone, what is left to do; then the steps that ran. */
export function formatFailure(command: string, err: DeployError): string {
  const out = [`${command} failed: ${err.message}`];
  const rb = err.rollback;
  if (rb) {
    if (rb.error) out.push(`  rollback FAILED: ${rb.error}`);
    else {
      const parts: string[] = [];
      if (rb.removed.length) parts.push(`removed ${rb.removed.join(', ')}`);
      if (rb.restored.length) parts.push(`restored ${rb.restored.join(', ')}`);
      out.push(`  rolled back: ${parts.join('; ') || 'nothing to undo'}${rb.revision !== undefined ? ` (revision ${rb.revision})` : ''}; old instances untouched`);
      for (const s of rb.skipped) out.push(`  not rolled back: ${s.id}: ${s.reason}`);
    }
  } else if (err.kind !== 'lock-held' && err.steps.length > 0) {
    const wrote = err.steps.some((s) => s.ok && (s.step === 'write' || s.step === 'drain'));
    if (!wrote) out.push('  nothing was written');
  }
  for (const n of err.notes) out.push(`  ${n}`);
  if (err.steps.length) out.push(...formatSteps(err.steps));
  return out.join('\n');
}
