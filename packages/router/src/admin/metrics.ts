/**
 * Prometheus metrics. The per-request metrics do not go through prom-client on the request
 * path (its label children hash their label object on every call: ~3% of a proxied request's
 * CPU): requests are counted in plain per-(app, status) cells, and TLS requests in two numbers
 * by protocol, flushed into the prom-client counters when metrics are collected; the upstream
 * latency histogram is a small metric of our own with per-app bucket arrays. None allocates
 * once an app has been seen.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type Metric, type MetricObjectWithValues, type MetricValueWithName } from 'prom-client';

interface CountCell {
  n: number;
  readonly app: string;
  readonly status: string;
}

interface LatencyCell {
  readonly buckets: Float64Array;
  sum: number;
  count: number;
}

/** A histogram labelled by app, in prom-client's Metric shape (so registries and the cluster aggregate take it). */
class AppLatencyHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly cells = new Map<string, LatencyCell>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
  ) {}

  observe(app: string, seconds: number): void {
    let cell = this.cells.get(app);
    if (cell === undefined) {
      cell = { buckets: new Float64Array(this.bounds.length), sum: 0, count: 0 };
      this.cells.set(app, cell);
    }
    const bounds = this.bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (seconds <= bounds[i]!) {
        cell.buckets[i]!++;
        break;
      }
    }
    cell.sum += seconds;
    cell.count++;
  }

  async get(): Promise<MetricObjectWithValues<MetricValueWithName<string>>> {
    const values: MetricValueWithName<string>[] = [];
    for (const [app, cell] of this.cells) {
      let cumulative = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        cumulative += cell.buckets[i]!;
        values.push({ labels: { le: this.bounds[i]!, app }, value: cumulative, metricName: `${this.name}_bucket` });
      }
      values.push({ labels: { le: '+Inf', app }, value: cell.count, metricName: `${this.name}_bucket` });
      values.push({ labels: { app }, value: cell.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { app }, value: cell.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type as never, aggregator: this.aggregator, values, collect: () => undefined };
  }

  reset(): void {
    this.cells.clear();
  }
}

export class RouterMetrics {
  readonly registry = new Registry();
  private readonly requestCells = new Map<string, Map<number, CountCell>>();
  private readonly requests: Counter<'app' | 'status'> = new Counter({
    name: 'router_requests_total',
    help: 'Requests answered, by app ("" when no route matched) and status code',
    labelNames: ['app', 'status'] as const,
    registers: [this.registry],
    collect: () => this.flushRequestCounts(),
  });
  private readonly upstreamLatency = new AppLatencyHistogram(
    'router_upstream_duration_seconds',
    'Time from dispatch to an instance until its response headers arrived',
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  );
  readonly upstreamFailures = new Counter({
    name: 'router_upstream_failures_total',
    help: 'Connections to instances that failed (refused, reset, timed out), by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly tableSwaps = new Counter({
    name: 'router_table_swaps_total',
    help: 'Full lists of etcd applied to the table (the first load and every re-list); the name is kept from when each built a new table',
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
    help: 'Full re-lists of the watched prefix (a compaction passed the applied revision, etcd refused the watch, a digest resync)',
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
    aggregator: 'max',
    registers: [this.registry],
  });
  readonly etcdConnected = new Gauge({
    name: 'router_etcd_connected',
    help: '1 when etcd is reachable',
    aggregator: 'min',
    registers: [this.registry],
  });
  readonly appliedRevision = new Gauge({
    name: 'router_applied_revision',
    help: 'etcd revision fully applied to the table',
    aggregator: 'min',
    registers: [this.registry],
  });
  readonly upstreamClientInfo = new Gauge({
    name: 'router_upstream_client_info',
    help: 'The upstream client that forwards requests and runs health checks (1 on its label: native or portable)',
    labelNames: ['client'] as const,
    aggregator: 'max',
    registers: [this.registry],
  });
  readonly routes = new Gauge({
    name: 'router_routes',
    help: '(host, path) routes in the table',
    aggregator: 'max',
    registers: [this.registry],
  });

  readonly tlsHandshakes = new Counter({
    name: 'router_tls_handshakes_total',
    help: 'TLS handshakes on --listen-tls by result: ok (a certificate covers the server name), default_cert (--default-cert served), unknown_name (no certificate: refused), error (failed otherwise)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly tlsResumed = new Counter({
    name: 'router_tls_resumed_handshakes_total',
    help: 'TLS handshakes that resumed a session (a ticket) instead of a full handshake',
    registers: [this.registry],
  });
  /** Requests on --listen-tls since the last collection, by protocol (flushed like requestCells). */
  private readonly tlsRequestCounts = { h1: 0, h2: 0 };
  private readonly tlsRequests = new Counter({
    name: 'router_tls_requests_total',
    help: 'Requests on --listen-tls by protocol (http/1.1 includes WebSocket upgrades; h2)',
    labelNames: ['protocol'] as const,
    registers: [this.registry],
    collect: () => this.flushTlsRequestCounts(),
  });
  readonly tlsContexts = new Gauge({
    name: 'router_tls_contexts',
    help: 'TLS contexts built and cached (one per certificate in use, at most --tls-context-cache)',
    aggregator: 'sum',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    this.registry.registerMetric(this.upstreamLatency as unknown as Metric);
  }

  countRequest(app: string, status: number): void {
    let byStatus = this.requestCells.get(app);
    if (byStatus === undefined) {
      byStatus = new Map();
      this.requestCells.set(app, byStatus);
    }
    let cell = byStatus.get(status);
    if (cell === undefined) {
      cell = { n: 0, app, status: String(status) };
      byStatus.set(status, cell);
    }
    cell.n++;
  }

  /** One request on --listen-tls (the per-request path: no prom-client call, see the module comment). */
  countTlsRequest(http2: boolean): void {
    if (http2) this.tlsRequestCounts.h2++;
    else this.tlsRequestCounts.h1++;
  }

  observeUpstream(app: string, seconds: number): void {
    this.upstreamLatency.observe(app, seconds);
  }

  private flushTlsRequestCounts(): void {
    const c = this.tlsRequestCounts;
    if (c.h1 > 0) this.tlsRequests.inc({ protocol: 'http/1.1' }, c.h1);
    if (c.h2 > 0) this.tlsRequests.inc({ protocol: 'h2' }, c.h2);
    c.h1 = 0;
    c.h2 = 0;
  }

  private flushRequestCounts(): void {
    for (const byStatus of this.requestCells.values()) {
      for (const cell of byStatus.values()) {
        if (cell.n === 0) continue;
        this.requests.inc({ app: cell.app, status: cell.status }, cell.n);
        cell.n = 0;
      }
    }
  }
}
