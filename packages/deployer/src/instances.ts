/**
 * Reading an app's instances with their etcd versions, and writing changes to them with
 * compare-and-swap: every write compares the mod revision of each key it read (or that a key it
 * creates is absent), so a concurrent edit (etcdctl, another tool) makes the write fail instead of
 * being overwritten blindly.
 */
import { parseInstanceRecord, type Compare, type Etcd, type InstanceRecord, type KeyLayout, type TxnOp } from '@paas/registry';
import { jsonObject } from './raw-json.js';

export interface InstanceEntry {
  id: string;
  key: string;
  modRevision: bigint;
  /** The stored value as read (what a rollback restores). */
  raw: string;
  /** The record when valid; undefined when the value is rejected by the schema (see `error`). */
  record: InstanceRecord | undefined;
  error: string | undefined;
  /** The stored JSON object, unknown fields included (kept when rewriting the record). */
  json: Record<string, unknown> | undefined;
}

export interface InstanceSnapshot {
  app: string;
  /** The etcd revision the list was read at. */
  revision: bigint;
  byId: Map<string, InstanceEntry>;
}

export async function readInstances(etcd: Etcd, layout: KeyLayout, app: string): Promise<InstanceSnapshot> {
  const dir = layout.instancesOf(app);
  const { entries, revision } = await etcd.listPrefix(dir);
  const byId = new Map<string, InstanceEntry>();
  for (const e of entries) {
    const id = e.key.slice(dir.length);
    const ref = layout.parse(e.key);
    const parsed = parseInstanceRecord(e.value);
    const json = jsonObject(e.value);
    const error = !ref.ok ? ref.error : parsed.ok ? undefined : parsed.error;
    byId.set(id, {
      id,
      key: e.key,
      modRevision: e.modRevision,
      raw: e.value.toString('utf8'),
      record: ref.ok && parsed.ok ? parsed.value : undefined,
      error,
      json,
    });
  }
  return { app, revision, byId };
}

/** One key to write: `after` is the record to put, or null to delete it. */
export interface InstanceChange {
  id: string;
  key: string;
  /** What was read (undefined: the key must not exist). */
  before: InstanceEntry | undefined;
  after: Record<string, unknown> | null;
}

/** What the keys are expected to be: the mod revision of each, or 'absent'. */
export type Expectation = Map<string, bigint | 'absent'>;

export function compareFor(key: string, expected: bigint | 'absent'): Compare {
  return expected === 'absent'
    ? { key, target: 'version', op: '=', value: 0n }
    : { key, target: 'mod', op: '=', value: expected };
}

/**
 * Writes all changes in one transaction that also checks `unchanged` keys (read but not written)
 * and the `fence` compares (the lock). Returns the transaction's revision, or undefined when a
 * compare failed and nothing was written.
 */
export async function commitChanges(
  etcd: Etcd,
  changes: InstanceChange[],
  opts: { unchanged?: InstanceEntry[]; fence?: Compare[] },
): Promise<bigint | undefined> {
  const compares: Compare[] = [...(opts.fence ?? [])];
  for (const c of changes) compares.push(compareFor(c.key, c.before ? c.before.modRevision : 'absent'));
  for (const e of opts.unchanged ?? []) compares.push(compareFor(e.key, e.modRevision));
  const ops: TxnOp[] = changes.map((c) => (c.after === null ? { delete: c.key } : { put: c.key, value: JSON.stringify(c.after) }));
  const res = await etcd.txn(compares, ops);
  return res.succeeded ? res.revision : undefined;
}

/**
 * What differs between what we expect of the app's instances and what etcd holds now, one line per
 * instance ("web-1 was modified at revision 130 (now draining)"). Keys not in `expected` that exist
 * now are reported as created. Empty when nothing differs.
 */
export function describeDrift(expected: Expectation, now: InstanceSnapshot): string[] {
  const lines: string[] = [];
  for (const [id, rev] of expected) {
    const cur = now.byId.get(id);
    if (rev === 'absent') {
      if (cur) lines.push(`${id} was created at revision ${cur.modRevision}${stateOf(cur)}`);
    } else if (!cur) {
      lines.push(`${id} was deleted`);
    } else if (cur.modRevision !== rev) {
      lines.push(`${id} was modified at revision ${cur.modRevision}${stateOf(cur)}`);
    }
  }
  for (const [id, cur] of now.byId) {
    if (!expected.has(id)) lines.push(`${id} was created at revision ${cur.modRevision}${stateOf(cur)}`);
  }
  return lines;
}

function stateOf(e: InstanceEntry): string {
  if (!e.record) return ' (now an invalid record)';
  return ` (now ${e.record.state}, ${e.record.url})`;
}

/** The expectation of a snapshot as read: every key at its mod revision. */
export function expectationOf(snapshot: InstanceSnapshot): Expectation {
  const m: Expectation = new Map();
  for (const [id, e] of snapshot.byId) m.set(id, e.modRevision);
  return m;
}

/** Rewrites a record's state (and optionally fields), keeping every other field, unknown ones too. */
export function withState(entry: InstanceEntry, state: InstanceRecord['state'], fields: Partial<InstanceRecord> = {}): Record<string, unknown> {
  return { ...(entry.json ?? {}), ...(entry.record ?? {}), ...fields, state };
}
