/**
 * Prometheus metrics. The per-request metrics do not go through prom-client on the request
 * path (its label children hash their label object on every call: ~3% of a proxied request's
 * CPU): requests are counted in plain per-(app, status) cells, and TLS requests in two numbers
 * by protocol, flushed into the prom-client counters when metrics are collected; the upstream
 * latency histogram is a small metric of our own with per-app bucket arrays. None allocates
 * once an app has been seen.
 *
 * The number of series does not depend on the number of apps unless `perApp` (--metrics-per-app):
 * by default the two per-request metrics have no app label (one cell each). With it, an app's
 * series go when the app leaves the table, checked at each collection.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type Metric, type MetricObjectWithValues, type MetricValueWithName } from 'prom-client';

import { ROUTER_VERSION } from '../version.js';

/** What the gauges read when metrics are collected; set once the router has built them. */
export interface MetricSources {
  /** Requests and WebSockets open to instances. */
  inflight(): number;
  /** Client connections open on the traffic listeners. */
  connections(): number;
  /** When etcd last sent an event, a progress notice or a list (ms epoch; 0: never). */
  lastEtcdNotice(): number;
  /** Instances ejected or failing their health check. */
  unhealthy(): number;
  /** The app is in the table (its per-app series are kept). */
  hasApp(app: string): boolean;
}

const NO_APP = '';

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
  readonly cells = new Map<string, LatencyCell>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
    /** Label the series by app; else every observation goes to one cell without an app label. */
    private readonly perApp: boolean,
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
      const labels = this.perApp ? { app } : {};
      let cumulative = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        cumulative += cell.buckets[i]!;
        values.push({ labels: { le: this.bounds[i]!, ...labels }, value: cumulative, metricName: `${this.name}_bucket` });
      }
      values.push({ labels: { le: '+Inf', ...labels }, value: cell.count, metricName: `${this.name}_bucket` });
      values.push({ labels, value: cell.sum, metricName: `${this.name}_sum` });
      values.push({ labels, value: cell.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type as never, aggregator: this.aggregator, values, collect: () => undefined };
  }

  reset(): void {
    this.cells.clear();
  }
}

/** What the certificate metrics read at each scrape. */
export interface CertificateSource {
  all(): Iterable<{ readonly name: string; readonly notAfter: number }>;
  /** How many expire within the warning window (status/certificates.ts). */
  expiringSoon(): number;
}

export class RouterMetrics {
  readonly registry = new Registry();
  private certificates: CertificateSource | undefined;
  private readonly requestCells = new Map<string, Map<number, CountCell>>();
  private sources: MetricSources | undefined;
  private readonly requests: Counter<'app' | 'status'>;
  private readonly upstreamLatency: AppLatencyHistogram;
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
  readonly recordWarnings = new Gauge({
    name: 'router_record_warnings',
    help: 'Accepted records whose current value has fields the schema does not know (ignored; often a typo)',
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
  readonly ready = new Gauge({
    name: 'router_ready',
    help: '1 while /readyz answers 200: the first load from etcd is applied and the router is not stopping (with workers: every worker)',
    aggregator: 'min',
    registers: [this.registry],
  });
  readonly digestMismatches = new Counter({
    name: 'router_digest_mismatches_total',
    help: 'Peer digest checks that found this router\'s table digest differs from the majority at the same revision',
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

  /** One series per served certificate, read from the table at each scrape: a removed certificate's series goes with it. */
  private readonly certificateExpiry: Gauge<'name'> = new Gauge({
    name: 'router_certificate_expiry_timestamp_seconds',
    help: "The leaf's notAfter of each served certificate (certs/<name>), in seconds since the epoch",
    labelNames: ['name'] as const,
    aggregator: 'max',
    registers: [this.registry],
    collect: () => {
      this.certificateExpiry.reset();
      if (this.certificates === undefined) return;
      for (const c of this.certificates.all()) this.certificateExpiry.set({ name: c.name }, c.notAfter / 1000);
    },
  });
  private readonly certificatesExpiringSoon: Gauge = new Gauge({
    name: 'router_certificates_expiring_soon',
    help: 'Served certificates whose leaf expires within 14 days',
    aggregator: 'max',
    registers: [this.registry],
    collect: () => {
      this.certificatesExpiringSoon.set(this.certificates?.expiringSoon() ?? 0);
    },
  });

  /** Automatic HTTPS (acme/issuer.ts): a fixed set of series, whatever the number of hosts. */
  readonly acmeOrders = new Counter({
    name: 'router_acme_orders_total',
    help: 'ACME orders this router carried through, by result (issued, failed)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly acmeRenewalsDue = new Gauge({
    name: 'router_acme_renewals_due',
    help: 'Hosts of apps with tls.acme whose certificate is missing or past its renewal point (a third of its lifetime left)',
    aggregator: 'max',
    registers: [this.registry],
  });
  readonly acmeSoonestExpiry = new Gauge({
    name: 'router_acme_soonest_expiry_seconds',
    help: 'Seconds until the soonest-expiring ACME certificate expires (absent without one; per certificate: router_certificate_expiry_timestamp_seconds)',
    aggregator: 'min',
    registers: [this.registry],
  });

  /** Where the certificate metrics read the served certificates from. */
  observeCertificates(source: CertificateSource): void {
    this.certificates = source;
  }

    readonly requestsInFlight: Gauge = new Gauge({
    name: 'router_requests_in_flight',
    help: 'Requests and WebSockets open to instances',
    aggregator: 'sum',
    registers: [this.registry],
    collect: (): void => this.requestsInFlight.set(this.sources?.inflight() ?? 0),
  });
  readonly clientConnections: Gauge = new Gauge({
    name: 'router_client_connections',
    help: 'Client connections open on the traffic listeners (plain and TLS)',
    aggregator: 'sum',
    registers: [this.registry],
    collect: (): void => this.clientConnections.set(this.sources?.connections() ?? 0),
  });
  readonly etcdSilence: Gauge = new Gauge({
    name: 'router_etcd_last_notice_age_seconds',
    help: 'Seconds since etcd last sent an event, a progress notice or a list (-1 before the first)',
    aggregator: 'max',
    registers: [this.registry],
    collect: (): void => {
      const at = this.sources?.lastEtcdNotice() ?? 0;
      this.etcdSilence.set(at === 0 ? -1 : (Date.now() - at) / 1000);
    },
  });
  readonly unhealthyInstances: Gauge = new Gauge({
    name: 'router_unhealthy_instances',
    help: 'Instances ejected (connections failed) or failing their health check',
    aggregator: 'max',
    registers: [this.registry],
    collect: (): void => this.unhealthyInstances.set(this.sources?.unhealthy() ?? 0),
  });
  readonly buildInfo = new Gauge({
    name: 'router_build_info',
    help: 'Always 1; the labels say which router and Node run',
    labelNames: ['version', 'node'] as const,
    aggregator: 'first',
    registers: [this.registry],
  });

  constructor(opts: { perApp?: boolean } = {}) {
    this.perApp = opts.perApp ?? false;
    this.requests = new Counter({
      name: 'router_requests_total',
      help: this.perApp ? 'Requests answered, by app ("" when no route matched) and status code' : 'Requests answered, by status code (--metrics-per-app adds an app label)',
      labelNames: this.perApp ? ['app', 'status'] : ['status'],
      registers: [this.registry],
      collect: () => this.flushRequestCounts(),
    });
    this.upstreamLatency = new AppLatencyHistogram(
      'router_upstream_duration_seconds',
      'Time from dispatch to an instance until its response headers arrived',
      [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      this.perApp,
    );
    collectDefaultMetrics({ register: this.registry });
    // Gauges named like counters fail `promtool check metrics`; the same totals remain, by type,
    // in nodejs_active_handles, nodejs_active_requests and nodejs_active_resources.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(name);
    this.registry.registerMetric(this.upstreamLatency as unknown as Metric);
    this.buildInfo.labels(ROUTER_VERSION, process.version).set(1);
  }

  private readonly perApp: boolean;

  /** Where the gauges read their values; before this they read 0. */
  setSources(sources: MetricSources): void {
    this.sources = sources;
  }

  /** Answers counted so far (the router's load sampler reads it). */
  answered = 0;

  countRequest(app: string, status: number): void {
    this.answered++;
    if (!this.perApp) app = NO_APP;
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
    this.upstreamLatency.observe(this.perApp ? app : NO_APP, seconds);
  }

  private flushTlsRequestCounts(): void {
    const c = this.tlsRequestCounts;
    if (c.h1 > 0) this.tlsRequests.inc({ protocol: 'http/1.1' }, c.h1);
    if (c.h2 > 0) this.tlsRequests.inc({ protocol: 'h2' }, c.h2);
    c.h1 = 0;
    c.h2 = 0;
  }

  private flushRequestCounts(): void {
    if (this.perApp) this.forgetGoneApps();
    for (const byStatus of this.requestCells.values()) {
      for (const cell of byStatus.values()) {
        if (cell.n === 0) continue;
        this.requests.inc(this.perApp ? { app: cell.app, status: cell.status } : { status: cell.status }, cell.n);
        cell.n = 0;
      }
    }
  }

  /** Drops the series of apps no longer in the table (their record was deleted). */
  private forgetGoneApps(): void {
    const sources = this.sources;
    if (sources === undefined) return;
    for (const [app, byStatus] of this.requestCells) {
      if (app === NO_APP || sources.hasApp(app)) continue;
      for (const cell of byStatus.values()) this.requests.remove({ app, status: cell.status });
      this.requestCells.delete(app);
    }
    for (const app of this.upstreamLatency.cells.keys()) {
      if (app !== NO_APP && !sources.hasApp(app)) this.upstreamLatency.cells.delete(app);
    }
  }
}
