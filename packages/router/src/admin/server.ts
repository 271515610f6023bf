/** The admin listener: liveness, readiness, Prometheus metrics and the router's status as JSON. */
import fastify, { type FastifyInstance } from 'fastify';
import type { RouterMetrics } from './metrics.js';

export interface AdminOptions {
  metrics: RouterMetrics;
  isReady: () => boolean;
  status: () => object;
}

export function createAdminServer(opts: AdminOptions): FastifyInstance {
  const app = fastify({ logger: false });
  app.get('/healthz', async (_req, reply) => reply.type('text/plain').send('ok'));
  app.get('/readyz', async (_req, reply) => {
    const ready = opts.isReady();
    return reply.code(ready ? 200 : 503).type('text/plain').send(ready ? 'ready' : 'not ready');
  });
  app.get('/status', async (_req, reply) => reply.send(opts.status()));
  app.get('/metrics', async (_req, reply) => {
    const body = await opts.metrics.registry.metrics();
    return reply.type(opts.metrics.registry.contentType).send(body);
  });
  return app;
}
