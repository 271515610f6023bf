/** The admin listener: liveness, readiness, Prometheus metrics and the router's status as JSON. */
import fastify, { type FastifyInstance } from 'fastify';

export interface AdminOptions {
  /** Prometheus text exposition and its content type (one registry, or a cluster's aggregate). */
  metrics: { text: () => Promise<string>; contentType: string };
  isReady: () => boolean;
  status: () => object | Promise<object>;
}

export function createAdminServer(opts: AdminOptions): FastifyInstance {
  const app = fastify({ logger: false });
  app.get('/healthz', async (_req, reply) => reply.type('text/plain').send('ok'));
  app.get('/readyz', async (_req, reply) => {
    const ready = opts.isReady();
    return reply.code(ready ? 200 : 503).type('text/plain').send(ready ? 'ready' : 'not ready');
  });
  app.get('/status', async (_req, reply) => reply.send(await opts.status()));
  app.get('/metrics', async (_req, reply) => {
    const body = await opts.metrics.text();
    return reply.type(opts.metrics.contentType).send(body);
  });
  return app;
}
