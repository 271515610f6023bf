/**
 * Answers of every HTTP/1.1 framing from an instance, random (fast-check, fixed seed), through a
 * real router process with each upstream client: a scripted raw instance answers each request
 * with a Content-Length body, a chunked one (chunk extensions, trailers, chunk sizes in any
 * case) or one delimited by closing the connection, sometimes after a 100 Continue, in writes
 * cut at arbitrary bytes, before or after reading the request's body. Every body must reach the
 * client byte for byte, over HTTP/1.1 or HTTP/2 (TLS, a certificate from a test CA), and the
 * next request must be served.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import fc from 'fast-check';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runEtcdctl as etcdctl, uniquePrefix } from '../harness/etcd.js';
import { createCa, type TestCa } from '../harness/pki.js';
import { freePort } from '../harness/ports.js';
import { startRouter, type RouterProcess } from '../harness/processes.js';
import { waitFor } from '../harness/wait.js';

const endpoints = inject('etcdEndpoints');
const prefix = uniquePrefix('framings');
const HOST = 'framings.example.com';

/** How the instance answers one request. */
interface Script {
  framing: 'length' | 'chunked' | 'close';
  size: number;
  /** Chunked: the largest chunk. */
  chunk: number;
  /** A 100 Continue first. */
  interim: boolean;
  /** Chunked: `;ext=1` on each size line, trailers after the last chunk, sizes in upper case. */
  fancy: boolean;
  /** The answer's bytes are written in this many pieces. */
  writes: number;
  /** The answer goes out before the request's body was read. */
  early: boolean;
}

/** byte i of every body */
const byteAt = (i: number) => (i * 7 + (i >> 8)) & 255;
function bodyOf(size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = byteAt(i);
  return b;
}

function answerBytes(s: Script): Buffer {
  const body = bodyOf(s.size);
  const parts: Buffer[] = [];
  if (s.interim) parts.push(Buffer.from('HTTP/1.1 100 Continue\r\n\r\n'));
  if (s.framing === 'length') {
    parts.push(Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${s.size}\r\n\r\n`), body);
  } else if (s.framing === 'close') {
    parts.push(Buffer.from('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n'), body);
  } else {
    parts.push(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'));
    for (let at = 0; at < s.size; at += s.chunk) {
      const piece = body.subarray(at, at + s.chunk);
      const hex = piece.length.toString(16);
      parts.push(Buffer.from(`${s.fancy ? hex.toUpperCase() : hex}${s.fancy ? ';ext=1' : ''}\r\n`), piece, Buffer.from('\r\n'));
    }
    parts.push(Buffer.from(s.fancy ? '0\r\nX-Trailer: t\r\n\r\n' : '0\r\n\r\n'));
  }
  return Buffer.concat(parts);
}

/**
 * The scripted instance: reads each request head (and its Content-Length body, unless the
 * script answers early), answers with the next script, and for `close` ends the connection.
 */
async function scriptedInstance(next: () => Script): Promise<{ server: Server; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffered = Buffer.alloc(0);
    let bodyLeft = 0;
    /** The answer that goes out once the request's body is read. */
    let waiting: (() => void) | undefined;
    const pump = () => {
      for (;;) {
        if (bodyLeft > 0) {
          const take = Math.min(bodyLeft, buffered.length);
          bodyLeft -= take;
          buffered = buffered.subarray(take);
          if (bodyLeft > 0) return;
        }
        const answer = waiting;
        waiting = undefined;
        answer?.();
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buffered.subarray(0, end).toString('latin1');
        buffered = buffered.subarray(end + 4);
        bodyLeft = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? '0');
        const script = next();
        const bytes = answerBytes(script);
        const send = () => {
          const cut = Math.ceil(bytes.length / script.writes);
          for (let at = 0; at < bytes.length; at += cut) socket.write(bytes.subarray(at, at + cut));
          if (script.framing === 'close') socket.end();
        };
        if (script.early) send();
        else waiting = send;
      }
    };
    socket.on('data', (d: Buffer) => {
      buffered = Buffer.concat([buffered, d]);
      pump();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, sockets };
}

/** An unasked 100 Continue fails the portable client, as it fails undici (upstream-client.test.ts). */
const scriptFor = (client: 'native' | 'portable'): fc.Arbitrary<Script> =>
  fc.record({
    framing: fc.constantFrom('length', 'chunked', 'close'),
    size: fc.oneof(fc.constantFrom(0, 1, 65_535, 65_536, 65_537), fc.integer({ min: 0, max: 300_000 })),
    chunk: fc.integer({ min: 1, max: 70_000 }),
    interim: client === 'native' ? fc.boolean() : fc.constant(false),
    fancy: fc.boolean(),
    writes: fc.integer({ min: 1, max: 7 }),
    early: fc.boolean(),
  });

let ca: TestCa;

beforeAll(async () => {
  ca = await createCa();
  const cert = await ca.issue({ dns: [`*.${HOST}`] });
  await etcdctl(endpoints, ['put', `${prefix}/certs/framings`, JSON.stringify({ cert: cert.certPem, key: cert.keyPem })]);
});

for (const client of ['native', 'portable'] as const) {
  describe(`--upstream-client ${client}`, () => {
    let router: RouterProcess;
    let tlsPort: number;
    let instance: Awaited<ReturnType<typeof scriptedInstance>>;
    let scripts: Script[] = [];
    const host = `${client}.${HOST}`;
    const dispatcher = new Agent({ connections: 4 });
    let h2: Agent;

    beforeAll(async () => {
      h2 = new Agent({ allowH2: true, connect: { ca: ca.certPem, servername: host } });
      instance = await scriptedInstance(() => scripts.shift() ?? { framing: 'length', size: 2, chunk: 1, interim: false, fancy: false, writes: 1, early: false });
      const app = `framings-${client}`;
      await etcdctl(endpoints, ['put', `${prefix}/apps/${app}`, JSON.stringify({ routes: [{ host }] })]);
      await etcdctl(endpoints, ['put', `${prefix}/instances/${app}/i1`, JSON.stringify({ url: `http://127.0.0.1:${instance.port}`, state: 'ready' })]);
      tlsPort = await freePort();
      router = await startRouter({ etcdEndpoints: endpoints, prefix, id: `framings-${client}`, extraArgs: ['--upstream-client', client, '--listen-tls', `127.0.0.1:${tlsPort}`] });
      await waitFor(async () => (await request(`${router.url}/`, { headers: { host }, dispatcher }).then((r) => r.body.text().then(() => r.statusCode))) === 200, { timeoutMs: 10_000, message: 'the instance routed' });
    });

    afterAll(async () => {
      await h2?.close();
      await dispatcher.close();
      await router?.proc.stop();
      for (const s of instance?.sockets ?? []) s.destroy();
      await new Promise((r) => instance?.server.close(r));
    });

    it('passes every framing of the answer on whole, over HTTP/1.1 and HTTP/2, one request after another', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(fc.tuple(scriptFor(client), fc.integer({ min: 0, max: 100_000 }), fc.boolean()), { minLength: 1, maxLength: 5 }), async (steps) => {
          for (const [s, upload, overH2] of steps) {
            scripts = [s];
            const url = overH2 ? `https://127.0.0.1:${tlsPort}/x` : `${router.url}/x`;
            const res = await request(url, { method: upload > 0 ? 'POST' : 'GET', body: upload > 0 ? Buffer.alloc(upload, 1) : undefined, headers: { host }, dispatcher: overH2 ? h2 : dispatcher });
            const got = Buffer.from(await res.body.arrayBuffer());
            expect(res.statusCode, JSON.stringify(s)).toBe(200);
            expect(got.length, JSON.stringify(s)).toBe(s.size);
            expect(got.equals(bodyOf(s.size)), JSON.stringify(s)).toBe(true);
          }
        }),
        { numRuns: 40, seed: 20261130, endOnFailure: true },
      );
    }, 120_000);
  });
}
