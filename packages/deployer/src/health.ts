/**
 * Active health check of instances before they get traffic: GET <url><path> until it answers 2xx,
 * each attempt bounded, the whole wait bounded.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { TUNNEL_SCHEME, type Etcd, type KeyLayout } from '@paas/registry';
import { DeployError } from './errors.js';
import type { RouterFleet } from './fleet.js';
import type { ProgressListener } from './events.js';
import { formatMs } from './duration.js';

export interface HealthOptions {
  /** Path checked on each instance (the app record's healthCheck.path, default /healthz). */
  path: string;
  /** How long one instance may take to become healthy (ms). */
  timeoutMs: number;
  /** How long one attempt may take (ms). */
  attemptTimeoutMs: number;
  signal?: AbortSignal | undefined;
}

const FIRST_RETRY_MS = 100;
const MAX_RETRY_MS = 1000;

/** Resolves once `url` answers 2xx on the path; rejects with a DeployError('unhealthy') when time runs out. */
export async function waitHealthy(url: string, opts: HealthOptions, emit: ProgressListener, agent: Agent): Promise<number> {
  const t0 = performance.now();
  const deadline = t0 + opts.timeoutMs;
  const target = url.replace(/\/+$/, '') + opts.path;
  let attempt = 0;
  let retryMs = FIRST_RETRY_MS;
  let last: string | undefined;
  for (;;) {
    opts.signal?.throwIfAborted();
    attempt++;
    const budget = Math.max(1, Math.ceil(Math.min(opts.attemptTimeoutMs, deadline - performance.now())));
    const attemptSignal = AbortSignal.timeout(budget);
    const signal = opts.signal ? AbortSignal.any([opts.signal, attemptSignal]) : attemptSignal;
    try {
      const res = await request(target, { method: 'GET', dispatcher: agent, signal, headers: { 'user-agent': 'paas-deploy' } });
      await res.body.dump();
      last = `HTTP ${res.statusCode}`;
      const ok = res.statusCode >= 200 && res.statusCode < 300;
      emit({ type: 'health', url, ok, attempt, answer: last });
      if (ok) return performance.now() - t0;
    } catch (err) {
      opts.signal?.throwIfAborted();
      // An attempt cut short by the overall deadline says nothing new: keep the previous answer.
      const cutShort = attemptSignal.aborted && budget < opts.attemptTimeoutMs;
      if (!cutShort || last === undefined) last = attemptSignal.aborted ? `no answer within ${formatMs(budget)}` : describeError(err);
      emit({ type: 'health', url, ok: false, attempt, answer: last });
    }
    const wait = Math.ceil(Math.min(retryMs, deadline - performance.now()));
    if (wait <= 0) {
      throw new DeployError(
        'unhealthy',
        `instance ${url} did not pass its health check (GET ${opts.path}) within ${formatMs(opts.timeoutMs)}: ${last ?? 'no answer'} after ${attempt} attempt${attempt === 1 ? '' : 's'}`,
      );
    }
    await sleep(wait, undefined, opts.signal ? { signal: opts.signal } : undefined);
    retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
  }
}

/** Checks every URL in parallel; fails with the first instance that did not become healthy. */
/**
 * Where a tunnel:// instance's readiness is read: the deployer cannot reach it, but every live
 * router that holds a session from its agent says so under tunnels/<app>/<id>/<router-id>.
 */
export interface TunnelReadiness {
  etcd: Etcd;
  layout: KeyLayout;
  app: string;
  fleet: RouterFleet;
}

/**
 * Resolves once every live router holds a tunnel session from the agent of `tunnel://<id>`: the
 * barrier a direct instance's health check is for (no router would send it traffic before).
 */
export async function waitTunnelSessions(url: string, opts: HealthOptions, emit: ProgressListener, t: TunnelReadiness): Promise<number> {
  const t0 = performance.now();
  const id = url.slice(TUNNEL_SCHEME.length);
  const dir = `${t.layout.tunnelsOf(t.app)}${id}/`;
  let attempt = 0;
  for (;;) {
    opts.signal?.throwIfAborted();
    attempt++;
    const { entries } = await t.etcd.listPrefix(dir);
    const holding = new Set(entries.map((e) => e.key.slice(dir.length)));
    const live = t.fleet.list().map((r) => r.id);
    const missing = live.filter((r) => !holding.has(r));
    const ok = live.length > 0 && missing.length === 0;
    const answer = ok ? `sessions on ${live.join(', ')}` : `no session on ${missing.length > 0 ? missing.join(', ') : 'any router (none live)'}`;
    emit({ type: 'health', url, ok, attempt, answer });
    if (ok) return performance.now() - t0;
    if (performance.now() - t0 >= opts.timeoutMs) {
      throw new DeployError('unhealthy', `instance ${url}: ${answer} within ${formatMs(opts.timeoutMs)} (is paas-agent running with --app ${t.app} --id ${id}?)`);
    }
    await sleep(TUNNEL_POLL_MS, undefined, opts.signal ? { signal: opts.signal } : undefined);
  }
}

const TUNNEL_POLL_MS = 200;

export async function waitAllHealthy(urls: string[], opts: HealthOptions, emit: ProgressListener, tunnels?: TunnelReadiness): Promise<{ url: string; ms: number }[]> {
  const agent = new Agent({ connect: { timeout: opts.attemptTimeoutMs }, pipelining: 0 });
  const inner = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, inner.signal]) : inner.signal;
  try {
    return await Promise.all(
      urls.map(async (url) => {
        try {
          if (url.startsWith(TUNNEL_SCHEME)) {
            if (tunnels === undefined) throw new DeployError('invalid', `instance ${url}: tunnel instances are not supported here`);
            return { url, ms: await waitTunnelSessions(url, { ...opts, signal }, emit, tunnels) };
          }
          return { url, ms: await waitHealthy(url, { ...opts, signal }, emit, agent) };
        } catch (err) {
          inner.abort(err); // one failure is enough: stop checking the others
          throw err;
        }
      }),
    );
  } finally {
    await agent.destroy().catch(() => {});
  }
}

function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: string }).code ?? (err.cause as { code?: string } | undefined)?.code;
  return code ? `${code} (${err.message})` : err.message;
}

/**
 * What the health step waited for, in words: a GET for direct instances, the routers' sessions
 * for tunnel ones (the deployer cannot reach those).
 */
export function readinessSummary(results: { url: string; ms: number }[], path: string): string {
  const tunnels = results.filter((r) => r.url.startsWith(TUNNEL_SCHEME)).length;
  const direct = results.length - tunnels;
  const slowest = formatMs(Math.max(0, ...results.map((r) => r.ms)));
  const parts: string[] = [];
  if (direct > 0) parts.push(`${direct} healthy on GET ${path}`);
  if (tunnels > 0) parts.push(`${tunnels} with a tunnel session on every live router`);
  return `${parts.join(', ')} (slowest ${slowest})`;
}
