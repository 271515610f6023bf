/**
 * WebSocket upgrades in-process (no etcd): the traffic listener's byte tunnel against real `ws`
 * servers and clients. Covers what the e2e tests do not: failover before the 101, an instance
 * refusing the upgrade, in-flight counts, and shutdown (open tunnels end).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { RouterMetrics } from '../src/admin/metrics.js';
import { createProxyServer, type ProxyServer } from '../src/listeners/traffic.js';
import { RoutingTable } from '../src/table/routing-table.js';
import { waitFor } from '../../../test/harness/wait.js';

/** Each suite runs once per client HTTP/1.1 server (--client-parser). */
const CLIENT_PARSERS = ['native', 'node'] as const;
let clientParser: (typeof CLIENT_PARSERS)[number] = 'native';

const servers: Server[] = [];

/** A ws echo instance; `refuse` answers every upgrade 403 instead. */
async function wsInstance(opts: { refuse?: boolean } = {}): Promise<{ url: string; server: Server }> {
  const server = createServer();
  if (opts.refuse) {
    server.on('upgrade', (_req, socket) => socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 6\r\nconnection: close\r\n\r\nno way'));
  } else {
    const wss = new WebSocketServer({ server });
    wss.on('connection', (ws, req) => {
      ws.send(JSON.stringify({ port: (server.address() as AddressInfo).port, headers: req.headers }));
      ws.on('message', (data) => ws.send(data));
    });
  }
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  servers.push(server);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

async function deadUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return `http://127.0.0.1:${port}`;
}

async function router(table: RoutingTable): Promise<{ proxy: ProxyServer; port: number }> {
  const proxy = createProxyServer({
    getTable: () => table,
    metrics: new RouterMetrics(),
    log: { info: () => {}, warn: () => {} },
    connectTimeoutMs: 1000,
    upstreamTimeoutMs: 2000,
    clientKeepAliveTimeoutMs: 10_000,
    requestHeaderTimeoutMs: 10_000,
    keepAliveTimeoutMs: 4000,
    retryAfterSeconds: 3,
    maxAttempts: 3,
    accessLog: false,
    onDrained: () => {},
    clientParser,
  });
  await proxy.server.listen({ host: '127.0.0.1', port: 0 });
  return { proxy, port: (proxy.server.server.address() as AddressInfo).port };
}

interface Opened {
  ws: WebSocket;
  hello: { port: number; headers: Record<string, string> };
  requestId: string | undefined;
}

function open(port: number, host: string): Promise<Opened> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/live`, { headers: { host } });
    let requestId: string | undefined;
    ws.once('upgrade', (res) => (requestId = res.headers['x-request-id'] as string | undefined));
    ws.once('message', (data) => resolve({ ws, hello: JSON.parse(String(data)), requestId }));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`status ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

/** The answer to an upgrade that is not switched: status, headers, body. */
function refused(port: number, host: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/live`, { headers: { host } });
    ws.once('open', () => reject(new Error('upgraded')));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
  });
}

function echo(ws: WebSocket, text: string): Promise<string> {
  return new Promise((resolve) => {
    ws.once('message', (data) => resolve(String(data)));
    ws.send(text);
  });
}

afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

for (const parser of CLIENT_PARSERS) {
  describe(`--client-parser ${parser}`, () => {
    beforeAll(() => {
      clientParser = parser;
    });

    describe('WebSocket tunnel', () => {
      it('moves the upgrade to another instance when one refuses the connection, and counts it in flight while open', async () => {
        const live = await wsInstance();
        const table = new RoutingTable();
        table.setApp('ws', { routes: [{ host: 'ws.example' }] }, 1n);
        const dead = table.setInstance('ws', 'dead', { url: await deadUrl(), state: 'ready' });
        const good = table.setInstance('ws', 'good', { url: live.url, state: 'ready' });
        const { proxy, port } = await router(table);
        // Round-robin starts with either: two upgrades make sure one meets the dead instance first.
        const a = await open(port, 'ws.example');
        const b = await open(port, 'ws.example');
        expect([a.hello.port, b.hello.port]).toEqual([Number(new URL(live.url).port), Number(new URL(live.url).port)]);
        expect(a.requestId).toBe(a.hello.headers['x-request-id']);
        expect(a.hello.headers['x-forwarded-host']).toBe('ws.example');
        expect(await echo(a.ws, 'ping')).toBe('ping');
        expect(dead.consecutiveFailures).toBe(1);
        expect(good.inflight).toBe(2);
        expect(dead.inflight).toBe(0);
        a.ws.close();
        b.ws.close();
        await waitFor(() => good.inflight === 0);
        await proxy.close();
      });

      it('passes an instance refusing the upgrade on as it answered, with X-Request-Id', async () => {
        const no = await wsInstance({ refuse: true });
        const table = new RoutingTable();
        table.setApp('ws', { routes: [{ host: 'ws.example' }] }, 1n);
        const backend = table.setInstance('ws', 'no', { url: no.url, state: 'ready' });
        const { proxy, port } = await router(table);
        const answer = await refused(port, 'ws.example');
        expect(answer.status).toBe(403);
        expect(answer.body).toBe('no way');
        expect(answer.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
        await waitFor(() => backend.inflight === 0);
        await proxy.close();
      });

      it('on shutdown ends open WebSockets and close() resolves with nothing left in flight', async () => {
        const live = await wsInstance();
        const table = new RoutingTable();
        table.setApp('ws', { routes: [{ host: 'ws.example' }] }, 1n);
        const backend = table.setInstance('ws', 'live', { url: live.url, state: 'ready' });
        const { proxy, port } = await router(table);
        const { ws } = await open(port, 'ws.example');
        expect(backend.inflight).toBe(1);
        const ended = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
        await proxy.close();
        // The tunnel's sockets are closed: no close frame, as a TCP proxy would.
        expect(await ended).toBe(1006);
        expect(backend.inflight).toBe(0);
      });
    });
  });
}
