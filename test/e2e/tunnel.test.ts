/**
 * Agent tunnels end to end: a real etcd, two routers with --listen-tunnel (certificate from a
 * `certs/` record, made by the test CA), paas-agent processes dialling them, sample apps behind
 * the agents on loopback, tokens made by `paas-deploy tunnel-token create`, and real clients
 * (undici, ws). Instances are `tunnel://<id>` records; nothing in the routing decision differs
 * from a direct instance, so the headers an app sees are compared with a direct instance's.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Agent as UndiciAgent, request } from 'undici';
import WebSocket from 'ws';
import { createCa, type TestCa } from '../harness/pki.js';
import { freePort } from '../harness/ports.js';
import { processes, startRouter, startSampleApp, type ManagedProcess, type RouterProcess, type SampleApp } from '../harness/processes.js';
import { runEtcdctl as etcdctl, uniquePrefix } from '../harness/etcd.js';
import { startLoad, type RequestLoad } from '../harness/load.js';
import { heldAt, metricValue } from '../harness/probes.js';
import { checkPattern, requestLanes, runLanes } from '../harness/random-requests.js';
import { served, waitFor } from '../harness/wait.js';

const run = promisify(execFile);
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const AGENT_BIN = `${REPO_ROOT}packages/agent/bin/paas-agent.js`;
const DEPLOY_BIN = `${REPO_ROOT}packages/deployer/bin/paas-deploy.js`;
const endpoints = inject('etcdEndpoints');
const prefix = uniquePrefix('tunnel');
const HOST = 'tun.mango.com';

let ca: TestCa;
const routers: { r: RouterProcess; tunnelPort: number; id: string }[] = [];
const apps: Record<string, SampleApp> = {};
let mangoToken: string;
/** The agents of mango/t1 and mango/t2. */
const mangoAgents: ManagedProcess[] = [];
const dispatcher = new UndiciAgent({ keepAliveTimeout: 1000, connections: 64 });

async function putJson(key: string, value: unknown): Promise<void> {
  await etcdctl(endpoints, ['put', key, JSON.stringify(value)]);
}

async function deploy(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [DEPLOY_BIN, '--etcd', endpoints.join(','), '--prefix', prefix, ...args], { timeout: 15_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** A token for `app`, as an operator makes one: the secret is the last line create prints. */
async function createToken(app: string, extra: string[] = []): Promise<{ secret: string; tokenId: string }> {
  const out = await deploy(['tunnel-token', 'create', app, ...extra]);
  expect(out.code, out.stderr).toBe(0);
  const secret = out.stdout.trim().split('\n').at(-1)!;
  return { secret, tokenId: secret.slice(0, secret.indexOf('.')) };
}

async function startTunnelRouter(id: string, tunnelPort?: number): Promise<{ r: RouterProcess; tunnelPort: number; id: string }> {
  const port = tunnelPort ?? (await freePort());
  const r = await startRouter({ etcdEndpoints: endpoints, prefix, id, extraArgs: ['--listen-tunnel', `127.0.0.1:${port}`, '--tunnel-cert', 'tunnel', '--lease-ttl', '3s'] });
  return { r, tunnelPort: port, id };
}

function startAgent(opts: { app: string; id: string; to: string; token: string; routers?: string[]; extra?: string[] }): ManagedProcess {
  const list = opts.routers ?? routers.map((x) => `https://127.0.0.1:${x.tunnelPort}`);
  return processes.spawn(process.execPath, [AGENT_BIN, '--routers', list.join(','), '--app', opts.app, '--id', opts.id, '--to', opts.to, '--ca', ca.certFile, ...(opts.extra ?? [])], {
    name: `agent ${opts.app}/${opts.id}`,
    env: { PAAS_AGENT_TOKEN: opts.token },
  });
}

/** The presence records of `app/id`: router id -> connections. */
async function presence(app: string, id: string): Promise<Record<string, number>> {
  const out = await etcdctl(endpoints, ['get', '--prefix', `${prefix}/tunnels/${app}/${id}/`]);
  const lines = out.split('\n').filter(Boolean);
  const result: Record<string, number> = {};
  for (let i = 0; i + 1 < lines.length; i += 2) result[lines[i]!.slice(lines[i]!.lastIndexOf('/') + 1)] = (JSON.parse(lines[i + 1]!) as { connections: number }).connections;
  return result;
}

/** Waits until every router holds at least two sessions from the agent of `app/id`. */
async function waitForSessions(app: string, id: string, timeoutMs = 20_000): Promise<void> {
  await waitFor(async () => {
    const p = await presence(app, id);
    return routers.every((x) => (p[x.id] ?? 0) >= 2) ? true : undefined;
  }, { timeoutMs, message: `${app}/${id}: two sessions on every router` });
}

/** Requests to `host` from `concurrency` loops over both routers until stopped; failures are kept. */
function load(host: string, concurrency = 6): RequestLoad {
  return startLoad(async (i) => {
    const r = routers[i % routers.length]!.r;
    const res = await request(`${r.url}/n${i}`, { headers: { host }, dispatcher });
    const text = await res.body.text();
    return res.statusCode === 200 ? undefined : `${res.statusCode} ${text.slice(0, 120)}`;
  }, concurrency);
}


/** Requests held open under `id` by the apps behind mango's two agents. */
async function heldAtMangoApps(id: string): Promise<number> {
  return (await heldAt(apps.a1!.url, id)) + (await heldAt(apps.a2!.url, id));
}

async function get(router: RouterProcess, path: string, host = HOST): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  const res = await request(`${router.url}${path}`, { headers: { host }, dispatcher });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

beforeAll(async () => {
  ca = await createCa();
  const cert = await ca.issue({ dns: ['localhost'], ip: ['127.0.0.1'] });
  await putJson(`${prefix}/certs/tunnel`, { cert: cert.certPem, key: cert.keyPem });
  await putJson(`${prefix}/apps/mango`, { routes: [{ host: HOST }] });
  await putJson(`${prefix}/apps/direct`, { routes: [{ host: 'direct.mango.com' }] });
  const [a1, a2] = await Promise.all([startSampleApp({ app: 'mango', name: 't1' }), startSampleApp({ app: 'mango', name: 't2' })]);
  Object.assign(apps, { a1, a2 });
  await putJson(`${prefix}/instances/direct/d1`, { url: a1.url, state: 'ready' });
  routers.push(...(await Promise.all([startTunnelRouter('r1'), startTunnelRouter('r2')])));
  mangoToken = (await createToken('mango')).secret;
  // Agent t1 is told one router only: it learns the other from the first one's welcome.
  const g1 = startAgent({ app: 'mango', id: 't1', to: a1.url, token: mangoToken, routers: [`https://127.0.0.1:${routers[0]!.tunnelPort}`] });
  const g2 = startAgent({ app: 'mango', id: 't2', to: a2.url, token: mangoToken });
  await putJson(`${prefix}/instances/mango/t1`, { url: 'tunnel://t1', state: 'ready' });
  await putJson(`${prefix}/instances/mango/t2`, { url: 'tunnel://t2', state: 'ready' });
  mangoAgents.push(g1, g2);
  await Promise.all([waitForSessions('mango', 't1'), waitForSessions('mango', 't2')]).catch((err: Error) => {
    throw new Error(`${err.message}\n${g1.tail()}\n${g2.tail()}\n${routers.map((x) => x.r.proc.tail(400).split("\n").filter((l) => l.includes("stderr") || l.includes("\"level\":60") || l.includes("\"level\":50") || l.includes("tunnel")).join("\n")).join('\n')}`);
  });
}, 60_000);

afterAll(async () => {
  await dispatcher.close();
});

describe('requests through a tunnel', () => {
  it('an agent given one router holds two sessions to every router', async () => {
    const p = await presence('mango', 't1');
    expect(p).toEqual({ r1: 2, r2: 2 });
    const status = await deploy(['status', 'mango']);
    expect(status.stdout).toContain('tunnel://t1 (sessions on r1, r2)');
  });

  it('serves HTTP with the same Host and X-Forwarded-* as a direct instance gets', async () => {
    for (const { r } of routers) {
      const tunneled = await get(r, '/echo?x=1');
      expect(tunneled.status).toBe(200);
      const direct = await get(r, '/echo?x=1', 'direct.mango.com');
      const t = JSON.parse(tunneled.body) as { url: string; headers: Record<string, string> };
      const d = JSON.parse(direct.body) as { url: string; headers: Record<string, string> };
      expect(t.url).toBe('/echo?x=1');
      expect(t.headers.host).toBe(HOST);
      for (const h of ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-port']) expect(t.headers[h], h).toBe(d.headers[h]);
      expect(Object.keys(t.headers).sort()).toEqual(Object.keys(d.headers).sort());
    }
  });
});

describe('bodies and WebSocket through a tunnel', () => {
  it('streams a 64 MiB download and a 32 MiB upload', async () => {
    const r = routers[0]!.r;
    const down = await request(`${r.url}/bytes?n=${64 * 1024 * 1024}`, { headers: { host: HOST }, dispatcher });
    expect(down.statusCode).toBe(200);
    let got = 0;
    for await (const chunk of down.body) got += (chunk as Buffer).length;
    expect(got).toBe(64 * 1024 * 1024);

    const chunk = Buffer.alloc(256 * 1024, 7);
    const body = Readable.from((function* () {
      for (let i = 0; i < 128; i++) yield chunk;
    })());
    const up = await request(`${r.url}/count`, { method: 'POST', headers: { host: HOST }, body, dispatcher });
    expect(up.statusCode).toBe(200);
    expect((JSON.parse(await up.body.text()) as { bytes: number }).bytes).toBe(32 * 1024 * 1024);
  });

  it('carries four concurrent 16 MiB downloads byte for byte (the agent reuses its read buffers across streams)', async () => {
    const size = 16 * 1024 * 1024;
    const four = new UndiciAgent({ connections: 4 });
    try {
      const results = await Promise.all([0, 1, 2, 3].map(async () => {
        const res = await request(`${routers[0]!.r.url}/bytes?n=${size}&pattern`, { headers: { host: HOST }, dispatcher: four });
        return { status: res.statusCode, ...(await checkPattern(res.body as AsyncIterable<Buffer>)) };
      }));
      expect(results).toEqual([0, 1, 2, 3].map(() => ({ status: 200, got: size, firstWrong: -1 })));
    } finally {
      await four.close();
    }
  });

  it('answers random request sequences whole, through both routers: bodies of every size, chunked or not, instances that pause before reading or close their connections', async () => {
    // test/harness/random-requests.ts; the app closing its connection makes the agent end that stream.
    await fc.assert(
      fc.asyncProperty(requestLanes(routers.length), async (lanes) => {
        expect(await runLanes(lanes, (i) => routers[i]!.r.url, HOST, dispatcher)).toEqual([]);
      }),
      { numRuns: 30, seed: 20261130, endOnFailure: true },
    );
  }, 120_000);

  it('frees the request at the app when the client leaves before the answer: the router resets the stream, the agent closes its connection', async () => {
    const id = 'tunnel-left';
    for (const { r } of routers) {
      const leaving = new AbortController();
      const pending = request(`${r.url}/hold?id=${id}`, { headers: { host: HOST }, dispatcher, signal: leaving.signal }).catch((err: Error) => err);
      await waitFor(async () => (await heldAtMangoApps(id)) === 1, { timeoutMs: 10_000, message: 'the request held at the app' });
      leaving.abort();
      expect(await pending).toBeInstanceOf(Error);
      await waitFor(async () => (await heldAtMangoApps(id)) === 0, { timeoutMs: 10_000, message: 'the app to see the request go' });
    }
  });

  it('leaves nothing behind after clients that leave at random points: no request in flight at either router, none held at the apps', async () => {
    const id = 'tunnel-random-left';
    // A client: its request, and when it leaves: after `afterMs`, or once `readBytes` of the answer came.
    const client = fc.record({
      router: fc.nat(1),
      path: fc.constantFrom('/bytes?n=3000000', '/slow?ms=200', `/hold?id=${id}`, '/count', '/count?pause=300', '/count?close'),
      body: fc.integer({ min: 0, max: 300_000 }),
      leave: fc.oneof(fc.record({ afterMs: fc.integer({ min: 0, max: 100 }) }), fc.record({ readBytes: fc.integer({ min: 0, max: 200_000 }) })),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(client, { minLength: 1, maxLength: 4 }), async (clients) => {
        await Promise.all(clients.map(async (x) => {
          const leaving = new AbortController();
          const post = x.path.startsWith('/count');
          const answer = request(`${routers[x.router]!.r.url}${x.path}`, { method: post ? 'POST' : 'GET', body: post ? Buffer.alloc(x.body, 97) : undefined, headers: { host: HOST }, dispatcher, signal: leaving.signal });
          if ('afterMs' in x.leave) {
            const timer = setTimeout(() => leaving.abort(), x.leave.afterMs);
            await answer.then((res) => res.body.dump(), () => undefined).finally(() => clearTimeout(timer));
            return;
          }
          const readBytes = x.leave.readBytes;
          if (x.path.startsWith('/hold')) {
            await waitFor(async () => (await heldAtMangoApps(id)) > 0, { timeoutMs: 10_000, message: 'the held request at the app' });
            leaving.abort();
            await answer.catch(() => undefined);
            return;
          }
          const res = await answer;
          let got = 0;
          try {
            for await (const chunk of res.body as AsyncIterable<Buffer>) {
              got += chunk.length;
              if (got >= readBytes) break;
            }
          } finally {
            leaving.abort();
          }
        }));
        await waitFor(async () => (await heldAtMangoApps(id)) === 0 && (await metricValue(routers[0]!.r.adminUrl, 'router_requests_in_flight')) === 0 && (await metricValue(routers[1]!.r.adminUrl, 'router_requests_in_flight')) === 0, {
          timeoutMs: 10_000,
          message: 'no request in flight at either router, none held at the apps',
        });
      }),
      { numRuns: 40, seed: 20261130, endOnFailure: true },
    );
  }, 120_000);

  it('carries a WebSocket upgrade with the Host and X-Forwarded-For a direct instance gets', async () => {
    const r = routers[1]!.r;
    const ws = new WebSocket(`ws://127.0.0.1:${r.port}/chat`, { headers: { host: HOST } });
    const messages: string[] = [];
    ws.on('message', (m) => messages.push(m.toString()));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    await waitFor(() => messages.length >= 1 || undefined, { timeoutMs: 5000, message: 'the hello message' });
    const hello = JSON.parse(messages[0]!) as { hello: string; headers: Record<string, string> };
    expect(['t1', 't2']).toContain(hello.hello);
    expect(hello.headers.host).toBe(HOST);
    expect(hello.headers['x-forwarded-for']).toBe('127.0.0.1');
    ws.send('ping through the tunnel');
    await waitFor(() => messages.includes('ping through the tunnel') || undefined, { timeoutMs: 5000, message: 'the echo' });
    ws.close();
  });
});

describe('many streams over one agent', () => {
  it('2,000 concurrent requests over one agent: none refused, bounded router RSS, a stalled reader slows no one', async () => {
    const r = routers[0]!.r;
    const rssMB = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${r.proc.pid}/status`, 'utf8'))![1]) / 1024;
    await putJson(`${prefix}/apps/many`, { routes: [{ host: 'many.mango.com' }] });
    const [app, token] = await Promise.all([startSampleApp({ app: 'many', name: 'm1' }), createToken('many')]);
    startAgent({ app: 'many', id: 'm1', to: app.url, token: token.secret });
    await putJson(`${prefix}/instances/many/m1`, { url: 'tunnel://m1', state: 'ready' });
    await waitForSessions('many', 'm1');
    const before = rssMB();
    const many = new UndiciAgent({ connections: 2100, keepAliveTimeout: 1000 });
    try {
      // A download nobody reads: its stream's window fills and it stops, alone.
      const stalled = await request(`${r.url}/bytes?n=${256 * 1024 * 1024}`, { headers: { host: 'many.mango.com' }, dispatcher: many });
      expect(stalled.statusCode).toBe(200);
      // A request answered before the release failed on its way (it never reached the app).
      const early: string[] = [];
      const held = Array.from({ length: 2000 }, () =>
        request(`${r.url}/hold?id=many`, { headers: { host: 'many.mango.com' }, dispatcher: many }).then(async (res) => {
          const answer = { status: res.statusCode, body: await res.body.text() };
          if (res.statusCode !== 200) early.push(`${answer.status} ${answer.body.slice(0, 80)}`);
          return answer;
        }),
      );
      // All 2,000 reached the app (each on its own stream), then answered at once.
      await waitFor(async () => (early.length > 0 || (await (await fetch(`${app.url}/held?id=many`)).text()) === '2000' ? true : undefined), {
        timeoutMs: 50_000,
        intervalMs: 200,
        message: '2,000 requests held by the app',
      });
      expect(early).toEqual([]);
      const peak = rssMB();
      const released = await request(`${r.url}/release?id=many`, { headers: { host: 'many.mango.com' }, dispatcher });
      expect(await released.body.text()).toBe('released 2000');
      const answers = await Promise.all(held);
      expect(answers.filter((a) => a.status !== 200)).toEqual([]);
      expect(peak - before).toBeLessThan(300);
      // The stalled download still works once read.
      let got = 0;
      for await (const chunk of stalled.body) got += (chunk as Buffer).length;
      expect(got).toBe(256 * 1024 * 1024);
    } finally {
      await many.destroy();
    }
  });
});

describe('tokens', () => {
  /** Starts an agent and returns its exit code and the line it printed on stderr. */
  async function refusedAgent(app: string, token: string): Promise<{ code: number | null; stderr: string }> {
    const agent = startAgent({ app, id: 'x1', to: apps.a1!.url, token });
    const { code } = await agent.exited;
    return { code, stderr: agent.stderr.join('\n') };
  }

  it('refuses bad, unknown, foreign-app, expired and revoked tokens with the reason, on the agent side', async () => {
    await putJson(`${prefix}/apps/other`, { routes: [{ host: 'other.mango.com' }] });
    const [foreign, expired, revoked] = await Promise.all([createToken('other'), createToken('mango', ['--expires', '1ms']), createToken('mango')]);
    expect((await deploy(['tunnel-token', 'rm', 'mango', revoked.tokenId])).code).toBe(0);
    const tokenId = mangoToken.slice(0, mangoToken.indexOf('.'));
    const [bad, unknown, wrongApp, late, gone] = await Promise.all([
      refusedAgent('mango', `${tokenId}.not-the-secret`),
      refusedAgent('mango', 'tdeadbeef00.whatever'),
      refusedAgent('mango', foreign.secret),
      refusedAgent('mango', expired.secret),
      refusedAgent('mango', revoked.secret),
    ]);
    expect(bad).toEqual({ code: 1, stderr: expect.stringContaining(`token ${tokenId}: the secret does not match`) });
    expect(unknown).toEqual({ code: 1, stderr: expect.stringContaining('token tdeadbeef00 is unknown for app mango') });
    expect(wrongApp).toEqual({ code: 1, stderr: expect.stringContaining(`token ${foreign.tokenId} belongs to app other, not mango`) });
    expect(late).toEqual({ code: 1, stderr: expect.stringMatching(new RegExp(`token ${expired.tokenId} expired at `)) });
    expect(gone).toEqual({ code: 1, stderr: expect.stringContaining(`token ${revoked.tokenId} is unknown for app mango (revoked, or never created)`) });
    // A token is never stored: only its hash.
    const stored = await etcdctl(endpoints, ['get', '--prefix', `${prefix}/tunnel-tokens/`]);
    expect(stored).not.toContain(mangoToken.slice(mangoToken.indexOf('.') + 1));
    expect(stored).toMatch(/"sha256":"[0-9a-f]{64}"/);
  });

  it('revoking a token closes its sessions: the presence records go and the agent says why', async () => {
    const token = await createToken('mango');
    const agent = startAgent({ app: 'mango', id: 'rv1', to: apps.a1!.url, token: token.secret });
    await waitForSessions('mango', 'rv1');
    expect((await deploy(['tunnel-token', 'rm', 'mango', token.tokenId])).code).toBe(0);
    const { code } = await agent.exited;
    expect(code).toBe(1);
    expect(agent.stdout.join('\n')).toContain('token revoked');
    await waitFor(async () => (Object.keys(await presence('mango', 'rv1')).length === 0 ? true : undefined), { timeoutMs: 10_000, message: 'rv1 presence gone' });
  });
});

describe('failures', () => {
  it('SIGKILL of an agent mid-download cuts that download only; its presence records go', async () => {
    await putJson(`${prefix}/apps/kill`, { routes: [{ host: 'kill.mango.com' }] });
    const [app, token] = await Promise.all([startSampleApp({ app: 'kill', name: 'k1' }), createToken('kill')]);
    const agent = startAgent({ app: 'kill', id: 'k1', to: app.url, token: token.secret });
    await putJson(`${prefix}/instances/kill/k1`, { url: 'tunnel://k1', state: 'ready' });
    await waitForSessions('kill', 'k1');
    const size = 1024 * 1024 * 1024;
    const down = await request(`${routers[0]!.r.url}/bytes?n=${size}`, { headers: { host: 'kill.mango.com' }, dispatcher });
    expect(down.statusCode).toBe(200);
    const reader = down.body[Symbol.asyncIterator]();
    let got = ((await reader.next()).value as Buffer).length;
    const others = load(HOST, 2);
    agent.kill('SIGKILL');
    await agent.exited;
    let cut: Error | undefined;
    try {
      for (let r = await reader.next(); !r.done; r = await reader.next()) got += (r.value as Buffer).length;
    } catch (err) {
      cut = err as Error;
    }
    // The client sees the cut (an error, never a clean end), well short of the length.
    expect(cut).toBeInstanceOf(Error);
    expect(got).toBeLessThan(size);
    await served(20, others);
    const { failed } = await others.stop();
    expect(failed).toEqual([]);
    await waitFor(async () => (Object.keys(await presence('kill', 'k1')).length === 0 ? true : undefined), { timeoutMs: 10_000, message: 'k1 presence gone' });
  });

  it('SIGSTOP of an agent is noticed by PING within seconds', async () => {
    await putJson(`${prefix}/apps/frozen`, { routes: [{ host: 'frozen.mango.com' }] });
    const token = await createToken('frozen');
    const agent = startAgent({ app: 'frozen', id: 'f1', to: apps.a1!.url, token: token.secret });
    await waitForSessions('frozen', 'f1');
    const stoppedAt = Date.now();
    agent.kill('SIGSTOP');
    await waitFor(async () => (Object.keys(await presence('frozen', 'f1')).length === 0 ? true : undefined), { timeoutMs: 15_000, intervalMs: 100, message: 'f1 presence gone' });
    // PING every second, dropped after 4 s unanswered; the rest is etcd and a loaded machine.
    expect(Date.now() - stoppedAt).toBeLessThan(9000);
    agent.kill('SIGKILL');
  });

  it('paas-deploy redeploy moves an app from a direct instance to a tunnel instance and back under load: 0 failed requests', async () => {
    await putJson(`${prefix}/apps/pear`, { routes: [{ host: 'pear.mango.com' }] });
    const [direct, behind, direct2, token] = await Promise.all([
      startSampleApp({ app: 'pear', name: 'pd1' }),
      startSampleApp({ app: 'pear', name: 'pt1' }),
      startSampleApp({ app: 'pear', name: 'pd2' }),
      createToken('pear'),
    ]);
    await putJson(`${prefix}/instances/pear/pd1`, { url: direct.url, state: 'ready' });
    await waitFor(async () => ((await get(routers[1]!.r, '/', 'pear.mango.com')).status === 200 ? true : undefined), { timeoutMs: 10_000, message: 'pear served' });
    const traffic = load('pear.mango.com');
    await served(30, traffic);
    // paas-deploy redeploy waits, in place of a health check it cannot make, until every live
    // router holds sessions from the new instance's agent; only then are the old ones drained.
    startAgent({ app: 'pear', id: 'pt1', to: behind.url, token: token.secret });
    const toTunnel = await deploy(['redeploy', 'pear', '--url', 'tunnel://pt1', '--drain-timeout', '10s']);
    expect(toTunnel.code, toTunnel.stderr + toTunnel.stdout).toBe(0);
    expect(Object.keys(await presence('pear', 'pt1')).sort()).toEqual(['r1', 'r2']);
    expect((await get(routers[0]!.r, '/', 'pear.mango.com')).headers['x-instance']).toBe('pt1');
    await served(30, traffic);
    const back = await deploy(['redeploy', 'pear', '--url', direct2.url, '--drain-timeout', '10s']);
    expect(back.code, back.stderr + back.stdout).toBe(0);
    expect((await get(routers[1]!.r, '/', 'pear.mango.com')).headers['x-instance']).toBe('pd2');
    await served(30, traffic);
    const { ok, failed } = await traffic.stop();
    expect(failed).toEqual([]);
    expect(ok).toBeGreaterThan(90);
  });

  it('a restarted router gets its sessions back from 100 agents, spread out, without a storm of attempts', async () => {
    await putJson(`${prefix}/apps/storm`, { routes: [{ host: 'storm.mango.com' }] });
    const token = await createToken('storm');
    const fleet = processes.spawn(process.execPath, [`${REPO_ROOT}test/apps/many-agents.mjs`, '--count', '100', '--app', 'storm', '--id-prefix', 's', '--routers', routers.map((x) => `https://127.0.0.1:${x.tunnelPort}`).join(','), '--to', apps.a1!.url, '--ca', ca.certFile], {
      name: '100 agents',
      env: { PAAS_AGENT_TOKEN: token.secret },
    });
    type Counts = { opened: number; failed: number; opens: number[] };
    const counts = (): Counts => JSON.parse(fleet.stdout.at(-1) ?? '{"opened":0,"failed":0,"opens":[]}') as Counts;
    // 100 agents x 2 sessions x 2 routers.
    await waitFor(() => (counts().opened >= 400 ? true : undefined), { timeoutMs: 40_000, message: '400 sessions open' }).catch((err: Error) => {
      throw new Error(`${err.message}: ${fleet.tail(5)}`);
    });
    const before = counts();
    const r2 = routers[1]!;
    await r2.r.proc.stop();
    await waitFor(async () => ((await presence('mango', 't1')).r2 === undefined ? true : undefined), { timeoutMs: 10_000, message: 'r2 presence gone' });
    const linesBefore = fleet.stdout.length;
    routers[1] = await startTunnelRouter('r2', r2.tunnelPort);
    await waitFor(() => (counts().opened >= before.opened + 200 ? true : undefined), { timeoutMs: 40_000, message: '200 sessions back on r2' });
    await Promise.all([waitForSessions('mango', 't1'), waitForSessions('mango', 't2')]);
    expect((await get(routers[1]!.r, '/')).status).toBe(200);
    const after = counts();
    // Each of the 200 sessions tried a few times while r2 was down (backoff 1 s, 2 s, 4 s...), not in a loop.
    expect(after.failed - before.failed).toBeLessThan(200 * 5);
    // The reconnections were spread out (full jitter): no 100 ms holds more than a quarter of them.
    const opens = fleet.stdout.slice(linesBefore).flatMap((l) => (JSON.parse(l) as Counts).opens);
    const perBucket = new Map<number, number>();
    for (const t of opens) perBucket.set(Math.floor(t / 100), (perBucket.get(Math.floor(t / 100)) ?? 0) + 1);
    expect(Math.max(...perBucket.values())).toBeLessThanOrEqual(50);
    fleet.kill('SIGKILL');
  });

  it('SIGTERM on an agent whose streams are idle: the routers close them at once, so it drains cleanly without waiting', async () => {
    // The app announces Keep-Alive: timeout=65 (Node's server), so a router would otherwise hold
    // its idle streams 60 s, past the agent's --drain-timeout, and the drain would end cut.
    const app = await startSampleApp({ app: 'quiet', name: 'q1' });
    await putJson(`${prefix}/apps/quiet`, { routes: [{ host: 'quiet.mango.com' }] });
    await putJson(`${prefix}/instances/quiet/q1`, { url: 'tunnel://q1', state: 'ready' });
    const agent = startAgent({ app: 'quiet', id: 'q1', to: app.url, token: (await createToken('quiet')).secret, extra: ['--drain-timeout', '20s'] });
    await waitForSessions('quiet', 'q1');
    // Concurrent requests through each router: several streams each, all idle once answered.
    for (const { r } of routers) {
      const answers = await Promise.all(Array.from({ length: 4 }, () => get(r, '/slow?ms=50', 'quiet.mango.com')));
      expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
    }
    agent.kill('SIGTERM');
    await waitFor(() => !agent.running, { timeoutMs: 10_000, message: 'the agent to finish its drain' });
    expect((await agent.exited).code).toBe(0);
    expect(agent.stdout.join('\n')).toContain('"clean":true');
  });

  it('SIGTERM on one of two agents under load drains it: 0 failed requests', async () => {
    const traffic = load(HOST);
    await served(50, traffic);
    const agent = mangoAgents[1]!;
    agent.kill('SIGTERM');
    const { code } = await agent.exited;
    expect(code).toBe(0);
    await served(50, traffic);
    const { ok, failed } = await traffic.stop();
    expect(failed).toEqual([]);
    expect(ok).toBeGreaterThan(100);
    expect(agent.stdout.join('\n')).toContain('"clean":true');
  });
});
