/**
 * Which etcd revision a wall-clock time was, for `table --at TIME` and `diff TIME ...`. etcd keeps
 * no times, but routers do write one: each live router rewrites its status record
 * (`routers/<id>`, with `updatedAt`) after every change it applies and on a heartbeat of at most
 * 5 s, so the status writes in etcd's history date the revisions between them. A time is the
 * newest revision whose latest status write is at or before it: what routers had applied by then,
 * to within a status write's latency and the routers' clock skew.
 *
 * A revision where no status record exists (no router live) cannot be dated: a time that falls
 * on one fails rather than guess. The answer names the status writes either side of it, so a
 * gap (no router writing) shows.
 */
import type { Etcd, KeyLayout } from '@paas/registry';
import { DeployError } from './errors.js';

/** An etcd revision by number, or by a time. */
export type RevisionRef = { revision: bigint } | { time: number };

/** A status write: the router, its updatedAt (ms) and the revision it was written at. */
export interface StatusWrite {
  router: string;
  updatedAt: number;
  revision: bigint;
}

export interface DatedRevision {
  /** The time asked for (ms since the epoch). */
  time: number;
  revision: bigint;
  /** The newest status write at `revision`: at or before `time`. */
  last: StatusWrite;
  /** The status write at revision + 1, after `time`; undefined when `revision` is the current one. */
  next: StatusWrite | undefined;
}

export async function revisionAtTime(etcd: Etcd, layout: KeyLayout, time: number): Promise<DatedRevision> {
  const iso = new Date(time).toISOString();
  const current = await etcd.currentRevision();
  const now = Date.now();
  if (time > now) throw new DeployError('not-found', `${iso} is in the future (it is ${new Date(now).toISOString()})`);
  const newest = await newestWriteAt(etcd, layout, current);
  if (newest === undefined) throw new DeployError('not-found', `cannot date ${iso}: no router status record exists now (etcd keeps no times; the routers' status writes date revisions)`);
  if (newest.updatedAt <= time) return { time, revision: current, last: newest, next: undefined };
  // The first revision whose newest status write is after `time`: revisions before it are not
  // (a revision no record dates counts as not after). Invariant: `hi` is after, `lo` is not.
  const oldest = await oldestServed(etcd, layout, current);
  let lo = oldest - 1n;
  let hi = current;
  let next = newest;
  while (hi - lo > 1n) {
    const mid = (lo + hi) / 2n;
    const w = await newestWriteAt(etcd, layout, mid);
    if (w !== undefined && w.updatedAt > time) {
      hi = mid;
      next = w;
    } else lo = mid;
  }
  if (lo < oldest) {
    throw new DeployError('not-found', `cannot date ${iso}: it is before etcd's history, which starts at revision ${oldest}, dated ${new Date(next.updatedAt).toISOString()} by router ${next.router} (etcd keeps no history before its last compaction)`);
  }
  const last = await newestWriteAt(etcd, layout, lo);
  if (last === undefined) {
    throw new DeployError('not-found', `cannot date ${iso}: no router status record exists at revision ${lo} (no router was live before ${new Date(next.updatedAt).toISOString()}, revision ${hi}); give a revision instead`);
  }
  return { time, revision: lo, last, next };
}

/** The revision a reference names, and how a time was dated (undefined for a revision given by number). */
export async function resolveRevision(etcd: Etcd, layout: KeyLayout, ref: RevisionRef): Promise<{ revision: bigint; dated: DatedRevision | undefined }> {
  if ('revision' in ref) return { revision: ref.revision, dated: undefined };
  const dated = await revisionAtTime(etcd, layout, ref.time);
  return { revision: dated.revision, dated };
}

/** Lines saying how a time was dated. */
export function describeDating(d: DatedRevision): string[] {
  const at = (w: StatusWrite) => `router ${w.router} wrote its status at ${new Date(w.updatedAt).toISOString()} (revision ${w.revision})`;
  const next = d.next !== undefined ? `next, ${at(d.next)}` : 'no status write since';
  return [`${new Date(d.time).toISOString()} is revision ${d.revision}: ${at(d.last)}; ${next}`];
}

export function datingJson(d: DatedRevision): object {
  const w = (x: StatusWrite) => ({ router: x.router, updatedAt: new Date(x.updatedAt).toISOString(), revision: x.revision.toString() });
  return { time: new Date(d.time).toISOString(), revision: d.revision.toString(), last: w(d.last), next: d.next === undefined ? null : w(d.next) };
}

async function newestWriteAt(etcd: Etcd, layout: KeyLayout, revision: bigint): Promise<StatusWrite | undefined> {
  const { entries } = await etcd.listPrefix(layout.routersDir, { revision });
  let best: StatusWrite | undefined;
  for (const e of entries) {
    if (best !== undefined && e.modRevision <= best.revision) continue;
    const updatedAt = updatedAtOf(e.value);
    if (updatedAt !== undefined) best = { router: e.key.slice(layout.routersDir.length), updatedAt, revision: e.modRevision };
  }
  return best;
}

function updatedAtOf(value: Buffer): number | undefined {
  try {
    const v = (JSON.parse(value.toString()) as { updatedAt?: unknown }).updatedAt;
    const t = typeof v === 'string' ? Date.parse(v) : NaN;
    return Number.isFinite(t) ? t : undefined;
  } catch {
    return undefined;
  }
}

/** The oldest revision etcd still serves: compaction drops every revision below one point. */
async function oldestServed(etcd: Etcd, layout: KeyLayout, current: bigint): Promise<bigint> {
  const key = layout.routersDir;
  let lo = 1n;
  let hi = current;
  while (lo < hi) {
    const mid = (lo + hi) / 2n;
    if (await etcd.servesRevision(mid, key)) hi = mid;
    else lo = mid + 1n;
  }
  return lo;
}
