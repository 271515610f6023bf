/**
 * The contract's answers, one table for every request kind: each row is a case (no route, no
 * ready instance, maintenance, every instance refusing, an instance too slow, a forwarded
 * request), each column a way to send a request (plain HTTP with undici, a WebSocket upgrade with
 * ws) through a router running one of the two upstream clients (--upstream-client native and
 * portable), or the native client behind Node's HTTP/1.1 server (--client-parser node; the
 * others run the native one), on the plain listener and on the TLS one (HTTPS with HTTP/1.1, HTTP/2, wss; a
 * `certs/` record for *.example.com). Transports still to come (tunnels) add a column to `transports`.
 * Real etcd, a real router process, real sample-app processes.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { IncomingHttpHeaders } from 'node:http';
import { Agent, request } from 'undici';
import WebSocket from 'ws';
import { startRouter, startSampleApp, type RouterProcess, type SampleApp } from '../harness/processes.js';
import { runEtcdctl as etcdctl, uniquePrefix } from '../harness/etcd.js';
import { createCa, type TestCa } from '../harness/pki.js';
import { freePort } from '../harness/ports.js';
import { waitFor } from '../harness/wait.js';

const endpoints = inject('etcdEndpoints');
const prefix = uniquePrefix('answers');
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
type ClientKind = 'native' | 'portable' | 'node-parser';
const routers = {} as Record<ClientKind, RouterProcess>;
const tlsPorts = {} as Record<ClientKind, number>;
let stopped: SampleApp;
let ca: TestCa;
/** HTTPS clients trusting the test CA (undici sends the Host as the server name). */
let https1: Agent;
let https2: Agent;

/** What a client got, and for a forwarded request what the instance saw. */
interface Outcome {
  status: number;
  headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>;
  body: string;
  /** The request headers the instance received (sample-app /echo, or its WebSocket hello). */
  seen?: Record<string, string>;
  /** The WebSocket echoed a message through the tunnel. */
  echoed?: string;
}

type Send = (host: string, path: string, headers: Record<string, string>) => Promise<Outcome>;

async function viaHttp(router: RouterProcess, host: string, path: string, headers: Record<string, string>): Promise<Outcome> {
  return viaUndici(router.url, undefined, host, path, headers);
}

async function viaUndici(origin: string, dispatcher: Agent | undefined, host: string, path: string, headers: Record<string, string>): Promise<Outcome> {
  const res = await request(`${origin}${path}`, { headers: { host, ...headers }, dispatcher });
  const body = await res.body.text();
  const seen = res.statusCode === 200 ? (JSON.parse(body) as { headers: Record<string, string> }).headers : undefined;
  return { status: res.statusCode, headers: res.headers, body, seen };
}

function viaWebSocket(router: RouterProcess, host: string, path: string, headers: Record<string, string>, tlsPort?: number): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    // ws passes servername on to tls.connect (its types do not list it).
    const options: WebSocket.ClientOptions & { servername?: string } = tlsPort === undefined ? { headers: { host, ...headers } } : { headers: { host, ...headers }, ca: ca.certPem, servername: host };
    const ws = new WebSocket(tlsPort === undefined ? `ws://127.0.0.1:${router.port}${path}` : `wss://127.0.0.1:${tlsPort}${path}`, options);
    let upgraded: IncomingHttpHeaders = {};
    ws.once('upgrade', (res) => (upgraded = res.headers));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      res.on('error', reject);
    });
    ws.once('error', reject);
    // The sample app greets with the headers it received, then echoes.
    ws.once('message', (hello) => {
      const seen = (JSON.parse(String(hello)) as { headers: Record<string, string> }).headers;
      ws.once('message', (echo) => {
        resolve({ status: 101, headers: upgraded, body: '', seen, echoed: String(echo) });
        ws.close();
      });
      ws.send('through the tunnel');
    });
  });
}

const transports: Record<string, Send> = {};
for (const client of ['native', 'portable', 'node-parser'] as const) {
  const label = client === 'node-parser' ? "native client, Node's HTTP/1.1 server" : `${client} client`;
  transports[`http, ${label}`] = (host, path, headers) => viaHttp(routers[client], host, path, headers);
  transports[`websocket, ${label}`] = (host, path, headers) => viaWebSocket(routers[client], host, path, headers);
  transports[`https http/1.1, ${label}`] = (host, path, headers) => viaUndici(`https://127.0.0.1:${tlsPorts[client]}`, https1, host, path, headers);
  // HTTP/2 has no connection-specific headers: a client cannot send Proxy-Connection at all.
  transports[`https h2, ${label}`] = (host, path, { 'proxy-connection': _, ...headers }) => viaUndici(`https://127.0.0.1:${tlsPorts[client]}`, https2, host, path, headers);
  transports[`wss, ${label}`] = (host, path, headers) => viaWebSocket(routers[client], host, path, headers, tlsPorts[client]);
}

/** One of the router's own answers: exact body, text, nosniff, the request's id. */
function ownAnswer(out: Outcome, status: number, body: string, id: string): void {
  expect(out.status).toBe(status);
  expect(out.body).toBe(body);
  expect(out.headers['content-type']).toBe('text/plain; charset=utf-8');
  expect(out.headers['x-content-type-options']).toBe('nosniff');
  expect(out.headers['x-request-id']).toBe(id);
}

interface Case {
  name: string;
  host: string;
  path?: string;
  headers?: Record<string, string>;
  check(out: Outcome, kind: string): void;
}

const cases: Case[] = [
  {
    name: 'no route: 404 Not Found',
    host: 'nowhere.example.com',
    headers: { 'x-request-id': 'row-404' },
    check: (out) => ownAnswer(out, 404, 'Not Found', 'row-404'),
  },
  {
    name: 'no ready instance: 503 Service Unavailable with Retry-After',
    host: 'starting.example.com',
    headers: { 'x-request-id': 'row-503' },
    check: (out) => {
      ownAnswer(out, 503, 'Service Unavailable', 'row-503');
      expect(out.headers['retry-after']).toBe('7');
    },
  },
  {
    name: 'maintenance override: its status and message',
    host: 'maintenance.example.com',
    headers: { 'x-request-id': 'row-maintenance' },
    check: (out) => {
      ownAnswer(out, 423, 'Back at 14:00 — désolé', 'row-maintenance');
      expect(out.headers['retry-after']).toBeUndefined();
    },
  },
  {
    name: 'every instance refuses the connection: 502 Bad Gateway',
    host: 'refused.example.com',
    headers: { 'x-request-id': 'row-502' },
    check: (out) => ownAnswer(out, 502, 'Bad Gateway', 'row-502'),
  },
  {
    name: 'the instance does not answer in time: 504 Gateway Timeout',
    host: 'frozen.example.com',
    headers: { 'x-request-id': 'row-504' },
    check: (out) => ownAnswer(out, 504, 'Gateway Timeout', 'row-504'),
  },
  {
    name: 'an insane X-Request-Id is replaced on the answer',
    host: 'nowhere.example.com',
    headers: { 'x-request-id': 'not a sane id' },
    check: (out) => {
      expect(out.status).toBe(404);
      expect(out.headers['x-request-id']).toMatch(UUID);
    },
  },
  {
    name: 'forwarded: X-Forwarded-*, X-Request-Id and the client Host reach the instance, hop-by-hop headers do not',
    host: 'ok.example.com',
    path: '/echo',
    headers: { 'x-request-id': 'row-forwarded', 'x-forwarded-for': '203.0.113.9', te: 'trailers', 'proxy-connection': 'keep-alive', 'proxy-authorization': 'Basic eDp5', cookie: 'session=42' },
    check: (out, kind) => {
      const websocket = kind.startsWith('websocket') || kind.startsWith('wss');
      const overTls = kind.startsWith('https') || kind.startsWith('wss');
      expect(out.status).toBe(websocket ? 101 : 200);
      expect(out.headers['x-request-id']).toBe('row-forwarded');
      expect(out.headers['x-content-type-options']).toBeUndefined();
      const seen = out.seen!;
      expect(seen['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1');
      expect(seen['x-forwarded-proto']).toBe(overTls ? 'https' : 'http');
      expect(seen['x-forwarded-port']).toBe(overTls ? String(tlsPorts[kind.endsWith('native client') ? 'native' : kind.endsWith('portable client') ? 'portable' : 'node-parser']) : undefined);
      expect(seen['x-forwarded-host']).toBe('ok.example.com');
      expect(seen['x-request-id']).toBe('row-forwarded');
      expect(seen.host).toBe('ok.example.com');
      if (kind.startsWith('https h2')) expect(out.headers.connection).toBeUndefined();
      if (kind.startsWith('https http/1.1')) expect(out.headers.connection).toBe('keep-alive');
      expect(seen.cookie).toBe('session=42');
      expect(seen.te).toBeUndefined();
      expect(seen['proxy-connection']).toBeUndefined();
      expect(seen['proxy-authorization']).toBeUndefined();
      if (websocket) expect(out.echoed).toBe('through the tunnel');
    },
  },
  {
    name: 'forwarded: a new X-Request-Id is the same on the answer and at the instance',
    host: 'ok.example.com',
    path: '/echo',
    check: (out) => {
      expect(out.headers['x-request-id']).toMatch(UUID);
      expect(out.seen!['x-request-id']).toBe(out.headers['x-request-id']);
    },
  },
];

async function putJson(key: string, value: unknown): Promise<void> {
  await etcdctl(endpoints, ['put', key, JSON.stringify(value)]);
}

beforeAll(async () => {
  ca = await createCa();
  const wildcard = await ca.issue({ dns: ['*.example.com'] });
  await putJson(`${prefix}/certs/example-wildcard`, { cert: wildcard.certPem, key: wildcard.keyPem });
  https1 = new Agent({ allowH2: false, connect: { ca: ca.certPem } });
  https2 = new Agent({ allowH2: true, connect: { ca: ca.certPem } });
  const ok = await startSampleApp({ app: 'ok', name: 'ok-1' });
  stopped = await startSampleApp({ app: 'refused', name: 'gone-1' });
  const frozen = await startSampleApp({ app: 'frozen', name: 'frozen-1' });
  await putJson(`${prefix}/apps/ok`, { routes: [{ host: 'ok.example.com' }] });
  await putJson(`${prefix}/instances/ok/ok-1`, { url: ok.url, state: 'ready' });
  await putJson(`${prefix}/apps/starting`, { routes: [{ host: 'starting.example.com' }] });
  await putJson(`${prefix}/instances/starting/s1`, { url: ok.url, state: 'starting' });
  await putJson(`${prefix}/overrides/maintenance.example.com`, { maintenance: { status: 423, message: 'Back at 14:00 — désolé' } });
  await putJson(`${prefix}/apps/refused`, { routes: [{ host: 'refused.example.com' }] });
  await putJson(`${prefix}/instances/refused/gone-1`, { url: stopped.url, state: 'ready' });
  await putJson(`${prefix}/apps/frozen`, { routes: [{ host: 'frozen.example.com' }] });
  await putJson(`${prefix}/instances/frozen/frozen-1`, { url: frozen.url, state: 'ready' });
  // Its port refuses connections from now on.
  await stopped.proc.stop();
  // A stopped process: the kernel still accepts the connection, nothing ever answers.
  frozen.proc.kill('SIGSTOP');
  for (const client of ['native', 'portable', 'node-parser'] as const) {
    tlsPorts[client] = await freePort();
    const kind = client === 'node-parser' ? ['--upstream-client', 'native', '--client-parser', 'node'] : ['--upstream-client', client];
    const args = ['--upstream-timeout', '1s', '--retry-after', '7', ...kind, '--listen-tls', `127.0.0.1:${tlsPorts[client]}`];
    const router = await startRouter({ etcdEndpoints: endpoints, prefix, id: `answers-${client}`, extraArgs: args });
    routers[client] = router;
    await waitFor(async () => (await viaHttp(router, 'ok.example.com', '/', {})).status === 200, { timeoutMs: 10_000, message: `router ${client} serving ok.example.com` });
    const status = (await (await request(`${router.adminUrl}/status`)).body.json()) as { upstreamClient: string; clientParser: string };
    expect(status.upstreamClient).toBe(client === 'node-parser' ? 'native' : client);
    expect(status.clientParser).toBe(client === 'node-parser' ? 'node' : 'native');
  }
});

afterAll(async () => {
  await Promise.all([https1?.close(), https2?.close()]);
  await Promise.all(Object.values(routers).map((r) => r.proc.stop()));
});

describe.each(Object.keys(transports))('%s', (kind) => {
  it.each(cases)('$name', async (c) => {
    const out = await transports[kind]!(c.host, c.path ?? '/', c.headers ?? {});
    c.check(out, kind);
  });
});
