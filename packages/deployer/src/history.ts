/**
 * paas-deploy table / diff: the routing table as routers build it at a revision of etcd's history,
 * and what routing changed between two revisions. The table is built by the router's own code
 * (@paas/router/table-at: the same parser, TableSync and last-good walk), so the same etcd state
 * gives the same table, digest included. etcd keeps history only back to its last compaction and
 * no times at all: revisions are asked for by number.
 */
import { readFile } from 'node:fs/promises';
import { parseKeyRing, type Etcd, type KeyLayout, type KeyRing } from '@paas/registry';
import { RevisionNotServed, tableAt, type RoutingSnapshot, type SnapshotApp } from '@paas/router/table-at';
import { DeployError, UsageError } from './errors.js';
import { datingJson, describeDating, resolveRevision, type DatedRevision, type RevisionRef } from './revision-at-time.js';
import { diffSnapshots, type RoutingChange } from './routing-diff.js';
import { table } from './table.js';

export interface HistoryOptions {
  /** Only what a request for this host may meet. */
  host?: string | undefined;
  /** Key ring file to judge certificates with `keyEnc` by, as routers with --key-ring do. */
  keyRingFile?: string | undefined;
}

/** A table, and how the time it was asked for was dated (undefined: asked for by revision, or the current one). */
export interface DatedSnapshot {
  snapshot: RoutingSnapshot;
  dated: DatedRevision | undefined;
}

export interface RoutingDiff {
  from: DatedSnapshot;
  to: DatedSnapshot;
  changes: RoutingChange[];
}

/** `at` defaults to the current revision. */
export async function routingTable(etcd: Etcd, layout: KeyLayout, at: RevisionRef | undefined, opts: HistoryOptions = {}): Promise<DatedSnapshot> {
  const keyRing = await readKeyRing(opts.keyRingFile);
  return snapshotAt(etcd, layout, at, opts.host, keyRing);
}

/** `to` defaults to the current revision. */
export async function routingDiff(etcd: Etcd, layout: KeyLayout, from: RevisionRef, to: RevisionRef | undefined, opts: HistoryOptions = {}): Promise<RoutingDiff> {
  const keyRing = await readKeyRing(opts.keyRingFile);
  const [a, b] = await Promise.all([snapshotAt(etcd, layout, from, opts.host, keyRing), snapshotAt(etcd, layout, to, opts.host, keyRing)]);
  return { from: a, to: b, changes: diffSnapshots(a.snapshot, b.snapshot) };
}

async function snapshotAt(etcd: Etcd, layout: KeyLayout, at: RevisionRef | undefined, host: string | undefined, keyRing: KeyRing): Promise<DatedSnapshot> {
  const { revision, dated } = at === undefined ? { revision: undefined, dated: undefined } : await resolveRevision(etcd, layout, at);
  try {
    // Certificates are judged with the clock of now: etcd keeps no time for a revision.
    const snapshot = await tableAt(etcd, layout, { ...(revision !== undefined && { revision }), ...(host !== undefined && { host }), context: { keyRing, now: Date.now } });
    return { snapshot, dated };
  } catch (err) {
    if (err instanceof RevisionNotServed) throw new DeployError('not-found', err.message, { cause: err });
    throw err;
  }
}

async function readKeyRing(file: string | undefined): Promise<KeyRing> {
  if (file === undefined) return new Map();
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--key-ring ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return parseKeyRing(text);
  } catch (err) {
    throw new UsageError(`--key-ring ${file}: ${(err as Error).message}`);
  }
}

/** The table as JSON: each route with the instances of the app serving it. */
export function tableJson({ snapshot: s, dated }: DatedSnapshot, prefix: string): object {
  const apps = new Map(s.apps.map((a) => [a.name, a]));
  return {
    prefix,
    revision: s.revision,
    dated: dated === undefined ? null : datingJson(dated),
    current: s.current,
    digest: s.digest,
    host: s.host,
    routes: s.routes.map((r) => ({ ...r, instances: apps.get(r.app)?.instances ?? [] })),
    apps: s.apps,
    overrides: s.overrides,
    certificates: s.certificates,
    rejected: s.rejected,
    warnings: s.warnings,
  };
}

export function formatTable({ snapshot: s, dated }: DatedSnapshot, prefix: string): string {
  const out = [`routing table of ${prefix} at revision ${s.revision} (etcd is at ${s.current}), digest ${s.digest}${s.host !== null ? `, for host ${s.host}` : ''}`];
  if (dated !== undefined) out.push(...describeDating(dated));
  const apps = new Map(s.apps.map((a) => [a.name, a]));
  const rows: string[][] = [];
  for (const r of s.routes) {
    const host = r.host === '' ? '*' : r.host;
    const app = r.losers.length > 0 ? `${r.app} (over ${r.losers.join(', ')})` : r.app;
    const instances = apps.get(r.app)?.instances ?? [];
    if (instances.length === 0) rows.push([host, r.path, app, '-', '-', '-', '(no instance)']);
    for (const i of instances) rows.push([host, r.path, app, i.id, i.state, String(i.weight), i.url]);
  }
  out.push(`ROUTES (${s.routes.length})`);
  if (rows.length > 0) out.push(...table(['HOST', 'PATH', 'APP', 'INSTANCE', 'STATE', 'WEIGHT', 'URL'], rows, '  '));
  if (s.overrides.length > 0) {
    out.push(`OVERRIDES (${s.overrides.length})`);
    out.push(...table(['HOST', 'OVERRIDE'], s.overrides.map((o) => [o.host, 'app' in o ? `app ${o.app}${instancesNote(apps.get(o.app))}` : `maintenance ${o.maintenance.status} ${JSON.stringify(o.maintenance.message)}`]), '  '));
  }
  if (s.host === null) {
    const routed = new Set([...s.routes.map((r) => r.app), ...s.overrides.flatMap((o) => ('app' in o ? [o.app] : []))]);
    const idle = s.apps.filter((a) => !routed.has(a.name));
    if (idle.length > 0) out.push(`APPS NO ROUTE LEADS TO (${idle.length}): ${idle.map((a) => `${a.name}${instancesNote(a)}`).join(', ')}`);
  }
  if (s.certificates.length > 0) {
    out.push(`CERTIFICATES (${s.certificates.length}, judged with the clock of now)`);
    out.push(...table(['NAME', 'HOSTS', 'NOT AFTER', 'FINGERPRINT', 'SOURCE'], s.certificates.map((c) => [c.name, c.hosts.join(','), c.notAfter, shortFingerprint(c.fingerprint), c.source]), '  '));
  }
  if (s.rejected.length > 0) {
    out.push(`REJECTED (${s.rejected.length})`);
    out.push(...table(['KEY', 'REVISION', 'KEPT', 'ERROR'], s.rejected.map((r) => [r.key, r.revision, r.kept == null ? 'nothing' : `as of ${r.kept}`, r.error]), '  '));
  }
  return out.join('\n');
}

function instancesNote(app: SnapshotApp | undefined): string {
  const n = app?.instances.length ?? 0;
  return ` (${n} instance${n === 1 ? '' : 's'})`;
}

/** 16 hex digits tell certificates apart on a terminal; --json has the whole SHA-256. */
function shortFingerprint(fp: string): string {
  return `${fp.slice(0, 16)}…`;
}

export function diffJson(d: RoutingDiff, prefix: string): object {
  const dating = (s: DatedSnapshot) => (s.dated === undefined ? null : datingJson(s.dated));
  return {
    prefix,
    from: d.from.snapshot.revision,
    to: d.to.snapshot.revision,
    fromDated: dating(d.from),
    toDated: dating(d.to),
    host: d.to.snapshot.host,
    changed: d.changes.length > 0,
    changes: d.changes,
  };
}

export function formatDiff(d: RoutingDiff, prefix: string): string {
  const host = d.to.snapshot.host;
  const head = `routing of ${prefix} from revision ${d.from.snapshot.revision} to ${d.to.snapshot.revision}${host !== null ? `, for host ${host}` : ''}`;
  const dating = [d.from.dated, d.to.dated].flatMap((x) => (x === undefined ? [] : describeDating(x)));
  if (d.changes.length === 0) return [`${head}: no routing changes`, ...dating].join('\n');
  const out = [head, ...dating];
  let group: string | undefined;
  for (const c of d.changes) {
    if (c.group !== group) {
      group = c.group;
      out.push(group === '' ? '(any host)' : group);
    }
    out.push(`  ${c.op} ${describe(c)}`);
  }
  return out.join('\n');
}

function describe(c: RoutingChange): string {
  // An override's name is its host, which heads the group.
  const name = c.kind === 'override' ? '' : ` ${c.name}`;
  if (c.op === '~' && c.kind === 'override') return `override ${c.before!.override} -> ${c.after!.override}`;
  if (c.op === '~') {
    const before = c.before!;
    const after = c.after!;
    const changed = Object.keys(after).filter((k) => before[k] !== after[k]);
    return `${c.kind}${name}: ${changed.map((k) => `${k} ${show(k, before[k])} -> ${show(k, after[k])}`).join(', ')}`;
  }
  return `${c.kind}${name} ${facts(c.kind, (c.after ?? c.before)!)}`;
}

/** An added or removed fact, in the words of its kind. */
function facts(kind: RoutingChange['kind'], f: Record<string, string>): string {
  switch (kind) {
    case 'route':
      return `-> ${f.app}`;
    case 'instance':
      return `${f.url} ${f.state} weight ${f.weight}`;
    case 'override':
      return f.override!;
    case 'app':
      return `balance ${f.balance}, health ${f.health}, tls ${f.tls}${f.record === 'none' ? ', no app record' : ''}`;
    case 'certificate':
      return `hosts ${f.hosts} notAfter ${f.notAfter} fingerprint ${show('fingerprint', f.fingerprint)} source ${f.source}`;
    case 'rejected':
      return `${f.error} (${f.kept})`;
  }
}

function show(field: string, value: string | undefined): string {
  if (value === undefined) return '-';
  return field === 'fingerprint' ? shortFingerprint(value) : value;
}
