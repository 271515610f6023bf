/**
 * An instance served over https, through a real router process: the router's own upstream client
 * verifies the instance's certificate (here from a private CA the router is told to trust with
 * NODE_EXTRA_CA_CERTS), forwards request and answer bodies over TLS, and keeps the connection.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { request } from 'undici';
import { startRouter, type RouterProcess } from '../harness/processes.js';
import { runEtcdctl, uniquePrefix } from '../harness/etcd.js';

const endpoints = inject('etcdEndpoints');
const prefix = uniquePrefix('https-upstream');
let dir = '';
let server: Server | undefined;
let router: RouterProcess | undefined;
let tlsConnections = 0;

function openssl(args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const available = hasOpenssl();

beforeAll(async () => {
  if (!available) return;
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
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  await runEtcdctl(endpoints, ['put', `${prefix}/apps/secure`, JSON.stringify({ routes: [{ host: 'secure.example' }] })]);
  await runEtcdctl(endpoints, ['put', `${prefix}/instances/secure/s1`, JSON.stringify({ url, state: 'ready' })]);
  router = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'https-upstream-1', env: { NODE_EXTRA_CA_CERTS: join(dir, 'ca.pem') } });
});

afterAll(async () => {
  await router?.proc.stop();
  server?.closeAllConnections();
  server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!available)('an https instance', () => {
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
});
