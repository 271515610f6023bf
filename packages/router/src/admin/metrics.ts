/**
 * Prometheus metrics. Per-request counters are reached through cached label children so the
 * request path does two Map lookups and no allocation once an (app, status) pair has been seen.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

type CounterChild = ReturnType<Counter<'app' | 'status'>['labels']>;
type HistogramChild = ReturnType<Histogram<'app'>['labels']>;

export class RouterMetrics {
  readonly registry = new Registry();
  private readonly requests = new Counter({
    name: 'router_requests_total',
    help: 'Requests answered, by app ("" when no route matched) and status code',
    labelNames: ['app', 'status'] as const,
    registers: [this.registry],
  });
  private readonly upstreamLatency = new Histogram({
    name: 'router_upstream_duration_seconds',
    help: 'Time from dispatch to an instance until its response headers arrived',
    labelNames: ['app'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly upstreamFailures = new Counter({
    name: 'router_upstream_failures_total',
    help: 'Connections to instances that failed (refused, reset, timed out), by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly tableSwaps = new Counter({
    name: 'router_table_swaps_total',
    help: 'Full tables built from a list of etcd and swapped in',
    registers: [this.registry],
  });
  readonly tableChanges = new Histogram({
    name: 'router_table_change_duration_seconds',
    help: 'Time to apply one etcd revision to the live table',
    buckets: [0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05],
    registers: [this.registry],
  });
  readonly resyncs = new Counter({
    name: 'router_resyncs_total',
    help: 'Times the etcd watch was lost and the prefix listed again',
    registers: [this.registry],
  });
  readonly rejectedRecords = new Counter({
    name: 'router_rejected_records_total',
    help: 'Record values rejected as invalid',
    registers: [this.registry],
  });
  readonly rejectedNow = new Gauge({
    name: 'router_rejected_records',
    help: 'Keys whose current value is rejected',
    registers: [this.registry],
  });
  readonly etcdConnected = new Gauge({
    name: 'router_etcd_connected',
    help: '1 when etcd is reachable',
    registers: [this.registry],
  });
  readonly appliedRevision = new Gauge({
    name: 'router_applied_revision',
    help: 'etcd revision fully applied to the table',
    registers: [this.registry],
  });
  readonly routes = new Gauge({
    name: 'router_routes',
    help: '(host, path) routes in the table',
    registers: [this.registry],
  });

  private readonly requestChildren = new Map<string, Map<number, CounterChild>>();
  private readonly latencyChildren = new Map<string, HistogramChild>();

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  countRequest(app: string, status: number): void {
    let byStatus = this.requestChildren.get(app);
    if (!byStatus) {
      byStatus = new Map();
      this.requestChildren.set(app, byStatus);
    }
    let child = byStatus.get(status);
    if (!child) {
      child = this.requests.labels(app, String(status));
      byStatus.set(status, child);
    }
    child.inc();
  }

  observeUpstream(app: string, seconds: number): void {
    let child = this.latencyChildren.get(app);
    if (!child) {
      child = this.upstreamLatency.labels(app);
      this.latencyChildren.set(app, child);
    }
    child.observe(seconds);
  }
}
