/** The admin listener: liveness, readiness, Prometheus metrics, the router's status and its routes. */
import fastify, { type FastifyInstance } from 'fastify';
import { routesText, type RoutesQuery, type RoutesView } from '../admin/routes-view.js';

export interface AdminOptions {
  /** Prometheus text exposition and its content type (one registry, or a cluster's aggregate). */
  metrics: { text: () => Promise<string>; contentType: string };
  isReady: () => boolean;
  status: () => object | Promise<object>;
  /** The routing table's routes (admin/routes-view.ts), or null when none can be read now. */
  routes: (query: RoutesQuery) => RoutesView | null | Promise<RoutesView | null>;
}

const MAX_LIMIT = 100_000;

/** `?host=`, `?app=`, `?limit=`: undefined for what is not given, a string for what is wrong. */
function routesQuery(q: Record<string, string | undefined>): RoutesQuery | string {
  const out: RoutesQuery = {};
  // A Host header's form is accepted too: any case, a port, a trailing dot.
  if (q.host) out.host = q.host.toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
  if (q.app) out.app = q.app;
  if (q.limit !== undefined) {
    const n = Number(q.limit);
    if (!/^\d+$/.test(q.limit) || n < 1 || n > MAX_LIMIT) return `limit: ${JSON.stringify(q.limit)} must be an integer from 1 to ${MAX_LIMIT}`;
    out.limit = n;
  }
  return out;
}

/** Plain text for `?format=text`, or an Accept header that asks for text/plain before JSON. */
function wantsText(format: string | undefined, accept: string | undefined): boolean {
  if (format !== undefined) return format === 'text';
  if (accept === undefined) return false;
  const text = accept.indexOf('text/plain');
  const json = accept.indexOf('application/json');
  return text >= 0 && (json < 0 || text < json);
}

export function createAdminServer(opts: AdminOptions): FastifyInstance {
  const app = fastify({ logger: false });
  app.get('/healthz', async (_req, reply) => reply.type('text/plain').send('ok'));
  app.get('/readyz', async (_req, reply) => {
    const ready = opts.isReady();
    return reply.code(ready ? 200 : 503).type('text/plain').send(ready ? 'ready' : 'not ready');
  });
  app.get('/status', async (_req, reply) => reply.send(await opts.status()));
  app.get('/routes', async (req, reply) => {
    const q = req.query as Record<string, string | undefined>;
    if (q.format !== undefined && q.format !== 'text' && q.format !== 'json') return reply.code(400).type('text/plain').send('format: must be one of text, json\n');
    const query = routesQuery(q);
    if (typeof query === 'string') return reply.code(400).type('text/plain').send(`${query}\n`);
    const view = await opts.routes(query);
    if (view === null) return reply.code(503).type('text/plain').send('no routing table to list yet\n');
    if (wantsText(q.format, req.headers.accept)) return reply.type('text/plain; charset=utf-8').send(routesText(view));
    return reply.send(view);
  });
  app.get('/metrics', async (_req, reply) => {
    const body = await opts.metrics.text();
    return reply.type(opts.metrics.contentType).send(body);
  });
  return app;
}
