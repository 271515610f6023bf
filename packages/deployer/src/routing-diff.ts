/**
 * What routing changed between two routing tables (paas-deploy diff): each table is turned into
 * facts grouped by host (its routes; the instances and settings of the apps serving them; its
 * override; the certificates naming it), and facts are compared by name within each group.
 * Only the table counts: a revision that touched status records, locks or acme/ changes no fact,
 * and neither does a record rewritten with the same routing (a new release label, say).
 */
import type { RoutingSnapshot, SnapshotApp } from '@paas/router/table-at';

export type ChangeKind = 'route' | 'app' | 'instance' | 'override' | 'certificate' | 'rejected';

export interface RoutingChange {
  /** A route's host (`*.suffix`; '' for host-less routes), or REJECTED_GROUP. */
  group: string;
  op: '+' | '-' | '~';
  kind: ChangeKind;
  /** Within the group: a route's path, `<app>/<id>`, an app, a host, a certificate name, a key. */
  name: string;
  /** The fields compared, as shown (absent for an added fact). */
  before?: Record<string, string>;
  after?: Record<string, string>;
}

/** The group of rejected records (no host: a rejected record's hosts are not known). */
export const REJECTED_GROUP = 'rejected records';

interface Fact {
  kind: ChangeKind;
  name: string;
  fields: Record<string, string>;
}

/** Kinds in the order a group lists them. */
const KIND_ORDER: ChangeKind[] = ['route', 'override', 'app', 'instance', 'certificate', 'rejected'];

export function diffSnapshots(from: RoutingSnapshot, to: RoutingSnapshot): RoutingChange[] {
  const a = factsByGroup(from);
  const b = factsByGroup(to);
  const changes: RoutingChange[] = [];
  for (const group of [...new Set([...a.keys(), ...b.keys()])].sort(compareGroups)) {
    const before = a.get(group) ?? new Map<string, Fact>();
    const after = b.get(group) ?? new Map<string, Fact>();
    const inGroup: RoutingChange[] = [];
    for (const [id, f] of before) {
      const g = after.get(id);
      if (g === undefined) inGroup.push({ group, op: '-', kind: f.kind, name: f.name, before: f.fields });
      else if (!sameFields(f.fields, g.fields)) inGroup.push({ group, op: '~', kind: f.kind, name: f.name, before: f.fields, after: g.fields });
    }
    for (const [id, g] of after) if (!before.has(id)) inGroup.push({ group, op: '+', kind: g.kind, name: g.name, after: g.fields });
    inGroup.sort((x, y) => KIND_ORDER.indexOf(x.kind) - KIND_ORDER.indexOf(y.kind) || compare(x.name, y.name) || compare(x.op, y.op));
    changes.push(...inGroup);
  }
  return changes;
}

/** Facts by group, then by `<kind> <name>`. */
function factsByGroup(s: RoutingSnapshot): Map<string, Map<string, Fact>> {
  const groups = new Map<string, Map<string, Fact>>();
  const add = (group: string, fact: Fact) => {
    let g = groups.get(group);
    if (g === undefined) groups.set(group, (g = new Map()));
    g.set(`${fact.kind} ${fact.name}`, fact);
  };
  const apps = new Map(s.apps.map((a) => [a.name, a]));
  const appFacts = (group: string, name: string) => {
    const app = apps.get(name);
    if (app === undefined) return;
    add(group, { kind: 'app', name, fields: appFields(app) });
    for (const i of app.instances) add(group, { kind: 'instance', name: `${name}/${i.id}`, fields: { url: i.url, state: i.state, weight: String(i.weight) } });
  };
  for (const r of s.routes) {
    add(r.host, { kind: 'route', name: r.path, fields: { app: r.losers.length > 0 ? `${r.app} (over ${r.losers.join(', ')})` : r.app } });
    appFacts(r.host, r.app);
  }
  for (const o of s.overrides) {
    add(o.host, { kind: 'override', name: o.host, fields: { override: 'app' in o ? `app ${o.app}` : `maintenance ${o.maintenance.status} ${JSON.stringify(o.maintenance.message)}` } });
    if ('app' in o) appFacts(o.host, o.app);
  }
  for (const c of s.certificates) {
    const fields = { hosts: c.hosts.join(','), notAfter: c.notAfter, fingerprint: c.fingerprint, source: c.source };
    for (const h of c.hosts) add(h, { kind: 'certificate', name: c.name, fields });
  }
  for (const r of s.rejected) {
    // The revision of a rejected value is not compared: a bad value rewritten with the same error changes no routing.
    add(REJECTED_GROUP, { kind: 'rejected', name: r.key, fields: { error: r.error, kept: r.kept === null || r.kept === undefined ? 'nothing kept' : `keeps revision ${r.kept}` } });
  }
  return groups;
}

function appFields(app: SnapshotApp): Record<string, string> {
  const hc = app.healthCheck;
  const tls = app.tls;
  return {
    record: app.record ? 'yes' : 'none',
    balance: app.balance,
    health: hc === null ? 'passive only' : `${hc.path} every ${hc.intervalMs}ms, timeout ${hc.timeoutMs}ms`,
    tls: tls === null ? 'none' : [tls.redirect ? 'redirect' : '', tls.hsts !== null ? `hsts ${JSON.stringify(tls.hsts)}` : '', tls.acme ? 'acme' : ''].filter(Boolean).join(' ') || 'none',
  };
}

function sameFields(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

/** Exact hosts, then wildcards, then host-less routes, then the rejected records. */
function compareGroups(a: string, b: string): number {
  return groupRank(a) - groupRank(b) || compare(a, b);
}

function groupRank(group: string): number {
  return group === REJECTED_GROUP ? 3 : group === '' ? 2 : group.startsWith('*.') ? 1 : 0;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
