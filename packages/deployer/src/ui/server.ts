/**
 * The fleet page's HTTP server (node:http): GET / is the page, GET /fleet.json the current view,
 * GET /events a Server-Sent Events stream of views (the current one first, then each new one).
 * Every browser shares the one FleetSource. A browser that reads slower than views come gets only
 * the newest once it catches up, so a slow one holds one view in memory, not a queue.
 *
 * The page has no login: it binds only where --listen says, and answers only requests whose Host
 * is an IP address or localhost, so a web page elsewhere cannot read it through a DNS name
 * rebound to this address (DNS rebinding).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import type { FleetSnapshot, FleetSource } from './fleet-source.js';
import { PAGE_CSP, PAGE_HTML } from './page.js';

/** A comment line on idle streams, so a browser that went away is noticed and dropped. */
const HEARTBEAT_MS = 15_000;
/** How long a browser waits before reconnecting a broken stream. */
const RETRY_MS = 2_000;

export interface ListenAddress {
  host: string;
  port: number;
}

export interface FleetServer {
  /** http://HOST:PORT/ where the page is served. */
  url: string;
  close(): Promise<void>;
}

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

export async function startFleetServer(source: FleetSource, listen: ListenAddress): Promise<FleetServer> {
  const streams = new Set<ServerResponse>();
  const server = createServer((req, res) => handle(req, res));
  server.on('clientError', (_err, socket) => socket.destroy());

  function handle(req: IncomingMessage, res: ServerResponse): void {
    if (!allowedHost(req.headers.host)) return plain(res, 403, 'forbidden: the Host header must be an IP address or localhost\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return plain(res, 405, 'method not allowed\n');
    }
    const path = (req.url ?? '/').split('?')[0];
    switch (path) {
      case '/':
        res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/html; charset=utf-8', 'content-security-policy': PAGE_CSP });
        res.end(req.method === 'HEAD' ? undefined : PAGE_HTML);
        return;
      case '/fleet.json':
        res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'application/json' });
        res.end(req.method === 'HEAD' ? undefined : source.snapshot().json);
        return;
      case '/events':
        return openStream(req, res);
      case '/favicon.ico':
        res.writeHead(204, SECURITY_HEADERS).end();
        return;
      default:
        return plain(res, 404, 'not found\n');
    }
  }

  function openStream(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream', connection: 'keep-alive' });
    if (req.method === 'HEAD') return void res.end();
    streams.add(res);
    let waiting: FleetSnapshot | undefined;
    let blocked = false;
    const send = (s: FleetSnapshot) => {
      if (blocked) {
        waiting = s;
        return;
      }
      blocked = !res.write(`event: fleet\ndata: ${s.json}\n\n`);
    };
    res.on('drain', () => {
      blocked = false;
      const next = waiting;
      waiting = undefined;
      if (next) send(next);
    });
    res.write(`retry: ${RETRY_MS}\n\n`);
    send(source.snapshot());
    const unsubscribe = source.subscribe(send);
    const heartbeat = setInterval(() => {
      if (!blocked) res.write(': heartbeat\n\n');
    }, HEARTBEAT_MS);
    res.on('close', () => {
      clearInterval(heartbeat);
      unsubscribe();
      streams.delete(res);
    });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : listen.port;
  const host = listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  return {
    url: `http://${host}:${port}/`,
    close: async () => {
      for (const res of streams) res.end();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

function plain(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'text/plain; charset=utf-8' });
  res.end(text);
}

/** An IP literal or localhost, with or without a port. */
export function allowedHost(header: string | undefined): boolean {
  if (header === undefined) return false;
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:]+)(?::\d{1,5})?$/.exec(header);
  if (!m) return false;
  const name = m[1]!.replace(/^\[|\]$/g, '').toLowerCase();
  return name === 'localhost' || isIP(name) !== 0;
}
