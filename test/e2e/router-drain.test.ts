/**
 * A router's SIGTERM under load from keep-alive clients: no request written to it is lost.
 * Real etcd, real router and sample-app processes; the clients are undici pools that reach
 * "the routers" as through DNS with health checks (or an L4 balancer): a new connection goes
 * to the first address in rotation, to the next one when that attempt fails; an address whose
 * /readyz answers 503 leaves the rotation within a poll (the reason for --drain-wait).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { execFile } from 'node:child_process';
import diagnostics from 'node:diagnostics_channel';
import net from 'node:net';
import { promisify } from 'node:util';
import { Pool, request, type buildConnector } from 'undici';
import { CLIENT_PARSERS, processes, startRouter, type ClientParser, startSampleApp, type RouterProcess } from '../harness/processes.js';
import { runEtcdctl as etcdctl, uniquePrefix } from '../harness/etcd.js';
import { waitFor } from '../harness/wait.js';

const endpoints = inject('etcdEndpoints');
const ROUTER_BIN = new URL('../../packages/router/bin/paas-router.js', import.meta.url).pathname;
const run = promisify(execFile);

const HOST = 'drain.example';
const LOOPS = 20;
const RUNS = 10;
const DRAIN_WAIT_MS = 300;
const CLIENT_KEEPALIVE_MS = 2000;
/** Answers through the router to stop before its SIGTERM, and through the other one after it exited. */
const ANSWERS_BEFORE = 100;
const ANSWERS_AFTER = 50;
/** How often the "DNS" health check polls /readyz: well within the drain wait. */
const HEALTH_POLL_MS = 50;

const prefix = uniquePrefix('drain');

async function putJson(key: string, value: unknown): Promise<void> {
  await etcdctl(endpoints, ['put', key, JSON.stringify(value)]);
}

/** The --client-parser of the suite running (each runs once per parser). */
let parser: ClientParser = 'native';

function startDrainRouter(id: string, extraArgs: string[] = []): Promise<RouterProcess> {
  return startRouter({
    etcdEndpoints: endpoints,
    prefix,
    id: `${id}-${parser}`,
    extraArgs: ['--client-parser', parser, '--drain-wait', `${DRAIN_WAIT_MS}ms`, '--client-keepalive-timeout', `${CLIENT_KEEPALIVE_MS}ms`, '--shutdown-timeout', '10s', ...extraArgs],
  });
}

/** Router ports in the order a client tries them, without the ones whose /readyz said 503. */
class Rotation {
  private readonly out = new Set<number>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly routers: RouterProcess[]) {
    this.timer = setInterval(() => void this.check(), HEALTH_POLL_MS);
  }

  ports(): number[] {
    const inRotation = this.routers.filter((r) => !this.out.has(r.port)).map((r) => r.port);
    return inRotation.length > 0 ? inRotation : this.routers.map((r) => r.port);
  }

  private async check(): Promise<void> {
    for (const r of this.routers) {
      const ready = await request(`${r.adminUrl}/readyz`).then(
        async (res) => (await res.body.dump(), res.statusCode === 200),
        () => false,
      );
      if (!ready) this.out.add(r.port);
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/**
 * undici's connect hook: the first port that takes the connection, as a DNS client of several
 * addresses does. A connection attempt that is refused (or reset by a listener closing) fails
 * before the client has written anything, so the next address is tried.
 */
function connectToFirstOf(rotation: Rotation): buildConnector.connector {
  return (_opts, callback) => {
    const ports = rotation.ports();
    const attempt = (i: number) => {
      const socket = net.connect({ host: '127.0.0.1', port: ports[i]! });
      const onError = (err: Error) => {
        socket.destroy();
        if (i + 1 < ports.length) attempt(i + 1);
        else callback(err, null);
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        callback(null, socket);
      });
    };
    attempt(0);
  };
}

/** Which router port each request was written to, and the answers' Connection header. */
interface Seen {
  port: number;
  sentAt: number;
  connection: string | undefined;
}
const seen = new Map<object, Seen>();
const onSend = (message: unknown) => {
  const { request, socket } = message as { request: object; socket: net.Socket };
  seen.set(request, { port: socket.remotePort!, sentAt: Date.now(), connection: undefined });
};
const onHeaders = (message: unknown) => {
  const { request, response } = message as { request: object; response: { headers: Buffer[] } };
  const entry = seen.get(request);
  if (!entry) return;
  for (let i = 0; i < response.headers.length; i += 2) {
    if (response.headers[i]!.toString().toLowerCase() === 'connection') entry.connection = response.headers[i + 1]!.toString().toLowerCase();
  }
};

/** Keep-alive request loops until stopped; every error or non-2xx answer is a failure. */
function startLoops(pool: Pool) {
  const failures: string[] = [];
  let answers = 0;
  let stop = false;
  const loops = Array.from({ length: LOOPS }, async () => {
    while (!stop) {
      try {
        const res = await pool.request({ path: '/', method: 'GET', headers: { host: HOST } });
        await res.body.dump();
        if (res.statusCode < 200 || res.statusCode > 299) failures.push(`answer ${res.statusCode}`);
        else answers++;
      } catch (err) {
        failures.push(`${(err as NodeJS.ErrnoException).code ?? ''} ${(err as Error).message}`);
      }
    }
  });
  return {
    failures,
    get answers() {
      return answers;
    },
    async stop() {
      stop = true;
      await Promise.all(loops);
    },
  };
}

beforeAll(async () => {
  const a = await startSampleApp({ app: 'drain', name: 'a' });
  const b = await startSampleApp({ app: 'drain', name: 'b' });
  await putJson(`${prefix}/apps/drain`, { routes: [{ host: HOST }] });
  await putJson(`${prefix}/instances/drain/a`, { url: a.url, state: 'ready' });
  await putJson(`${prefix}/instances/drain/b`, { url: b.url, state: 'ready' });
  diagnostics.subscribe('undici:client:sendHeaders', onSend);
  diagnostics.subscribe('undici:request:headers', onHeaders);
});
afterAll(async () => {
  diagnostics.unsubscribe('undici:client:sendHeaders', onSend);
  diagnostics.unsubscribe('undici:request:headers', onHeaders);
  await processes.stopAll();
});

for (const each of CLIENT_PARSERS) {
  describe(`--client-parser ${each}`, () => {
    beforeAll(() => {
      parser = each;
    });

    describe('SIGTERM under keep-alive load', () => {
      // About 30 s on an idle machine; the bound is for one shared with other test runs.
      it(`loses no request of ${LOOPS} keep-alive loops, ${RUNS} times in a row`, { timeout: 180_000 }, async () => {
        const other = await startDrainRouter('drain-other');
        let next = startDrainRouter('drain-0');
        for (let runNo = 0; runNo < RUNS; runNo++) {
          const stopping = await next;
          // The next run's router starts while this one takes load and drains.
          if (runNo + 1 < RUNS) next = startDrainRouter(`drain-${runNo + 1}`);
          seen.clear();
          const rotation = new Rotation([stopping, other]);
          const pool = new Pool(`http://${HOST}`, { connections: LOOPS, pipelining: 1, connect: connectToFirstOf(rotation) });
          const loops = startLoops(pool);
          const through = (port: number) => [...seen.values()].filter((s) => s.port === port && s.connection !== undefined).length;
          await waitFor(() => through(stopping.port) >= ANSWERS_BEFORE, { timeoutMs: 20_000, message: `run ${runNo}: ${ANSWERS_BEFORE} answers through the router to stop` });

          const termAt = Date.now();
          stopping.proc.kill('SIGTERM');
          const exit = await stopping.proc.exited;
          const exitMs = Date.now() - termAt;
          const afterExit = through(other.port);
          await waitFor(() => through(other.port) >= afterExit + ANSWERS_AFTER, { timeoutMs: 20_000, message: `run ${runNo}: answers through the other router` });
          await loops.stop();
          rotation.stop();
          await pool.close();

          expect({ run: runNo, failures: loops.failures }).toEqual({ run: runNo, failures: [] });
          expect(exit.code).toBe(0);
          // Idle connections may live up to the announced keep-alive (+1 s in Node) past the drain wait.
          expect(exitMs).toBeLessThan(DRAIN_WAIT_MS + CLIENT_KEEPALIVE_MS + 1000 + 4000);
          const stoppedAt = Date.parse(JSON.parse(stopping.proc.stdout.find((l) => l.includes('stopping: readyz now 503'))!).time as string);
          const afterStop = [...seen.values()].filter((s) => s.port === stopping.port && s.sentAt > stoppedAt && s.connection !== undefined);
          expect(afterStop.filter((s) => s.connection !== 'close')).toEqual([]);
          const before = [...seen.values()].filter((s) => s.port === stopping.port && s.sentAt < termAt && s.connection !== undefined);
          expect(before.some((s) => s.connection === 'keep-alive')).toBe(true);
        }
        await other.proc.stop();
      });

      it('answers a request written on an idle connection after the listener closed, and closes idle connections only after the announced keep-alive', async () => {
        const router = await startDrainRouter('drain-idle', ['--drain-wait', '200ms', '--client-keepalive-timeout', '3s']);
        const get = `GET / HTTP/1.1\r\nhost: ${HOST}\r\n\r\n`;
        const open = async () => {
          const socket = net.connect({ host: '127.0.0.1', port: router.port });
          await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
          let text = '';
          // When the last bytes arrived: answer() below polls, and would see them later.
          let lastDataAt = 0;
          socket.on('data', (d: Buffer) => {
            text += d.toString();
            lastDataAt = performance.now();
          });
          const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now())));
          const answer = async (n: number) => {
            // The sample app's answers are chunked: each ends with the last chunk.
            await waitFor(() => text.split('\r\n0\r\n\r\n').length - 1 >= n, { timeoutMs: 5000, message: `answer ${n}` });
            return text.split('HTTP/1.1 ')[n]!;
          };
          return { socket, closed, answer, lastDataAt: () => lastDataAt };
        };
        const writer = await open();
        const idle = await open();
        writer.socket.write(get);
        idle.socket.write(get);
        expect(await writer.answer(1)).toMatch(/^200 [^]*\r\nKeep-Alive: timeout=3\r\n/i);
        expect(await idle.answer(1)).toMatch(/^200 /);
        const idleSince = idle.lastDataAt();

        router.proc.kill('SIGTERM');
        await router.proc.waitForLine((l) => l.includes('listener closed'), { timeoutMs: 5000 });
        // The client still holds a connection it was told stays open 3 s: it writes on it.
        writer.socket.write(get);
        const second = await writer.answer(2);
        expect(second).toMatch(/^200 /);
        expect(second).toMatch(/\r\nconnection: close\r\n/i);
        await writer.closed;
        // The connection that stays idle is closed by the router, not before the 3 s it announced.
        // The router's 3 s start when it wrote the answer, a moment before it arrived here (1 ms).
        expect((await idle.closed) - idleSince).toBeGreaterThanOrEqual(2999);
        expect((await router.proc.exited).code).toBe(0);
      });
    });

    describe('request heads and flags', () => {
      it('answers 408 and closes when a request head is not complete within --request-header-timeout', async () => {
        const router = await startDrainRouter('drain-head', ['--request-header-timeout', '500ms']);
        const socket = net.connect({ host: '127.0.0.1', port: router.port });
        await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
        const sentAt = Date.now();
        socket.write(`GET / HTTP/1.1\r\nhost: ${HOST}\r\n`);
        let text = '';
        socket.on('data', (d: Buffer) => (text += d.toString()));
        await new Promise((resolve) => socket.once('close', resolve));
        const elapsed = Date.now() - sentAt;
        expect(text).toMatch(/^HTTP\/1\.1 408 /);
        expect(elapsed).toBeGreaterThanOrEqual(500);
        expect(elapsed).toBeLessThan(5000);
        await router.proc.stop();
      });

      it.each([
        [['--client-keepalive-timeout', 'long'], '--client-keepalive-timeout: "long" is not a duration (e.g. 500ms, 30s, 1m30s, 2h)'],
        [['--client-keepalive-timeout', '500ms'], '--client-keepalive-timeout: "500ms" must be at least 1s (clients are told whole seconds)'],
        [['--client-keepalive-timeout', '30s'], '--client-keepalive-timeout: "30s" must be at least 1s shorter than --shutdown-timeout (30s), or a stop cuts idle client connections'],
        [['--request-header-timeout', '0'], '--request-header-timeout: must be more than 0'],
        [['--request-header-timeout', 'soon'], '--request-header-timeout: "soon" is not a duration (e.g. 500ms, 30s, 1m30s, 2h)'],
      ])('stops with exit 2 and one line on %j', async (argv, line) => {
        const bad = await run('node', [ROUTER_BIN, ...argv]).catch((e: { code: number; stderr: string }) => e);
        expect((bad as { code: number }).code).toBe(2);
        expect((bad as { stderr: string }).stderr).toBe(`paas-router: ${line}\n`);
      });

      it('reads the new flags from the environment too', async () => {
        const bad = await run('node', [ROUTER_BIN], { env: { ...process.env, ROUTER_CLIENT_KEEPALIVE_TIMEOUT: '45s', ROUTER_SHUTDOWN_TIMEOUT: '20s' } }).catch((e: { code: number; stderr: string }) => e);
        expect((bad as { code: number }).code).toBe(2);
        expect((bad as { stderr: string }).stderr).toBe('paas-router: ROUTER_CLIENT_KEEPALIVE_TIMEOUT: "45s" must be at least 1s shorter than ROUTER_SHUTDOWN_TIMEOUT (20s), or a stop cuts idle client connections\n');
      });
    });
  });
}
