/** App records: reading one, and building the record `app set` writes (validated before writing). */
import { parseAppRecord, type AppRecord, type BalanceStrategy, type Etcd, type KeyLayout, type KvEntry, type Route } from '@paas/registry';
import { DeployError } from './errors.js';
import { jsonObject } from './raw-json.js';

export interface AppEntry {
  key: string;
  entry: KvEntry;
  record: AppRecord | undefined;
  error: string | undefined;
  json: Record<string, unknown> | undefined;
}

export async function readApp(etcd: Etcd, layout: KeyLayout, app: string): Promise<AppEntry | undefined> {
  const key = layout.app(app);
  const entry = await etcd.get(key);
  if (!entry) return undefined;
  const parsed = parseAppRecord(entry.value);
  const json = jsonObject(entry.value);
  return parsed.ok
    ? { key, entry, record: parsed.value, error: undefined, json }
    : { key, entry, record: undefined, error: parsed.error, json };
}

/** The app record a deployment needs (for its health check path); fails clearly when missing or invalid. */
export async function requireApp(etcd: Etcd, layout: KeyLayout, app: string): Promise<AppRecord> {
  const found = await readApp(etcd, layout, app);
  if (!found) {
    throw new DeployError('not-found', `app ${app} has no record at ${layout.app(app)}: create it first with "paas-deploy app set ${app} --host ..."`);
  }
  if (!found.record) throw new DeployError('invalid', `the app record at ${found.key} is invalid (${found.error}): fix it with "paas-deploy app set ${app} ..."`);
  return found.record;
}

export function healthPathOf(record: AppRecord): string {
  return record.healthCheck?.path ?? '/healthz';
}

export interface AppSettings {
  hosts: string[];
  paths: string[];
  balance?: BalanceStrategy | undefined;
  healthPath?: string | undefined;
  healthIntervalMs?: number | undefined;
  healthTimeoutMs?: number | undefined;
}

/**
 * Routes from --host and --path: every host with every path (a host alone when no path is given,
 * host-less routes when only paths are given).
 */
export function routesOf(hosts: string[], paths: string[]): Route[] {
  if (hosts.length === 0) return paths.map((path) => ({ path }));
  if (paths.length === 0) return hosts.map((host) => ({ host }));
  return hosts.flatMap((host) => paths.map((path) => ({ host, path })));
}

/**
 * The record to write: the existing one (unknown fields included) with the given settings applied.
 * Routes are replaced when --host or --path is given and kept otherwise. The result is validated
 * with the registry's schema; an invalid one is an error naming the field.
 */
export function buildAppRecord(existing: Record<string, unknown> | undefined, s: AppSettings): AppRecord {
  const next: Record<string, unknown> = { ...(existing ?? {}) };
  if (s.hosts.length > 0 || s.paths.length > 0) next.routes = routesOf(s.hosts, s.paths);
  else if (!existing || !Array.isArray(existing.routes)) {
    throw new DeployError('invalid', 'a new app needs at least one --host or --path');
  }
  if (s.balance !== undefined) next.balance = s.balance;
  if (s.healthPath !== undefined || s.healthIntervalMs !== undefined || s.healthTimeoutMs !== undefined) {
    const prev = existing?.healthCheck && typeof existing.healthCheck === 'object' ? (existing.healthCheck as Record<string, unknown>) : {};
    next.healthCheck = {
      ...prev,
      ...(s.healthPath !== undefined ? { path: s.healthPath } : {}),
      ...(s.healthIntervalMs !== undefined ? { intervalMs: s.healthIntervalMs } : {}),
      ...(s.healthTimeoutMs !== undefined ? { timeoutMs: s.healthTimeoutMs } : {}),
    };
  }
  const parsed = parseAppRecord(JSON.stringify(next));
  if (!parsed.ok) throw new DeployError('invalid', `the app record would be invalid: ${parsed.error}`);
  return parsed.value;
}
