/**
 * Instances served over https, through a real router process, once per upstream client
 * (--upstream-client native and portable, as ROUTER_UPSTREAM_CLIENT): the client verifies the
 * instance's certificate (here from a private CA the router is told to trust with
 * NODE_EXTRA_CA_CERTS) against the instance's own address, not the client's Host, forwards
 * request and answer bodies over TLS, and keeps the connection. An instance with a self-signed
 * certificate fails traffic and its health check alike: both go through the same client and
 * TLS connector. A WebSocket upgrade reaches the https instance through the same connector.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { request } from 'undici';
import WebSocket, { WebSocketServer } from 'ws';
import { startRouter, type RouterProcess } from '../harness/processes.js';
import { runEtcdctl, uniquePrefix } from '../harness/etcd.js';

const ROUTER_BIN = new URL('../../packages/router/bin/paas-router.js', import.meta.url).pathname;
const run = promisify(execFile);
const endpoints = inject('etcdEndpoints');
const prefix = uniquePrefix('https-upstream');
let dir = '';
let server: Server | undefined;
let selfSigned: Server | undefined;
let selfSignedRequests = 0;
let tlsConnections = 0;

function openssl(args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'router-https-'));
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=router test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign', '-keyout', 'ca.key', '-out', 'ca.pem']);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'leaf.key', '-out', 'leaf.csr']);
  writeFileSync(join(dir, 'leaf.ext'), 'subjectAltName=IP:127.0.0.1\n');
  openssl(['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', 'leaf.ext', '-out', 'leaf.pem']);

  server = createServer({ key: readFileSync(join(dir, 'leaf.key')), cert: readFileSync(join(dir, 'leaf.pem')) }, (req, res) => {
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => res.end(JSON.stringify({ method: req.method, url: req.url, host: req.headers.host, proto: req.headers['x-forwarded-proto'], bytes })));
  });
  server.on('secureConnection', () => tlsConnections++);
  new WebSocketServer({ server }).on('connection', (ws, req) => {
    ws.send(JSON.stringify({ host: req.headers.host, proto: req.headers['x-forwarded-proto'] }));
    ws.on('message', (data) => ws.send(data));
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', 'self.key', '-out', 'self.pem']);
  selfSigned = createServer({ key: readFileSync(join(dir, 'self.key')), cert: readFileSync(join(dir, 'self.pem')) }, (_req, res) => {
    selfSignedRequests++;
    res.end('ok');
  });
  await new Promise<void>((r) => selfSigned!.listen(0, '127.0.0.1', r));
  const selfSignedUrl = `https://127.0.0.1:${(selfSigned.address() as AddressInfo).port}`;

  await runEtcdctl(endpoints, ['put', `${prefix}/apps/secure`, JSON.stringify({ routes: [{ host: 'secure.example' }] })]);
  await runEtcdctl(endpoints, ['put', `${prefix}/instances/secure/s1`, JSON.stringify({ url, state: 'ready' })]);
  await runEtcdctl(endpoints, ['put', `${prefix}/apps/untrusted`, JSON.stringify({ routes: [{ host: 'untrusted.example' }], healthCheck: { path: '/healthz', intervalMs: 200 } })]);
  await runEtcdctl(endpoints, ['put', `${prefix}/instances/untrusted/u1`, JSON.stringify({ url: selfSignedUrl, state: 'ready' })]);
});

afterAll(async () => {
  for (const s of [server, selfSigned]) {
    s?.closeAllConnections();
    s?.close();
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe.each(['native', 'portable'] as const)('an https instance, through the %s upstream client', (client) => {
  let router: RouterProcess | undefined;

  beforeAll(async () => {
    tlsConnections = 0;
    router = await startRouter({ etcdEndpoints: endpoints, prefix, id: `https-upstream-${client}`, env: { NODE_EXTRA_CA_CERTS: join(dir, 'ca.pem'), ROUTER_UPSTREAM_CLIENT: client } });
  });

  afterAll(async () => {
    await router?.proc.stop();
  });

  it('runs the client asked for, and says so in /status and /metrics', async () => {
    const status = (await (await request(`${router!.adminUrl}/status`)).body.json()) as { upstreamClient: string };
    expect(status.upstreamClient).toBe(client);
    const metrics = await (await request(`${router!.adminUrl}/metrics`)).body.text();
    expect(metrics).toContain(`router_upstream_client_info{client="${client}"} 1`);
  });

  it('is reached with its certificate verified, bodies both ways, one kept connection', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await request(`${router!.url}/get/${i}?q=1`, { headers: { host: 'secure.example' } });
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toEqual({ method: 'GET', url: `/get/${i}?q=1`, host: 'secure.example', proto: 'http', bytes: 0 });
    }
    const body = Buffer.alloc(256 * 1024, 'y');
    const post = await request(`${router!.url}/up`, { method: 'POST', headers: { host: 'secure.example' }, body });
    expect(await post.body.json()).toMatchObject({ method: 'POST', bytes: body.length });
    expect(tlsConnections).toBe(1);
  });

  it('tunnels a WebSocket upgrade to it over verified TLS', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${router!.port}/ws`, { headers: { host: 'secure.example' } });
    const messages: string[] = [];
    ws.on('message', (data) => {
      messages.push(String(data));
      if (messages.length === 1) ws.send('over tls');
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('error', reject);
      ws.on('message', () => messages.length === 2 && resolve());
    });
    ws.close();
    expect(JSON.parse(messages[0]!)).toEqual({ host: 'secure.example', proto: 'http' });
    expect(messages[1]).toBe('over tls');
  });

  it('fails a self-signed instance for traffic and for its health check alike', async () => {
    const line = await router!.proc.waitForLine((l) => l.includes('instance fails its health check'), { timeoutMs: 15_000 });
    expect(JSON.parse(line)).toMatchObject({ app: 'untrusted', instance: 'u1', reason: expect.stringMatching(/self.signed certificate/) });
    const res = await request(`${router!.url}/`, { headers: { host: 'untrusted.example' } });
    expect(res.statusCode).toBe(502);
    await res.body.dump();
    const failed = await router!.proc.waitForLine((l) => l.includes('"upstream failed"') && l.includes('untrusted'));
    expect(JSON.parse(failed)).toMatchObject({ instance: 'u1', reason: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
    expect(selfSignedRequests).toBe(0);
  });
});

describe('--upstream-client', () => {
  it('stops at once with one clear line on a bad value', async () => {
    const bad = await run('node', [ROUTER_BIN], { env: { ...process.env, ROUTER_UPSTREAM_CLIENT: 'fast' } }).catch((e: { code: number; stderr: string }) => e);
    expect((bad as { code: number }).code).toBe(2);
    expect((bad as { stderr: string }).stderr.trim()).toBe('paas-router: ROUTER_UPSTREAM_CLIENT: "fast" is not one of auto, native, portable');
  });
});
