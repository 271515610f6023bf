/**
 * Tiny HTTP instances for integration tests of the deployer: real servers on loopback that answer
 * the health check (switchable) and nothing else. The e2e tests use the sample-app processes.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface TestInstance {
  url: string;
  port: number;
  healthy: boolean;
  /** Health checks received. */
  checks: number;
  close(): Promise<void>;
}

export async function startInstance(opts: { healthy?: boolean; healthPath?: string } = {}): Promise<TestInstance> {
  const path = opts.healthPath ?? '/healthz';
  const inst = { healthy: opts.healthy ?? true, checks: 0 } as TestInstance;
  const server = http.createServer((req, res) => {
    if (req.url === path) {
      inst.checks++;
      res.writeHead(inst.healthy ? 200 : 503).end(inst.healthy ? 'ok' : 'unhealthy');
      return;
    }
    res.writeHead(200).end('hello');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  inst.port = port;
  inst.url = `http://127.0.0.1:${port}`;
  inst.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return inst;
}
