/**
 * The TLS listener end to end: certificates from `certs/<name>` records in a real etcd, a real
 * router process with --listen-tls, sample-app processes behind it, and real clients: openssl
 * s_client (which certificate is served), curl --http2, undici (HTTP/1.1 and, allowH2, HTTP/2)
 * and ws over wss. Certificates come from a private CA made with openssl (test/harness/pki.ts).
 */
import { execFile } from 'node:child_process';
import { connect as h2connect, constants as h2constants } from 'node:http2';
import { createConnection } from 'node:net';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { X509Certificate } from 'node:crypto';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Agent, Client, request } from 'undici';
import WebSocket from 'ws';
import { createCa, type IssuedCert, type TestCa } from '../harness/pki.js';
import { freePort } from '../harness/ports.js';
import { CLIENT_PARSERS, startRouter, startSampleApp, type ClientParser, type RouterProcess } from '../harness/processes.js';
import { runEtcdctl as etcdctl, uniquePrefix } from '../harness/etcd.js';
import { heldAt, metricValue } from '../harness/probes.js';
import { requestLanes, runLanes } from '../harness/random-requests.js';
import { waitFor } from '../harness/wait.js';

const run = promisify(execFile);
const endpoints = inject('etcdEndpoints');
const prefix = uniquePrefix('tls');

let ca: TestCa;
let mangoUrl: string;
let withDefault: { router: RouterProcess; tlsPort: number };
let noDefault: { router: RouterProcess; tlsPort: number };
const issued: Record<string, IssuedCert> = {};

async function putJson(key: string, value: unknown): Promise<void> {
  await etcdctl(endpoints, ['put', key, JSON.stringify(value)]);
}

async function putCert(name: string, cert: IssuedCert): Promise<void> {
  await putJson(`${prefix}/certs/${name}`, { cert: cert.certPem, key: cert.keyPem });
}

/** The --client-parser of the suite running (each runs once per parser). */
let parser: ClientParser = 'native';

async function startTlsRouter(id: string, extra: string[]): Promise<{ router: RouterProcess; tlsPort: number }> {
  const tlsPort = await freePort();
  const router = await startRouter({ etcdEndpoints: endpoints, prefix, id: `${id}-${parser}`, extraArgs: ['--client-parser', parser, '--listen-tls', `127.0.0.1:${tlsPort}`, ...extra] });
  return { router, tlsPort };
}

/** The leaf a TLS handshake with `servername` (none: no SNI) is served, or the handshake's error. */
function servedLeaf(port: number, servername: string | undefined): Promise<X509Certificate | Error> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: servername ?? '', ca: ca.certPem, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    socket.once('secureConnect', () => {
      const raw = socket.getPeerX509Certificate();
      socket.destroy();
      resolve(raw ?? new Error('no certificate'));
    });
    socket.once('error', (err) => resolve(err));
  });
}

/** `openssl s_client` output for a handshake (`-servername`, or -noservername). */
async function sClient(port: number, servername: string | undefined): Promise<{ ok: boolean; out: string }> {
  const args = ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', ca.certFile, '-verify_return_error', '-brief'];
  args.push(...(servername === undefined ? ['-noservername'] : ['-servername', servername]));
  const child = run('openssl', args, { timeout: 10_000 });
  child.child.stdin?.end();
  try {
    const { stdout, stderr } = await child;
    return { ok: true, out: stdout + stderr };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return { ok: false, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** curl with the CA, `--resolve` so SNI and :authority are the host's. */
async function curl(port: number, host: string, path: string, extra: string[] = []): Promise<{ head: string; body: string }> {
  const { stdout } = await run('curl', ['-sS', '--cacert', ca.certFile, '--resolve', `${host}:${port}:127.0.0.1`, '-D', '-', ...extra, `https://${host}:${port}${path}`], { timeout: 10_000 });
  const cut = stdout.indexOf('\r\n\r\n');
  return { head: stdout.slice(0, cut), body: stdout.slice(cut + 4) };
}

beforeAll(async () => {
  ca = await createCa();
  // One at a time: `openssl ca` keeps its serial and index in files.
  const www = await ca.issue({ dns: ['www.mango.com'] });
  const apple = await ca.issue({ dns: ['*.apple.com'], keyType: 'rsa' });
  const fallback = await ca.issue({ dns: ['fallback.example.net'] });
  const secure = await ca.issue({ dns: ['secure.example.com'] });
  const other = await ca.issue({ dns: ['other.mango.com'] });
  Object.assign(issued, { www, apple, fallback, secure, other });
  const mango = await startSampleApp({ app: 'mango', name: 'mango-1' });
  mangoUrl = mango.url;
  const appleApp = await startSampleApp({ app: 'apple', name: 'apple-1' });
  await putJson(`${prefix}/apps/mango`, { routes: [{ host: 'www.mango.com' }, { host: 'other.mango.com' }], tls: { hsts: 'max-age=31536000' } });
  await putJson(`${prefix}/instances/mango/m1`, { url: mango.url, state: 'ready' });
  await putJson(`${prefix}/apps/apple`, { routes: [{ host: '*.apple.com' }] });
  await putJson(`${prefix}/instances/apple/a1`, { url: appleApp.url, state: 'ready' });
  await putJson(`${prefix}/apps/secure`, { routes: [{ host: 'secure.example.com' }], tls: { redirect: true, hsts: 'max-age=600; includeSubDomains' } });
  await putJson(`${prefix}/instances/secure/s1`, { url: mango.url, state: 'ready' });
  await putCert('www.mango.com', www);
  await putCert('apple-wildcard', apple);
  await putCert('fallback', fallback);
  await putCert('secure.example.com', secure);
  await putCert('other.mango.com', other);
});

for (const each of CLIENT_PARSERS) {
  describe(`--client-parser ${each}`, () => {
    beforeAll(async () => {
      parser = each;
      withDefault = await startTlsRouter('tls-default', ['--default-cert', 'fallback', '--public-https-port', '8443']);
      noDefault = await startTlsRouter('tls-strict', []);
    });

    afterAll(async () => {
      await Promise.all([withDefault?.router.proc.stop(), noDefault?.router.proc.stop()]);
    });

    describe('certificate selection by SNI', () => {
      it('serves the exact name (ECDSA) and the wildcard (RSA) on one listener, as openssl s_client shows', async () => {
        const exact = await sClient(noDefault.tlsPort, 'www.mango.com');
        expect(exact.ok, exact.out).toBe(true);
        expect(exact.out).toMatch(/Peer certificate: CN\s*=\s*www\.mango\.com/);
        expect(exact.out).toMatch(/Verification: OK/);
        expect(exact.out).toMatch(/Signature type: ECDSA/i);
        const wildcard = await sClient(noDefault.tlsPort, 'a.apple.com');
        expect(wildcard.ok, wildcard.out).toBe(true);
        expect(wildcard.out).toMatch(/Peer certificate: CN\s*=\s*\*\.apple\.com/);
        expect(wildcard.out).toMatch(/Signature type: RSA/i);
        // One label only: a.b.apple.com is not covered, and there is no default certificate.
        const deep = await sClient(noDefault.tlsPort, 'a.b.apple.com');
        expect(deep.ok).toBe(false);
      });

      it('serves --default-cert for an unknown name; without it the handshake fails', async () => {
        const leaf = await servedLeaf(withDefault.tlsPort, 'unknown.example.org');
        expect(leaf).toBeInstanceOf(X509Certificate);
        expect((leaf as X509Certificate).subjectAltName).toBe('DNS:fallback.example.net');
        // A client that sends no server name gets the default certificate too.
        const noName = await sClient(withDefault.tlsPort, undefined);
        expect(noName.ok, noName.out).toBe(true);
        expect(noName.out).toMatch(/Peer certificate: CN\s*=\s*fallback\.example\.net/);
        const refused = await sClient(noDefault.tlsPort, 'unknown.example.org');
        expect(refused.ok).toBe(false);
        expect(refused.out).toMatch(/alert/i);
        const noSni = await sClient(noDefault.tlsPort, undefined);
        expect(noSni.ok).toBe(false);
      });

      it('counts handshakes by result in /metrics and shows the listener in /status', async () => {
        await servedLeaf(noDefault.tlsPort, 'www.mango.com');
        await servedLeaf(noDefault.tlsPort, 'nothing.example.org');
        const metrics = await (await request(`${noDefault.router.adminUrl}/metrics`)).body.text();
        expect(Number(/router_tls_handshakes_total\{result="ok"\} (\d+)/.exec(metrics)?.[1])).toBeGreaterThan(0);
        expect(Number(/router_tls_handshakes_total\{result="unknown_name"\} (\d+)/.exec(metrics)?.[1])).toBeGreaterThan(0);
        const status = (await (await request(`${noDefault.router.adminUrl}/status`)).body.json()) as { tls: { listen: string; contexts: number; certificates: number } };
        expect(status.tls.listen).toBe(`127.0.0.1:${noDefault.tlsPort}`);
        expect(status.tls.certificates).toBe(5);
        expect(status.tls.contexts).toBeGreaterThan(0);
      });
    });

    describe('handshake time', () => {
      it('closes a connection that sends nothing after --request-header-timeout, with and without --default-cert', async () => {
        const routers = await Promise.all([
          startTlsRouter('tls-quick', ['--request-header-timeout', '1s']),
          startTlsRouter('tls-quick-default', ['--request-header-timeout', '1s', '--default-cert', 'fallback']),
        ]);
        try {
          const held = await Promise.all(
            routers.map(
              ({ tlsPort }) =>
                new Promise<number>((resolve, reject) => {
                  const socket = createConnection({ host: '127.0.0.1', port: tlsPort });
                  let opened = 0;
                  socket.once('connect', () => (opened = performance.now()));
                  socket.once('close', () => resolve(performance.now() - opened));
                  socket.once('error', reject);
                  socket.resume();
                }),
            ),
          );
          // Closed by the router's timer, not Node's 120 s handshake timeout.
          for (const ms of held) {
            expect(ms).toBeGreaterThan(900);
            expect(ms).toBeLessThan(8000);
          }
        } finally {
          await Promise.all(routers.map(({ router }) => router.proc.stop()));
        }
      });
    });

    describe('requests over TLS', () => {
      it('answers an HTTP/2 Expect: 100-continue with 100 before the body, another expectation with 417, and HEAD with the head alone', async () => {
        const session = h2connect(`https://127.0.0.1:${noDefault.tlsPort}`, { ca: ca.certPem, servername: 'www.mango.com' });
        type Answer = { status: number; continued: boolean; body: string };
        const ask = (headers: Record<string, string>, body?: string) =>
          new Promise<Answer>((resolve, reject) => {
            const stream = session.request({ ':authority': 'www.mango.com', ...headers }, { endStream: body === undefined });
            const got: Answer = { status: 0, continued: false, body: '' };
            stream.once('continue', () => {
              got.continued = true;
              stream.end(body);
            });
            stream.once('response', (h) => (got.status = Number(h[':status'])));
            stream.setEncoding('utf8');
            stream.on('data', (d: string) => (got.body += d));
            stream.once('end', () => resolve(got));
            stream.once('error', reject);
          });
        try {
          const continued = await ask({ ':method': 'POST', ':path': '/echo', expect: '100-continue', 'content-length': '5' }, 'hello');
          expect(continued.continued).toBe(true);
          expect(continued.status).toBe(200);
          expect((JSON.parse(continued.body) as { body: string }).body).toBe('hello');
          const refused = await ask({ ':method': 'GET', ':path': '/', expect: 'something-else' });
          expect(refused.status).toBe(417);
          const head = await ask({ ':method': 'HEAD', ':path': '/echo' });
          expect(head.status).toBe(200);
          expect(head.body).toBe('');
        } finally {
          session.close();
        }
      });


      it('answers HTTP/2 (curl --http2) through an HTTP/1.1 instance, with X-Forwarded-Proto/Port and the app\'s HSTS', async () => {
        const { head, body } = await curl(noDefault.tlsPort, 'www.mango.com', '/echo', ['--http2']);
        expect(head).toMatch(/^HTTP\/2 200/);
        expect(head).toMatch(/strict-transport-security: max-age=31536000/);
        expect(head).not.toMatch(/^(connection|keep-alive|transfer-encoding):/im);
        const seen = (JSON.parse(body) as { headers: Record<string, string> }).headers;
        expect(seen['x-forwarded-proto']).toBe('https');
        expect(seen['x-forwarded-port']).toBe(String(noDefault.tlsPort));
        expect(seen.host).toBe(`www.mango.com:${noDefault.tlsPort}`);
        expect(seen[':authority']).toBeUndefined();
      });

      it('answers HTTP/1.1 over TLS with the same pipeline', async () => {
        const { head, body } = await curl(noDefault.tlsPort, 'www.mango.com', '/echo', ['--http1.1']);
        expect(head).toMatch(/^HTTP\/1\.1 200/);
        expect(head).toMatch(/strict-transport-security: max-age=31536000/i);
        expect((JSON.parse(body) as { headers: Record<string, string> }).headers['x-forwarded-proto']).toBe('https');
      });

      it('answers 421 to a request for a host the connection\'s certificate does not cover', async () => {
        const h2 = await curl(noDefault.tlsPort, 'www.mango.com', '/', ['--http2', '-H', 'Host: a.apple.com']);
        expect(h2.head).toMatch(/^HTTP\/2 421/);
        expect(h2.body).toBe('Misdirected Request');
        const h1 = await curl(noDefault.tlsPort, 'www.mango.com', '/', ['--http1.1', '-H', 'Host: other.mango.com']);
        expect(h1.head).toMatch(/^HTTP\/1\.1 421/);
        // The default certificate covers only its own names.
        // (A raw TLS socket: undici would send the Host as the server name.)
        const fallback = await new Promise<string>((resolve, reject) => {
          const socket = tlsConnect({ host: '127.0.0.1', port: withDefault.tlsPort, servername: 'unknown.example.org', ca: ca.certPem, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
          let text = '';
          socket.once('secureConnect', () => socket.write('GET / HTTP/1.1\r\nHost: www.mango.com\r\nConnection: close\r\n\r\n'));
          socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
          socket.once('end', () => resolve(text));
          socket.once('error', reject);
        });
        expect(fallback).toMatch(/^HTTP\/1\.1 421 Misdirected Request\r\n/);
      });

      it('streams bodies both ways over HTTP/2 (undici allowH2) to an HTTP/1.1 instance, and joins split cookies', async () => {
        const client = new Client(`https://127.0.0.1:${noDefault.tlsPort}`, { allowH2: true, connect: { ca: ca.certPem, servername: 'www.mango.com' } });
        try {
          const chunk = 'x'.repeat(16 * 1024);
          async function* body() {
            for (let i = 0; i < 64; i++) yield chunk;
          }
          const res = await client.request({ path: '/echo', method: 'POST', body: Readable.from(body()), headers: { host: 'www.mango.com', cookie: ['a=1', 'b=2'] } });
          expect(res.statusCode).toBe(200);
          let received = 0;
          let text = '';
          for await (const part of res.body) {
            received += (part as Buffer).length;
            text += String(part);
          }
          expect(received).toBeGreaterThan(64 * chunk.length);
          const echoed = JSON.parse(text) as { body: string; headers: Record<string, string> };
          expect(echoed.body.length).toBe(64 * chunk.length);
          expect(echoed.headers['transfer-encoding']).toBe('chunked');
          expect(echoed.headers.cookie).toBe('a=1; b=2');
        } finally {
          await client.close();
        }
      });

      it('answers random request sequences over TLS whole, with HTTP/2 (streams multiplexed on one connection per router) and with HTTP/1.1: bodies of every size, instances that pause before reading or close their connections', async () => {
        // test/harness/random-requests.ts; HTTP/1.1 over TLS is read from the TLS socket, not the TCP handle.
        const urls = [`https://127.0.0.1:${noDefault.tlsPort}`, `https://127.0.0.1:${withDefault.tlsPort}`];
        for (const allowH2 of [true, false]) {
          const agent = new Agent({ allowH2, connect: { ca: ca.certPem, servername: 'www.mango.com' }, ...(allowH2 ? { connections: 1, pipelining: 10 } : {}) });
          try {
            await fc.assert(
              fc.asyncProperty(requestLanes(urls.length), async (lanes) => {
                expect(await runLanes(lanes, (i) => urls[i]!, 'www.mango.com', agent), allowH2 ? 'HTTP/2' : 'HTTP/1.1').toEqual([]);
              }),
              { numRuns: 30, seed: 20261130, endOnFailure: true },
            );
          } finally {
            await agent.close();
          }
        }
      }, 120_000);

      it('frees the request at the instance when an HTTP/2 client resets its stream before the answer', async () => {
        const id = `h2-reset-${parser}`;
        const session = h2connect(`https://127.0.0.1:${noDefault.tlsPort}`, { ca: ca.certPem, servername: 'www.mango.com' });
        try {
          const st = session.request({ ':path': `/hold?id=${id}`, ':authority': 'www.mango.com' });
          st.on('error', () => undefined);
          await waitFor(async () => (await heldAt(mangoUrl, id)) === 1, { timeoutMs: 10_000, message: 'the request held at the instance' });
          // Node marks a stream reset by its client as finished: the router must not take that for an answer sent.
          st.close(h2constants.NGHTTP2_CANCEL);
          await waitFor(async () => (await heldAt(mangoUrl, id)) === 0, { timeoutMs: 10_000, message: 'the instance to see the request go' });
        } finally {
          session.close();
        }
      });

      it('leaves nothing behind after HTTP/2 streams reset at random points: no request in flight, none held at the instance', async () => {
        const held = `h2-left-${parser}`;
        // A stream: its request, the share of its body sent before the reset (1: all of it, and
        // the reset comes after `readBytes` of the answer, or its end).
        const stream = fc.record({
          path: fc.constantFrom('/bytes?n=3000000', '/slow?ms=200', `/hold?id=${held}`, '/count', '/count?pause=300', '/count?close'),
          body: fc.integer({ min: 0, max: 300_000 }),
          cutAt: fc.oneof(fc.constant(1), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true })),
          readBytes: fc.integer({ min: 0, max: 200_000 }),
        });
        const session = h2connect(`https://127.0.0.1:${noDefault.tlsPort}`, { ca: ca.certPem, servername: 'www.mango.com' });
        try {
          await fc.assert(
            fc.asyncProperty(fc.array(stream, { minLength: 1, maxLength: 4 }), async (streams) => {
              await Promise.all(streams.map(async (x) => {
                const get = x.path.startsWith('/count') ? 'POST' : 'GET';
                const st = session.request({ ':method': get, ':path': x.path, ':authority': 'www.mango.com' }, { endStream: get === 'GET' });
                st.on('error', () => undefined);
                let got = 0;
                let ended = false;
                st.on('data', (c: Buffer) => (got += c.length));
                st.on('end', () => (ended = true));
                if (get === 'POST') {
                  const n = Math.floor(x.cutAt * x.body);
                  if (n > 0) st.write(Buffer.alloc(n, 99));
                  if (x.cutAt === 1) st.end();
                }
                if (x.cutAt === 1 && !x.path.startsWith('/hold')) {
                  await waitFor(() => got >= x.readBytes || ended || st.destroyed, { timeoutMs: 10_000, intervalMs: 5, message: `${x.readBytes} bytes of the answer` });
                }
                st.close(h2constants.NGHTTP2_CANCEL);
              }));
              await waitFor(async () => (await metricValue(noDefault.router.adminUrl, 'router_requests_in_flight')) === 0 && (await heldAt(mangoUrl, held)) === 0, { timeoutMs: 10_000, message: 'no request in flight, none held at the instance' });
            }),
            { numRuns: 40, seed: 20261130, endOnFailure: true },
          );
        } finally {
          session.close();
        }
      }, 120_000);

      it('tunnels WebSocket over TLS (wss, HTTP/1.1 upgrade)', async () => {
        const hello = await new Promise<{ headers: Record<string, string>; echoed: string }>((resolve, reject) => {
          // ws passes servername on to tls.connect (its types do not list it).
          const options: WebSocket.ClientOptions & { servername: string } = { ca: ca.certPem, servername: 'www.mango.com', headers: { host: 'www.mango.com' } };
          const ws = new WebSocket(`wss://127.0.0.1:${noDefault.tlsPort}/`, options);
          ws.once('error', reject);
          ws.once('message', (first) => {
            const { headers } = JSON.parse(String(first)) as { headers: Record<string, string> };
            ws.once('message', (echo) => {
              resolve({ headers, echoed: String(echo) });
              ws.close();
            });
            ws.send('over tls');
          });
        });
        expect(hello.echoed).toBe('over tls');
        expect(hello.headers['x-forwarded-proto']).toBe('https');
        expect(hello.headers['x-forwarded-port']).toBe(String(noDefault.tlsPort));
      });
    });

    describe('tls.redirect and tls.hsts', () => {
      it('answers plain HTTP with 308 to https (port from --public-https-port), and serves over TLS with HSTS', async () => {
        const plain = await request(`${withDefault.router.url}/a/b?c=d&e`, { headers: { host: 'secure.example.com' } });
        expect(plain.statusCode).toBe(308);
        expect(plain.headers.location).toBe('https://secure.example.com:8443/a/b?c=d&e');
        expect(plain.headers['strict-transport-security']).toBeUndefined();
        await plain.body.dump();
        // An ACME HTTP-01 challenge is not redirected.
        const challenge = await request(`${withDefault.router.url}/.well-known/acme-challenge/tok`, { headers: { host: 'secure.example.com' } });
        expect(challenge.statusCode).toBe(200);
        await challenge.body.dump();
        const { head } = await curl(withDefault.tlsPort, 'secure.example.com', '/a', ['--http2']);
        expect(head).toMatch(/^HTTP\/2 200/);
        expect(head).toMatch(/strict-transport-security: max-age=600; includeSubDomains/);
        // Plain HTTP of an app without tls.redirect is served as before, without HSTS.
        const mango = await request(`${withDefault.router.url}/`, { headers: { host: 'www.mango.com' } });
        expect(mango.statusCode).toBe(200);
        expect(mango.headers['strict-transport-security']).toBeUndefined();
        await mango.body.dump();
      });
    });

    describe('certificate rotation', () => {
      it('replaces a certificate 20 times under load: every handshake and request succeeds, new handshakes get the new one', async () => {
        const versions: IssuedCert[] = [];
        for (let i = 0; i < 20; i++) versions.push(await ca.issue({ dns: ['www.mango.com'] }));
        const fingerprints = new Set(versions.map((v) => new X509Certificate(v.leafPem).fingerprint256));
        let stop = false;
        let ok = 0;
        const failures: string[] = [];
        const seen = new Set<string>();
        // Every request on a new connection (a new handshake), over HTTP/2; 4 loops in parallel.
        const loop = async () => {
          while (!stop) {
            const session = h2connect(`https://www.mango.com:${noDefault.tlsPort}`, { ca: ca.certPem, host: '127.0.0.1', servername: 'www.mango.com' } as never);
            try {
              const status = await new Promise<number>((resolve, reject) => {
                session.once('error', reject);
                session.once('connect', (s) => {
                  const fp = (s.socket as unknown as { getPeerX509Certificate(): X509Certificate }).getPeerX509Certificate().fingerprint256;
                  seen.add(fp);
                });
                const req = session.request({ ':path': '/' });
                req.once('response', (h) => resolve(Number(h[':status'])));
                req.once('error', reject);
                req.resume();
              });
              if (status === 200) ok++;
              else failures.push(`status ${status}`);
            } catch (err) {
              failures.push((err as Error).message);
            } finally {
              session.destroy();
            }
          }
        };
        const loops = Array.from({ length: 4 }, loop);
        for (const v of versions) {
          await putCert('www.mango.com', v);
          const fp = new X509Certificate(v.leafPem).fingerprint256;
          await waitFor(async () => {
            const leaf = await servedLeaf(noDefault.tlsPort, 'www.mango.com');
            return leaf instanceof X509Certificate && leaf.fingerprint256 === fp;
          }, { timeoutMs: 10_000, message: 'the new certificate to be served' });
        }
        stop = true;
        await Promise.all(loops);
        expect(failures).toEqual([]);
        expect(ok).toBeGreaterThan(20);
        expect([...seen].filter((fp) => fingerprints.has(fp)).length).toBeGreaterThan(1);
        // Replaced certificates' contexts are dropped, not accumulated.
        const status = (await (await request(`${noDefault.router.adminUrl}/status`)).body.json()) as { tls: { contexts: number } };
        expect(status.tls.contexts).toBeLessThanOrEqual(5);
      });
    });

    /** One HTTP/1.1 exchange on an open TLS socket: the answer's head, once its body (Content-Length or chunked) is in. */
    function exchangeOn(socket: TLSSocket, path: string): Promise<string> {
      return new Promise((resolve, reject) => {
        let text = '';
        const onData = (d: Buffer) => {
          text += d.toString('latin1');
          const cut = text.indexOf('\r\n\r\n');
          if (cut < 0) return;
          const length = /content-length: (\d+)/i.exec(text.slice(0, cut));
          if (length !== null ? text.length >= cut + 4 + Number(length[1]) : text.endsWith('\r\n0\r\n\r\n')) {
            socket.off('data', onData);
            resolve(text.slice(0, cut));
          }
        };
        socket.on('data', onData);
        socket.once('error', reject);
        socket.write(`GET ${path} HTTP/1.1\r\nHost: www.mango.com\r\n\r\n`);
      });
    }

    describe('drain on SIGTERM', () => {
      it('sends GOAWAY to HTTP/2 sessions and lets their streams finish; HTTP/1.1 over TLS answers say Connection: close', async () => {
        const { router, tlsPort } = await startTlsRouter('tls-drain', ['--drain-wait', '300ms', '--shutdown-timeout', '10s']);
        const session = h2connect(`https://127.0.0.1:${tlsPort}`, { ca: ca.certPem, servername: 'www.mango.com' });
        const goaway = new Promise<void>((resolve) => session.once('goaway', () => resolve()));
        session.on('error', () => undefined);
        const held = new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = session.request({ ':path': '/hold?id=tls-drain', ':authority': 'www.mango.com' });
          let status = 0;
          let body = '';
          req.once('response', (h) => (status = Number(h[':status'])));
          req.setEncoding('utf8');
          req.on('data', (c: string) => (body += c));
          req.once('end', () => resolve({ status, body }));
          req.once('error', reject);
        });
        const h1 = tlsConnect({ host: '127.0.0.1', port: tlsPort, servername: 'www.mango.com', ca: ca.certPem, ALPNProtocols: ['http/1.1'] });
        await new Promise((resolve) => h1.once('secureConnect', resolve));
        expect(await exchangeOn(h1, '/')).not.toMatch(/connection: close/i);
        await waitFor(async () => {
          const status = (await (await request(`${router.adminUrl}/status`)).body.json()) as { inflight: Record<string, number> };
          return status.inflight['mango/m1'] === 1;
        }, { message: 'the held HTTP/2 request to reach the instance' });

        router.proc.kill('SIGTERM');
        await goaway;
        expect(await exchangeOn(h1, '/')).toMatch(/connection: close/i);
        expect(router.proc.running).toBe(true);
        // The stream in flight finishes after the GOAWAY.
        await (await request(`${mangoUrl}/release?id=tls-drain`)).body.dump();
        const answer = await held;
        expect(answer.status).toBe(200);
        expect(answer.body).toContain('"held":"tls-drain"');
        session.close();
        h1.destroy();
        expect((await router.proc.exited).code).toBe(0);
      });
    });

    describe('--workers', () => {
      it('shares the TLS listener among the workers like the plain one', async () => {
        const { router, tlsPort } = await startTlsRouter('tls-workers', ['--workers', '2']);
        const pids = new Set<string>();
        for (let i = 0; i < 12; i++) {
          const { head } = await curl(tlsPort, 'www.mango.com', '/', ['--http2']);
          expect(head).toMatch(/^HTTP\/2 200/);
        }
        const status = (await (await request(`${router.adminUrl}/status`)).body.json()) as { workers: Array<{ pid: number; tls: { listen: string } | null }> };
        expect(status.workers).toHaveLength(2);
        for (const w of status.workers) {
          expect(w.tls?.listen).toBe(`127.0.0.1:${tlsPort}`);
          pids.add(String(w.pid));
        }
        expect(pids.size).toBe(2);
        const metrics = await (await request(`${router.adminUrl}/metrics`)).body.text();
        expect(Number(/router_tls_requests_total\{protocol="h2"\} (\d+)/.exec(metrics)?.[1])).toBe(12);
        await router.proc.stop();
      });
    });

    /** A TLS connection to `port` for www.mango.com, resuming `session` when given; one request so the server's ticket arrives. */
    function resumeAt(port: number, session: Buffer | undefined, maxVersion: 'TLSv1.2' | 'TLSv1.3'): Promise<{ reused: boolean; session: Buffer | undefined }> {
      return new Promise((resolve, reject) => {
        const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'www.mango.com', ca: ca.certPem, session, maxVersion, ALPNProtocols: ['http/1.1'] });
        let ticket: Buffer | undefined;
        socket.on('session', (s: Buffer) => (ticket = s));
        socket.once('secureConnect', () => {
          exchangeOn(socket, '/').then(() => {
            const reused = socket.isSessionReused();
            socket.end();
            socket.once('close', () => resolve({ reused, session: ticket }));
          }, reject);
        });
        socket.once('error', reject);
      });
    }

    describe('session resumption', () => {
      it('resumes on another replica with the ticket key both read from etcd (TLS 1.3 and 1.2)', async () => {
        const stored = JSON.parse(await etcdctl(endpoints, ['get', `${prefix}/tls-ticket-keys`, '--print-value-only'])) as { current: string; rotatedAt: string };
        expect(Buffer.from(stored.current, 'base64')).toHaveLength(48);
        for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
          const first = await resumeAt(noDefault.tlsPort, undefined, version);
          expect(first.reused).toBe(false);
          expect(first.session, `${version}: a ticket`).toBeInstanceOf(Buffer);
          const again = await resumeAt(withDefault.tlsPort, first.session, version);
          expect(again.reused, version).toBe(true);
        }
        const metrics = await (await request(`${withDefault.router.adminUrl}/metrics`)).body.text();
        expect(Number(/router_tls_resumed_handshakes_total (\d+)/.exec(metrics)?.[1])).toBeGreaterThanOrEqual(2);
      });
    });
  });
}
