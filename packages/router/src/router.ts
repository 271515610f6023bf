/**
 * Wires etcd → records → table → proxy together and owns the router's lifecycle: start-up
 * (the first full list is asked for first; the admin listener comes up while etcd reads it,
 * then the list is applied, then the traffic listener), and a graceful stop.
 */
import { connectEtcd, KeyLayout, KeyTakenError } from '@paas/registry';
import type { Logger } from 'pino';
import { AggregatorRegistry } from 'prom-client';
import { RouterMetrics } from './admin/metrics.js';
import type { RouterConfig } from './config.js';
import { createAccessLogger } from './log.js';
import { ActiveHealthChecker } from './health/active.js';
import { TableSync } from './records/table-sync.js';
import { SharedTicketKeys } from './listeners/ticket-keys.js';
import { PeerDigestCheck } from './status/peer-digest-check.js';
import { idTakenMessage, StatusReporter } from './status/reporter.js';
import { certificatesReport, expiringSoonCount } from './status/certificates.js';
import { LoadSampler } from './status/load.js';
import { statusRecord, statusRecordValue } from './status/status-record.js';

/** How often the router samples its own load for the status record. */
const LOAD_SAMPLE_MS = 5_000;
import { ChallengeAnswers } from './acme/challenge-answers.js';
import type { AcmeIssuer } from './acme/issuer.js';
import { routesView, type RoutesQuery } from './admin/routes-view.js';
import { TunnelConnector } from './tunnel/connector.js';
import type { TunnelListener } from './tunnel/listener.js';
import { TunnelMetrics } from './tunnel/metrics.js';
import { TunnelPresence } from './tunnel/presence.js';
import { TunnelSessions } from './tunnel/sessions.js';
import { TunnelTokens } from './tunnel/tokens.js';
import { livePeers } from './tunnel/peers.js';
import { ROUTER_MODULES } from './version.js';

/** Agents are PINGed this often; one that has not answered for TUNNEL_PING_TIMEOUT_MS is dropped. */
const TUNNEL_PING_INTERVAL_MS = 1000;
const TUNNEL_PING_TIMEOUT_MS = 4000;

export interface RunningRouter {
  readonly sync: TableSync;
  /** Stops taking traffic, lets in-flight requests finish (bounded), revokes the status lease. */
  stop(): Promise<void>;
}

export interface StartOptions {
  /**
   * Run as worker k of a --workers cluster: no admin listener (the primary owns it and asks
   * over IPC for status and metrics); config.id is already the worker's own id.
   */
  worker?: number;
  /**
   * The lease of this worker's predecessor, which the primary saw die: its status record may
   * still hold the worker's id until the lease expires, and is taken over instead of waited out.
   */
  replacesLease?: string;
}

/** IPC between the cluster primary and a worker (see cluster.ts). */
export type WorkerMessage =
  | { type: 'paas:ready' }
  | { type: 'paas:lease'; lease: string }
  | { type: 'paas:status'; seq: number; status: object }
  | { type: 'paas:routes'; seq: number; routes: object };
export type PrimaryMessage = { type: 'paas:status'; seq: number } | { type: 'paas:routes'; seq: number; query: RoutesQuery };

export async function startRouter(config: RouterConfig, log: Logger, opts: StartOptions = {}): Promise<RunningRouter> {
  const inWorker = opts.worker !== undefined && process.send !== undefined;
  const layout = new KeyLayout(config.prefix);
  const etcd = connectEtcd({ endpoints: config.etcdEndpoints, security: config.etcdSecurity });
  const metrics = new RouterMetrics({ perApp: config.metricsPerApp });
  const startedAt = new Date().toISOString();
  let ready = false;
  let reporter: StatusReporter | undefined;
  let checker: ActiveHealthChecker | undefined;
  let tunnelListener: TunnelListener | undefined;
  // The agent tunnel (--listen-tunnel): its sessions are a transport the upstream client dials through.
  const tunnel = config.listenTunnel === undefined ? undefined : (() => {
    const tokens = new TunnelTokens(etcd, layout, log);
    const presence = new TunnelPresence(etcd, layout, config.id, log);
    const tunnelMetrics = new TunnelMetrics(metrics.registry);
    const sessions = new TunnelSessions({ tokens, presence, log, pingIntervalMs: TUNNEL_PING_INTERVAL_MS, pingTimeoutMs: TUNNEL_PING_TIMEOUT_MS, metrics: tunnelMetrics });
    const connector = new TunnelConnector(sessions, config.tunnelConnectTimeoutMs, (reason) => tunnelMetrics.streamRefused(reason));
    return { tokens, presence, sessions, metrics: tunnelMetrics, connector };
  })();

  const sync: TableSync = new TableSync(layout, log, {
    onApplied(kind, ms) {
      // A progress notice changed nothing in the table: it only moves the applied revision.
      if (kind === 'snapshot') metrics.tableSwaps.inc();
      else if (kind === 'revision') metrics.tableChanges.observe(ms / 1000);
      metrics.appliedRevision.set(Number(sync.revision));
      metrics.routes.set(sync.table.routeCount());
      metrics.rejectedNow.set(sync.rejectedCount);
      metrics.recordWarnings.set(sync.warningsCount);
      checker?.sync();
      tunnelListener?.refreshCert();
      reporter?.schedule();
    },
    onRejected() {
      metrics.rejectedRecords.inc();
    },
    onResync() {
      metrics.resyncs.inc();
    },
    onConnection(connected) {
      metrics.etcdConnected.set(connected ? 1 : 0);
    },
  }, {
    getAt: (key, revision) => etcd.getAt(key, revision),
    // A key inside the prefix: a router's etcd role (docs/etcd-security.md) grants nothing outside it.
    servesRevision: (revision) => etcd.servesRevision(revision, `${layout.prefix}/`),
  }, { keyRing: config.keyRing, now: Date.now });
  metrics.observeCertificates({ all: () => sync.table.certs.all(), expiringSoon: () => expiringSoonCount(sync.table.certs, Date.now()) });

  // The first list is asked for before the listeners' modules (fastify, the upstream clients)
  // are loaded: etcd takes longer to read the first page than Node takes to load them, so the
  // loading happens while etcd works.
  const mirror = etcd.mirror({ ...layout.watchedRange(), boundaries: layout.watchedBoundaries(), splits: layout.watchedSplits(), startTimeoutMs: config.startTimeoutMs }, sync);
  const listed = mirror.start().then(() => sync.whenLoaded());
  listed.catch(() => undefined); // awaited below, once the admin listener is up
  let admin: { close(): Promise<unknown> } | undefined;
  const startFailed = async (err: unknown): Promise<never> => {
    await mirror.close();
    await admin?.close();
    await etcd.close();
    throw err;
  };
  const [{ createProxyServer }, { createAdminServer }] = await Promise.all([import('./listeners/traffic.js'), import('./listeners/admin.js')]).catch(startFailed);

  // Built before the admin listener (it listens only once the table is loaded), so /status can
  // say from the start which upstream client runs.
  const accessLogger = config.accessLogFile === undefined ? undefined : createAccessLogger(config.accessLogFile, config.id);
  const proxy = createProxyServer({
    getTable: () => sync.table,
    metrics,
    log,
    connectTimeoutMs: config.connectTimeoutMs,
    upstreamTimeoutMs: config.upstreamTimeoutMs,
    keepAliveTimeoutMs: config.keepAliveTimeoutMs,
    clientKeepAliveTimeoutMs: config.clientKeepAliveTimeoutMs,
    requestHeaderTimeoutMs: config.requestHeaderTimeoutMs,
    upstreamClient: config.upstreamClient,
    clientParser: config.clientParser,
    retryAfterSeconds: config.retryAfterSeconds,
    maxAttempts: config.maxAttempts,
    accessLog: config.accessLog,
    accessLogger,
    onDrained: () => reporter?.schedule(),
    publicHttpsPort: config.publicHttpsPort,
    tls: config.listenTls === undefined ? undefined : { defaultCert: config.defaultCert, contextCacheSize: config.tlsContextCache },
    // Every router answers the fleet's HTTP-01 challenges, ordering or not: the CA reaches any of them.
    challenges: new ChallengeAnswers({ read: async (token) => (await etcd.get(layout.acmeChallenge(token)))?.value, getTable: () => sync.table, log }),
    ...(tunnel === undefined ? {} : { moreConnectors: new Map([['tunnel:', tunnel.connector]]) }),
  });
  let acme: AcmeIssuer | undefined;
  metrics.upstreamClientInfo.labels(proxy.upstream.kind).set(1);
  // Published in the status record (and /status) every few seconds: what a deployer or operator
  // reads to tell a router near capacity from an idle one.
  const load = new LoadSampler({ answered: () => metrics.answered, connections: () => proxy.drain.connections });
  metrics.setSources({
    inflight: () => sync.table.inflightTotal(),
    connections: () => proxy.drain.connections,
    lastEtcdNotice: () => sync.lastNoticeAt,
    unhealthy: () => sync.table.unhealthyCount(Date.now()),
    hasApp: (app) => sync.table.pool(app)?.record !== undefined,
  });

  const status = () => ({
    id: config.id,
    ready,
    upstreamClient: proxy.upstream.kind,
    clientParser: proxy.clientParser,
    modules: ROUTER_MODULES,
    tls: proxy.tls === undefined ? null : {
      listen: `${config.listenTls!.host}:${config.listenTls!.port}`,
      defaultCert: config.defaultCert ?? null,
      certificates: sync.table.certs.size,
      contexts: proxy.tls.contexts.size,
      contextCache: config.tlsContextCache,
    },
    tunnel: tunnelListener === undefined ? null : { listen: `${config.listenTunnel!.host}:${config.listenTunnel!.port}`, advertise: config.tunnelAdvertise, ...tunnelListener.describe() },
    ...statusRecord(sync, startedAt),
    load: load.current ?? null,
    certificates: certificatesReport(sync.table, Date.now()),
    acme: acme?.report() ?? null,
    etcd: { endpoints: config.etcdEndpoints, connected: sync.etcdConnected, downSince: sync.etcdDownSince?.toISOString() ?? null },
  });

  const routes = (query: RoutesQuery) => routesView(sync.table, sync.revision.toString(), query, Date.now());

  if (inWorker) {
    // Constructing one installs prom-client's answer to the primary's metrics requests.
    new AggregatorRegistry();
    AggregatorRegistry.setRegistries([metrics.registry]);
    const onMessage = (msg: PrimaryMessage) => {
      if (msg?.type === 'paas:status') process.send!({ type: 'paas:status', seq: msg.seq, status: status() } satisfies WorkerMessage);
      else if (msg?.type === 'paas:routes') process.send!({ type: 'paas:routes', seq: msg.seq, routes: routes(msg.query) } satisfies WorkerMessage);
    };
    process.on('message', onMessage);
    admin = { close: async () => void process.off('message', onMessage) };
  } else {
    const server = createAdminServer({ metrics: { text: () => metrics.registry.metrics(), contentType: metrics.registry.contentType }, isReady: () => ready, status, routes: (query) => (sync.loaded ? routes(query) : null) });
    await server.listen({ host: config.admin.host, port: config.admin.port }).catch(startFailed);
    log.info({ admin: `${config.admin.host}:${config.admin.port}` }, 'admin listening');
    admin = server;
  }
  const adminServer = admin;

  // The first list commits once the last good values of its rejected keys are read.
  await listed.catch(startFailed);

  checker = new ActiveHealthChecker({ getTable: () => sync.table, client: proxy.upstream, logger: log });
  checker.sync();

  const statusKey = etcd.leasedKey(layout.router(config.id), config.leaseTtlSeconds);
  tunnel?.presence.attach(statusKey);
  reporter = new StatusReporter(
    statusKey,
    () => statusRecordValue(sync, startedAt, config.tunnelAdvertise, load.current),
    log,
    Math.max(1000, Math.min(5000, (config.leaseTtlSeconds * 1000) / 3)),
    (err) => {
      // Our lease lapsed and another router took the id meanwhile: its record is the one
      // deployers trust, so this router stops rather than serve unseen by them.
      log.fatal({ holder: err.holder.lease }, idTakenMessage(config.id, err));
      process.stderr.write(`paas-router: ${idTakenMessage(config.id, err)}: stopping\n`);
      void (stopping ??= stop()).finally(() => process.exit(1));
    },
  );
  const statusReporter = reporter;
  if (inWorker) statusKey.onLease((lease) => process.send!({ type: 'paas:lease', lease } satisfies WorkerMessage));
  if (opts.replacesLease !== undefined) {
    // The primary saw the holder of this lease die: its record goes now, not when the lease expires.
    await etcd.revokeLease(opts.replacesLease).catch(startFailed);
    log.info({ lease: opts.replacesLease }, 'revoked the lease of the worker this one replaces');
  }
  // A second router with this id: refuse to start (main prints the message and exits 1).
  await statusReporter.claim().catch((err: unknown) => startFailed(err instanceof KeyTakenError ? new Error(idTakenMessage(config.id, err)) : err));

  const digestCheck = new PeerDigestCheck({
    etcd,
    layout,
    selfId: config.id,
    sync,
    log,
    resync: (reason) => mirror.resync(reason),
    intervalMs: config.digestCheckMs,
    minResyncIntervalMs: 60_000,
    onMismatch: () => metrics.digestMismatches.inc(),
  });

  const tlsListener = proxy.tls;
  const ticketKeys = tlsListener === undefined ? undefined : new SharedTicketKeys(etcd, `${layout.prefix}/tls-ticket-keys`, (key) => tlsListener.setTicketKeys(key), log);
  await proxy.server.listen({ host: config.listen.host, port: config.listen.port });
  if (proxy.tls !== undefined) {
    // The fleet's ticket key before the first handshake, so its tickets resume on any replica.
    await ticketKeys!.start();
    await proxy.tls.listen(config.listenTls!.host, config.listenTls!.port);
    log.info({ listenTls: `${config.listenTls!.host}:${config.listenTls!.port}`, defaultCert: config.defaultCert ?? null }, 'TLS listener ready');
  }
  if (tunnel !== undefined) {
    // Tokens before the first agent: none is judged against an empty set.
    await tunnel.tokens.start(config.startTimeoutMs).catch(startFailed);
    const { TunnelListener } = await import('./tunnel/listener.js');
    tunnelListener = new TunnelListener({
      certName: config.tunnelCert!,
      getTable: () => sync.table,
      tokens: tunnel.tokens,
      sessions: tunnel.sessions,
      routerId: config.id,
      peers: livePeers(etcd, layout, config.tunnelAdvertise!),
      log,
      handshakeTimeoutMs: config.requestHeaderTimeoutMs,
      maxSessions: config.tunnelMaxSessions,
      maxSessionsPerInstance: config.tunnelMaxSessionsPerInstance,
      metrics: tunnel.metrics,
    });
    await tunnelListener.listen(config.listenTunnel!.host, config.listenTunnel!.port);
    log.info({ listenTunnel: `${config.listenTunnel!.host}:${config.listenTunnel!.port}`, tunnelCert: config.tunnelCert, advertise: config.tunnelAdvertise }, 'tunnel listener ready');
  }
  ready = true;
  metrics.ready.set(1);
  if (inWorker) process.send!({ type: 'paas:ready' } satisfies WorkerMessage);
  statusReporter.start();
  load.start(LOAD_SAMPLE_MS);
  digestCheck.start();
  sync.startHistoryCheck(config.digestCheckMs);
  if (config.acme !== undefined) {
    const { AcmeIssuer } = await import('./acme/issuer.js');
    acme = new AcmeIssuer({
      etcd,
      layout,
      log,
      routerId: config.id,
      ...config.acme,
      keyRing: config.keyRing,
      getTable: () => sync.table,
      lockTtlSeconds: config.leaseTtlSeconds,
      metrics: {
        order: (result) => metrics.acmeOrders.inc({ result }),
        gauges(due, soonest) {
          metrics.acmeRenewalsDue.set(due);
          if (Number.isFinite(soonest)) metrics.acmeSoonestExpiry.set(soonest);
          else metrics.acmeSoonestExpiry.reset();
        },
      },
    });
    acme.start();
  }
  log.info({ listen: `${config.listen.host}:${config.listen.port}`, revision: sync.revision.toString() }, 'router ready');

  let stopping: Promise<void> | undefined;
  async function stop(): Promise<void> {
    ready = false;
    metrics.ready.set(0);
    // From now on every answer says `Connection: close`, so clients move their next request to
    // a new connection (to another router once this one's address is out of rotation).
    proxy.drain.begin();
    log.info({ drainWaitMs: config.drainWaitMs, shutdownTimeoutMs: config.shutdownTimeoutMs }, 'stopping: readyz now 503, answers say Connection: close');
    if (config.drainWaitMs > 0) await new Promise((r) => setTimeout(r, config.drainWaitMs));
    await proxy.drain.stopAccepting();
    log.info({ connections: proxy.drain.connections }, 'listener closed: waiting for client connections to end');
    const cutOff = setTimeout(() => {
      log.warn({ connections: proxy.drain.connections }, 'shutdown timeout: closing the connections still open');
      proxy.drain.cut();
    }, config.shutdownTimeoutMs);
    await proxy.close();
    clearTimeout(cutOff);
    // The access file is written asynchronously: its last lines go out before the process exits.
    accessLogger?.flush();
    // Agents move to the other routers (they hold sessions to every one) once these end.
    await tunnelListener?.close();
    await tunnel?.presence.close();
    await tunnel?.tokens.close();
    checker?.stop();
    load.stop();
    await acme?.stop();
    ticketKeys?.stop();
    digestCheck.stop();
    sync.close();
    await statusReporter.close().catch((err: Error) => log.warn({ err: err.message }, 'could not revoke the status lease'));
    await mirror.close();
    await etcd.close();
    await proxy.upstream.close();
    await adminServer.close();
    log.info({}, 'stopped');
  }

  return {
    sync,
    stop: () => (stopping ??= stop()),
  };
}
