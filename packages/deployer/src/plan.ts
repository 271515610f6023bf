/**
 * Deciding what to write for the instances a deployment wants (pure): reuse an instance already
 * registered with the same URL (so a re-run after a crash does not duplicate it), create the rest
 * with generated ids.
 */
import { TUNNEL_SCHEME, type InstanceRecord } from '@paas/registry';
import { DeployError } from './errors.js';
import { normalizeUrl, uniqueInstanceId } from './ids.js';
import { withState, type InstanceChange, type InstanceEntry, type InstanceSnapshot } from './instances.js';

export interface TargetInstance {
  url: string;
  /** A chosen id; generated when absent. */
  id?: string | undefined;
}

export interface PlannedInstance {
  id: string;
  key: string;
  url: string;
  /** An instance with this URL was already registered and is kept (under its id). */
  reused: boolean;
  /** Its mod revision when reused and left unchanged. */
  unchangedAt: bigint | undefined;
}

export interface InstancePlan {
  instances: PlannedInstance[];
  /** The writes needed (new keys, and reused records whose state or release changes). */
  changes: InstanceChange[];
  /** Every other instance of the app (what a redeploy drains). */
  others: InstanceEntry[];
}

const STATE_PREFERENCE: Record<InstanceRecord['state'], number> = { ready: 0, starting: 1, draining: 2 };

export function planInstances(
  snapshot: InstanceSnapshot,
  targets: TargetInstance[],
  opts: {
    app: string;
    state: InstanceRecord['state'];
    release?: string | undefined;
    weight?: number | undefined;
    keyOf: (id: string) => string;
    random?: () => string;
  },
): InstancePlan {
  const taken = new Set(snapshot.byId.keys());
  const used = new Set<string>();
  const instances: PlannedInstance[] = [];
  const changes: InstanceChange[] = [];
  const fields: Partial<InstanceRecord> = {};
  if (opts.release !== undefined) fields.release = opts.release;
  if (opts.weight !== undefined) fields.weight = opts.weight;

  for (const t of targets) {
    const url = normalizeUrl(t.url);
    let entry: InstanceEntry | undefined;
    if (t.id !== undefined) {
      entry = snapshot.byId.get(t.id);
      if (entry?.record && normalizeUrl(entry.record.url) !== url) {
        throw new DeployError('conflict', `instance ${opts.app}/${t.id} already exists with url ${entry.record.url}, not ${url}: retire it first or choose another id`);
      }
      const sameUrl = findByUrl(snapshot, url, used);
      if (sameUrl && sameUrl.id !== t.id) {
        throw new DeployError('conflict', `url ${url} is already registered as instance ${opts.app}/${sameUrl.id}`);
      }
    } else {
      entry = findByUrl(snapshot, url, used);
    }

    // A tunnel instance's id is the one its url names (routers reject any other).
    const tunnelId = tunnelIdOf(url);
    if (tunnelId !== undefined) {
      if (t.id !== undefined && t.id !== tunnelId) throw new DeployError('invalid', `instance id ${t.id} does not match ${url}: a tunnel instance's id is the one its url names`);
      const holder = snapshot.byId.get(tunnelId);
      if (entry === undefined && holder?.record && normalizeUrl(holder.record.url) !== url) {
        throw new DeployError('conflict', `instance ${opts.app}/${tunnelId} already exists with url ${holder.record.url}, not ${url}: retire it first`);
      }
      entry ??= holder;
    }
    const id = entry?.id ?? t.id ?? tunnelId ?? uniqueInstanceId({ app: opts.app, release: opts.release }, taken, opts.random);
    taken.add(id);
    used.add(id);
    const key = opts.keyOf(id);
    if (entry && entry.record) {
      const after = withState(entry, opts.state, fields);
      const same = sameRecord(entry.json ?? {}, after);
      if (!same) changes.push({ id, key, before: entry, after });
      instances.push({ id, key, url, reused: true, unchangedAt: same ? entry.modRevision : undefined });
    } else {
      // A new key, or an explicit id whose current value is not a valid record: write it whole.
      const after: Record<string, unknown> = { url, state: opts.state, ...fields };
      changes.push({ id, key, before: entry, after });
      instances.push({ id, key, url, reused: false, unchangedAt: undefined });
    }
  }
  const others = [...snapshot.byId.values()].filter((e) => !used.has(e.id));
  return { instances, changes, others };
}

function findByUrl(snapshot: InstanceSnapshot, url: string, used: Set<string>): InstanceEntry | undefined {
  const matches = [...snapshot.byId.values()].filter((e) => e.record && !used.has(e.id) && normalizeUrl(e.record.url) === url);
  matches.sort((a, b) => STATE_PREFERENCE[a.record!.state] - STATE_PREFERENCE[b.record!.state] || (a.id < b.id ? -1 : 1));
  return matches[0];
}

/** Field-by-field equality of two JSON records, ignoring key order. */
export function sameRecord(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  if (ka.length !== kb.length || ka.some((k, i) => k !== kb[i])) return false;
  return ka.every((k) => JSON.stringify(a[k]) === JSON.stringify(b[k]));
}

/** The id a `tunnel://<id>` url names, or undefined for other urls. */
function tunnelIdOf(url: string): string | undefined {
  return url.startsWith(TUNNEL_SCHEME) ? url.slice(TUNNEL_SCHEME.length) : undefined;
}
