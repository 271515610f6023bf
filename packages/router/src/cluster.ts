/**
 * `--workers N` (N > 1): a node:cluster primary and N workers sharing the traffic port.
 *
 * Each worker is a whole router with id `<id>-w<k>`: its own etcd list-then-watch, table, status
 * record on its own lease, health checks and peer digest check. That is the simplest design
 * that keeps every guarantee as it is: a worker's `revision` still means "in this worker's
 * table", and a deployer that waits on every live status record and sums `inflight` across
 * records is right for workers exactly as it is for separate routers. A crashed worker is
 * isolated: the primary forks it again, and the new one revokes the dead one's lease (the
 * primary saw it die and passes its lease on) instead of waiting out the TTL for its id. The
 * cost is one watch per worker.
 *
 * Connections are accepted by the workers themselves (SCHED_NONE: the kernel spreads them), not
 * handed out by the primary (node's default round-robin): with round-robin, a connection the
 * primary hands to a worker that has just died is lost and the client hangs, and every new
 * connection costs an IPC round trip through the primary.
 *
 * The primary takes no traffic. It owns the admin listener: /readyz is 200 once every worker
 * has applied its first load (and while at least one is ready), 503 while stopping; /status
 * asks each worker over IPC and lists them; /metrics is prom-client's cluster aggregate.
 * SIGTERM goes to every worker, which drains as a single router would; the primary exits once
 * they have.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { AggregatorRegistry } from 'prom-client';
import type { RouterConfig } from './config.js';
import type { PrimaryMessage, WorkerMessage } from './router.js';
import type { RoutesQuery, RoutesView } from './admin/routes-view.js';

/** Environment variable telling a forked worker its index k (1..N). */
export const WORKER_ENV = 'PAAS_ROUTER_WORKER';
/** Environment variable telling a restarted worker the lease of the one it replaces (router.ts). */
export const REPLACES_LEASE_ENV = 'PAAS_ROUTER_REPLACES_LEASE';

export function workerId(id: string, k: number): string {
  return `${id}-w${k}`;
}

interface Slot {
  k: number;
  worker: Worker | undefined;
  ready: boolean;
  /** The lease the slot's worker holds its status record on, as it last said. */
  lease: string | undefined;
}

const RESTART_DELAY_MS = 1000;
const STATUS_TIMEOUT_MS = 2000;

export interface RunningPrimary {
  stop(): Promise<number>;
}

export async function startPrimary(config: RouterConfig, log: Logger): Promise<RunningPrimary> {
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  const slots: Slot[] = Array.from({ length: config.workers }, (_, i) => ({ k: i + 1, worker: undefined, ready: false, lease: undefined }));
  const aggregator = new AggregatorRegistry();
  let started = false;
  let stopping = false;
  let seq = 0;
  const pending = new Map<number, (status: object) => void>();
  let startupFailed: ((err: Error) => void) | undefined;
  let allReady: (() => void) | undefined;

  function fork(slot: Slot): void {
    const worker = cluster.fork({ [WORKER_ENV]: String(slot.k), ...(slot.lease !== undefined && { [REPLACES_LEASE_ENV]: slot.lease }) });
    slot.worker = worker;
    slot.ready = false;
    worker.on('message', (msg: WorkerMessage) => {
      if (msg?.type === 'paas:ready') {
        slot.ready = true;
        if (!started && slots.every((s) => s.ready)) allReady?.();
      } else if (msg?.type === 'paas:lease') {
        slot.lease = msg.lease;
      } else if (msg?.type === 'paas:status') {
        pending.get(msg.seq)?.(msg.status);
      } else if (msg?.type === 'paas:routes') {
        pending.get(msg.seq)?.(msg.routes);
      }
    });
    // Channel errors not tied to a send (ask() handles its own) must not reach the primary's
    // uncaught-exception handler either.
    worker.on('error', (err) => log.warn({ worker: workerId(config.id, slot.k), err: err.message }, 'worker channel error'));
    worker.on('exit', (code, signal) => {
      slot.ready = false;
      slot.worker = undefined;
      if (stopping) return;
      if (!started) {
        startupFailed?.(new Error(`worker ${workerId(config.id, slot.k)} exited during start-up (code ${code}, signal ${signal})`));
        return;
      }
      log.error({ worker: workerId(config.id, slot.k), code, signal }, 'worker exited; starting it again');
      setTimeout(() => {
        if (!stopping) fork(slot);
      }, RESTART_DELAY_MS).unref();
    });
  }

  /**
   * One request to a worker over IPC, answered by the message with the same seq. A worker that
   * died a moment ago still reads as connected until the primary sees its channel close: the
   * message then fails to go, which answers for it instead of reaching the uncaught-exception
   * handler (which would take the admin listener down).
   */
  function ask(worker: Worker, message: (seq: number) => PrimaryMessage): Promise<{ answer: object } | { error: string }> {
    const n = ++seq;
    return new Promise((resolve) => {
      const settle = (result: { answer: object } | { error: string }) => {
        clearTimeout(timer);
        pending.delete(n);
        resolve(result);
      };
      const timer = setTimeout(() => settle({ error: `no answer within ${STATUS_TIMEOUT_MS} ms` }), STATUS_TIMEOUT_MS);
      pending.set(n, (answer) => settle({ answer }));
      worker.send(message(n), undefined, (err) => {
        if (err !== null) settle({ error: 'worker not running' });
      });
    });
  }

  async function askStatus(slot: Slot): Promise<object> {
    const worker = slot.worker;
    const result = worker === undefined || !worker.isConnected() ? { error: 'worker not running' } : await ask(worker, (n) => ({ type: 'paas:status', seq: n }));
    return 'answer' in result ? { ...result.answer, pid: worker!.process.pid } : { id: workerId(config.id, slot.k), ready: false, error: result.error };
  }

  /** Every worker holds the whole table: the first ready one lists the routes. */
  async function askRoutes(query: RoutesQuery): Promise<RoutesView | null> {
    const worker = slots.find((s) => s.ready && s.worker?.isConnected())?.worker;
    if (worker === undefined) return null;
    const result = await ask(worker, (n) => ({ type: 'paas:routes', seq: n, query }));
    return 'answer' in result ? (result.answer as RoutesView) : null;
  }

  const isReady = () => started && !stopping && slots.some((s) => s.ready);
  // Loaded here, not on import: main.ts imports this module in every mode, and a single router
  // starts its first list before it loads fastify (router.ts).
  const { createAdminServer } = await import('./listeners/admin.js');
  const admin = createAdminServer({
    metrics: { text: () => aggregator.clusterMetrics(), contentType: aggregator.contentType },
    isReady,
    routes: askRoutes,
    status: async () => {
      const workers = (await Promise.all(slots.map(askStatus))) as Array<{ revision?: string; etcd?: { connected?: boolean } }>;
      // What every worker has applied: the lowest revision among them.
      const revisions = workers.map((w) => (w.revision !== undefined ? BigInt(w.revision) : 0n));
      const revision = revisions.reduce((a, b) => (b < a ? b : a));
      return { id: config.id, ready: isReady(), revision: revision.toString(), etcd: { connected: workers.every((w) => w.etcd?.connected === true) }, workers };
    },
  });
  await admin.listen({ host: config.admin.host, port: config.admin.port });
  log.info({ admin: `${config.admin.host}:${config.admin.port}`, workers: config.workers }, 'admin listening; starting workers');

  await new Promise<void>((resolve, reject) => {
    allReady = resolve;
    startupFailed = reject;
    for (const slot of slots) fork(slot);
  }).catch(async (err: Error) => {
    stopping = true;
    for (const s of slots) s.worker?.process.kill('SIGKILL');
    await admin.close();
    throw err;
  });
  started = true;
  log.info({ listen: `${config.listen.host}:${config.listen.port}`, workers: config.workers }, 'router ready');

  async function stop(): Promise<number> {
    stopping = true;
    log.info({ workers: config.workers }, 'stopping: readyz now 503; stopping workers');
    const exits = slots.map(
      (s) =>
        new Promise<number>((resolve) => {
          const w = s.worker;
          if (w === undefined || w.isDead()) return resolve(0);
          w.once('exit', (code) => resolve(code ?? 1));
          w.process.kill('SIGTERM');
        }),
    );
    const codes = await Promise.all(exits);
    await admin.close();
    log.info({ codes }, 'stopped');
    // 130: a worker that got the terminal's Ctrl-C itself (the whole process group does) and stopped cleanly.
    return codes.every((c) => c === 0 || c === 130) ? 0 : 1;
  }

  return { stop };
}

