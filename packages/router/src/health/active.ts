/**
 * Active health checks: a GET of the app's healthCheck.path on each ready or starting instance,
 * sent through the router's upstream client, so over the same connector (TCP, verified TLS) and
 * keep-alive connections as traffic: a check sees what a request would see.
 */
import type { HealthCheck } from '@paas/registry';
import type { Backend } from '../table/backend.js';
import type { AppPool, RoutingTable } from '../table/routing-table.js';
import type { UpstreamClient } from '../transport/upstream.js';
import { Probe } from './probe.js';

export interface HealthLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface ActiveHealthCheckerOptions {
  getTable: () => RoutingTable;
  /** The traffic's upstream client; the checker does not close it. */
  client: UpstreamClient;
  logger?: HealthLogger;
  /** Called when a backend's checkHealthy flips. */
  onChange?: (backend: Backend) => void;
}

interface ProbeSettings {
  path: string;
  intervalMs: number;
  timeoutMs: number;
}

/** One failure can be a hiccup; two in a row take the backend out of the preferred set. */
const FAILURES_TO_MARK_UNHEALTHY = 2;
/** Rounds are spread ±10% so apps configured alike do not probe in lockstep. */
const JITTER = 0.1;

/** What the checker needs from its owner, shared by every app's check. */
interface CheckContext {
  readonly getTable: () => RoutingTable;
  readonly client: UpstreamClient;
  setVerdict(backend: Backend, healthy: boolean, reason: string | undefined): void;
  report(err: unknown, app: string): void;
}

/**
 * Probes the instances of every app whose record has a healthCheck, one timer per app, and
 * keeps Backend.checkHealthy current. Call sync() after every table change (or table swap).
 */
export class ActiveHealthChecker {
  private readonly apps = new Map<string, AppHealthCheck>();
  private readonly context: CheckContext;
  private stopped = false;

  constructor(private readonly opts: ActiveHealthCheckerOptions) {
    this.context = {
      getTable: opts.getTable,
      client: opts.client,
      setVerdict: (backend, healthy, reason) => this.setVerdict(backend, healthy, reason),
      report: (err, app) => this.report(err, app),
    };
  }

  /** Starts checks for apps that gained or changed a healthCheck, stops those that lost it. */
  sync(): void {
    if (this.stopped) return;
    const table = this.opts.getTable();
    for (const pool of table.healthCheckedPools()) {
      const healthCheck = pool.record?.healthCheck;
      if (healthCheck === undefined) continue;
      const settings = settingsOf(healthCheck);
      const current = this.apps.get(pool.name);
      if (current !== undefined && sameSettings(current.settings, settings)) continue;
      current?.stop();
      const check = new AppHealthCheck(pool.name, settings, this.context);
      this.apps.set(pool.name, check);
      check.start();
    }
    for (const [name, check] of this.apps) {
      const pool = table.pool(name);
      if (pool?.record?.healthCheck !== undefined) continue;
      check.stop();
      this.apps.delete(name);
      // A verdict from a check that no longer exists must not keep backends out.
      if (pool !== undefined) this.clearVerdicts(pool);
    }
  }

  stop(): void {
    this.stopped = true;
    for (const check of this.apps.values()) check.stop();
    this.apps.clear();
  }

  private clearVerdicts(pool: AppPool): void {
    for (const backend of pool.backends) this.setVerdict(backend, true, undefined);
  }

  private setVerdict(backend: Backend, healthy: boolean, reason: string | undefined): void {
    if (backend.checkHealthy === healthy) return;
    backend.checkHealthy = healthy;
    const fields = { app: backend.app, instance: backend.id, origin: backend.origin, reason };
    if (healthy) {
      this.opts.logger?.info({ ...fields, failingForMs: Date.now() - backend.failingSince }, 'instance passes its health check');
      backend.failingSince = 0;
      backend.failingReason = '';
    } else {
      backend.failingSince = Date.now();
      backend.failingReason = reason ?? 'health check failed';
      this.opts.getTable().noteUnhealthy(backend);
      this.opts.logger?.warn(fields, 'instance fails its health check');
    }
    this.opts.onChange?.(backend);
  }

  /** Logs an unexpected error; never throws, since it runs in timers and promise callbacks. */
  private report(err: unknown, app: string): void {
    try {
      this.opts.logger?.warn({ err, app }, 'health check error');
    } catch {
      // The logger itself failed; there is nowhere left to report to.
    }
  }
}

/** The periodic check of one app's instances. */
class AppHealthCheck {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Consecutive failed probes per backend; absent means the last probe passed. */
  private readonly failures = new Map<Backend, number>();
  /** Probes in flight, by backend. */
  private readonly probing = new Map<Backend, Probe>();

  constructor(
    private readonly app: string,
    readonly settings: ProbeSettings,
    private readonly context: CheckContext,
  ) {}

  start(): void {
    this.schedule(Math.random() * this.settings.intervalMs);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    // Their connections are closed: the upstream client's close() need not wait for them.
    for (const inFlight of this.probing.values()) inFlight.cancel();
    this.probing.clear();
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => this.round(), delayMs);
    this.timer.unref();
  }

  private round(): void {
    try {
      const backends = this.context.getTable().pool(this.app)?.backends ?? [];
      for (const backend of this.failures.keys()) {
        if (!backends.includes(backend)) this.failures.delete(backend);
      }
      for (const backend of backends) {
        // A probe slower than the interval is not stacked with another one.
        if ((backend.state === 'ready' || backend.state === 'starting') && !this.probing.has(backend)) this.probe(backend);
      }
    } catch (err) {
      this.context.report(err, this.app);
    }
    if (!this.stopped) this.schedule(this.settings.intervalMs * (1 - JITTER + 2 * JITTER * Math.random()));
  }

  private probe(backend: Backend): void {
    const inFlight = new Probe(this.settings.path, this.settings.timeoutMs, (failure) => {
      this.probing.delete(backend);
      if (this.stopped) return;
      try {
        this.record(backend, failure);
      } catch (err) {
        this.context.report(err, this.app);
      }
    });
    this.probing.set(backend, inFlight);
    inFlight.send(this.context.client, backend.origin);
  }

  private record(backend: Backend, failure: string | undefined): void {
    if (failure === undefined) {
      this.failures.delete(backend);
      this.context.setVerdict(backend, true, undefined);
      return;
    }
    const count = (this.failures.get(backend) ?? 0) + 1;
    this.failures.set(backend, count);
    if (count >= FAILURES_TO_MARK_UNHEALTHY) this.context.setVerdict(backend, false, failure);
  }
}

function settingsOf(healthCheck: HealthCheck): ProbeSettings {
  return {
    path: healthCheck.path ?? '/healthz',
    intervalMs: healthCheck.intervalMs ?? 2000,
    timeoutMs: healthCheck.timeoutMs ?? 1000,
  };
}

function sameSettings(a: ProbeSettings, b: ProbeSettings): boolean {
  return a.path === b.path && a.intervalMs === b.intervalMs && a.timeoutMs === b.timeoutMs;
}
