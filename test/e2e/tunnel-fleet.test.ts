/**
 * Agent tunnels, the fleet's side: presence records on the router's status lease, the tunnel
 * metrics, the session limits, the portable upstream client with a draining agent, and
 * --listen-tunnel with --workers. Real etcd, routers, paas-agent processes, sample apps,
 * etcdctl, undici and promtool; each part on its own prefix, so each router's agents learn
 * only that router.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Agent as UndiciAgent, request } from 'undici';
import { createCa, type TestCa } from '../harness/pki.js';
import { freePort } from '../harness/ports.js';
import { processes, startRouter, startSampleApp, type ManagedProcess, type RouterProcess, type SampleApp } from '../harness/processes.js';
import { runEtcdctl as etcdctl, uniquePrefix } from '../harness/etcd.js';
import { startLoad, type RequestLoad } from '../harness/load.js';
import { served, waitFor } from '../harness/wait.js';
import { promtool } from '../harness/promtool.js';

const run = promisify(execFile);
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const AGENT_BIN = `${REPO_ROOT}packages/agent/bin/paas-agent.js`;
const DEPLOY_BIN = `${REPO_ROOT}packages/deployer/bin/paas-deploy.js`;
const ROUTER_BIN = `${REPO_ROOT}packages/router/bin/paas-router.js`;
const endpoints = inject('etcdEndpoints');

let ca: TestCa;
let certRecord: string;
const dispatcher = new UndiciAgent({ keepAliveTimeout: 1000, connections: 32 });

interface Fleet {
  prefix: string;
  router: RouterProcess;
  tunnelPort: number;
  id: string;
}

/** A router with a tunnel listener, alone on a new prefix that holds the tunnel certificate. */
async function startFleet(label: string, extraArgs: string[] = []): Promise<Fleet> {
  const prefix = uniquePrefix(label);
  await etcdctl(endpoints, ['put', `${prefix}/certs/tunnel`, certRecord]);
  const tunnelPort = await freePort();
  const id = `${label}-r1`;
  const router = await startRouter({ etcdEndpoints: endpoints, prefix, id, extraArgs: ['--listen-tunnel', `127.0.0.1:${tunnelPort}`, '--tunnel-cert', 'tunnel', '--lease-ttl', '3s', ...extraArgs] });
  return { prefix, router, tunnelPort, id };
}

async function deploy(f: Fleet, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [DEPLOY_BIN, '--etcd', endpoints.join(','), '--prefix', f.prefix, ...args], { timeout: 15_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** An app with one host, a token for it and a sample app instance; the secret is create's last line. */
async function setUpApp(f: Fleet, app: string): Promise<{ secret: string; host: string }> {
  const host = `${app}.tunnel.example`;
  await etcdctl(endpoints, ['put', `${f.prefix}/apps/${app}`, JSON.stringify({ routes: [{ host }] })]);
  const out = await deploy(f, ['tunnel-token', 'create', app]);
  expect(out.code, out.stderr).toBe(0);
  return { secret: out.stdout.trim().split('\n').at(-1)!, host };
}

function startAgent(f: Fleet, opts: { app: string; id: string; to: string; token: string; extra?: string[] }): ManagedProcess {
  return processes.spawn(process.execPath, [AGENT_BIN, '--routers', `https://127.0.0.1:${f.tunnelPort}`, '--app', opts.app, '--id', opts.id, '--to', opts.to, '--ca', ca.certFile, ...(opts.extra ?? [])], {
    name: `agent ${opts.app}/${opts.id}`,
    env: { PAAS_AGENT_TOKEN: opts.token },
  });
}

async function instance(f: Fleet, app: string, id: string): Promise<void> {
  await etcdctl(endpoints, ['put', `${f.prefix}/instances/${app}/${id}`, JSON.stringify({ url: `tunnel://${id}`, state: 'ready' })]);
}

/** Sessions the fleet's router holds from the agent of `app/id`, as its presence record says (0: none). */
async function sessionsHeld(f: Fleet, app: string, id: string): Promise<number> {
  const out = await etcdctl(endpoints, ['get', '--print-value-only', `${f.prefix}/tunnels/${app}/${id}/${f.id}`]);
  return out.trim() === '' ? 0 : (JSON.parse(out) as { connections: number }).connections;
}

async function waitForSessions(f: Fleet, app: string, id: string, n: number, timeoutMs = 20_000): Promise<void> {
  await waitFor(async () => ((await sessionsHeld(f, app, id)) === n ? true : undefined), { timeoutMs, message: `${app}/${id}: ${n} sessions on ${f.id}` });
}

/** The lease a key is on, as etcd prints it (a 64-bit number: kept as text). */
async function leaseOf(key: string): Promise<string> {
  const out = await etcdctl(endpoints, ['get', key, '-w', 'fields']);
  const m = /"Lease" : (\d+)/.exec(out);
  if (m === null) throw new Error(`${key}: no such key`);
  return m[1]!;
}

async function metricsText(r: RouterProcess): Promise<string> {
  const res = await request(`${r.adminUrl}/metrics`);
  return res.body.text();
}

/** The value of one series (`name{labels}` exactly as exposed), or undefined when absent. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  return undefined;
}


/** Requests to `host` (GETs and, with `posts`, POSTs with a body: never retried) until stopped. */
function load(r: RouterProcess, host: string, opts: { concurrency?: number; posts?: boolean } = {}): RequestLoad {
  const body = Buffer.alloc(4096, 1);
  return startLoad(async (i) => {
    const post = opts.posts === true && i % 2 === 0;
    try {
      const res = post
        ? await request(`${r.url}/count`, { method: 'POST', headers: { host }, body, dispatcher })
        : await request(`${r.url}/n${i}`, { headers: { host }, dispatcher });
      const text = await res.body.text();
      if (res.statusCode === 200 && (!post || (JSON.parse(text) as { bytes: number }).bytes === 4096)) return undefined;
      return `${post ? 'POST' : 'GET'} ${res.statusCode} ${text.slice(0, 120)}`;
    } catch (err) {
      return `${post ? 'POST' : 'GET'} ${(err as Error).message}`;
    }
  }, opts.concurrency ?? 6);
}


beforeAll(async () => {
  ca = await createCa();
  const cert = await ca.issue({ dns: ['localhost'], ip: ['127.0.0.1'] });
  certRecord = JSON.stringify({ cert: cert.certPem, key: cert.keyPem });
});

afterAll(async () => {
  await dispatcher.close();
});

describe('presence records on the router\'s lease', () => {
  let f: Fleet;
  let app: SampleApp;
  let secret: string;

  beforeAll(async () => {
    f = await startFleet('presence');
    [app, { secret }] = await Promise.all([startSampleApp({ app: 'pres', name: 'p1' }), setUpApp(f, 'pres')]);
  });

  it('a presence record is on the router\'s status lease; an agent that dies takes its record with it at once', async () => {
    const agent = startAgent(f, { app: 'pres', id: 'p1', to: app.url, token: secret });
    await waitForSessions(f, 'pres', 'p1', 2);
    expect(await leaseOf(`${f.prefix}/tunnels/pres/p1/${f.id}`)).toBe(await leaseOf(`${f.prefix}/routers/${f.id}`));
    const killedAt = Date.now();
    agent.kill('SIGKILL');
    await waitForSessions(f, 'pres', 'p1', 0, 10_000);
    // Deleted when the sessions close, not left to a lease: the router's lease (3 s) lives on.
    expect(Date.now() - killedAt).toBeLessThan(4000);
    expect(await leaseOf(`${f.prefix}/routers/${f.id}`)).toMatch(/^\d+$/);
  });

  it('SIGKILL of the router: its presence records go with its status record, in the same etcd revision, when its lease ends', async () => {
    startAgent(f, { app: 'pres', id: 'p2', to: app.url, token: secret });
    await waitForSessions(f, 'pres', 'p2', 2);
    const statusKey = `${f.prefix}/routers/${f.id}`;
    const presenceKey = `${f.prefix}/tunnels/pres/p2/${f.id}`;
    const killedAt = Date.now();
    f.router.proc.kill('SIGKILL');
    // Each read sees one revision: the two keys are there together or gone together.
    const seen: string[] = [];
    await waitFor(async () => {
      const keys = (await etcdctl(endpoints, ['get', '--prefix', '--keys-only', `${f.prefix}/`])).split('\n').filter(Boolean);
      const state = `${keys.includes(statusKey) ? 'status' : '-'}/${keys.includes(presenceKey) ? 'presence' : '-'}`;
      if (seen.at(-1) !== state) seen.push(state);
      return state === '-/-' ? true : undefined;
    }, { timeoutMs: 15_000, intervalMs: 20, message: 'the status and presence records gone' });
    expect(seen).toEqual(['status/presence', '-/-']);
    // Gone with the lease (3 s), not before: nobody deleted them.
    expect(Date.now() - killedAt).toBeGreaterThan(1500);
  });
});

describe('limits on agent sessions', () => {
  const limitAgents: { b1?: ManagedProcess } = {};
  let f: Fleet;
  let app: SampleApp;
  let secret: string;
  let host: string;

  beforeAll(async () => {
    f = await startFleet('limits', ['--tunnel-max-sessions', '3', '--tunnel-max-sessions-per-instance', '2']);
    [app, { secret, host }] = await Promise.all([startSampleApp({ app: 'lim', name: 'l1' }), setUpApp(f, 'lim')]);
  });

  it('refuses sessions past --tunnel-max-sessions-per-instance and --tunnel-max-sessions with the reason the agent logs; the agents keep running and retry', async () => {
    // a1 asks for 3 sessions: 2 are allowed per instance.
    const a1 = startAgent(f, { app: 'lim', id: 'a1', to: app.url, token: secret, extra: ['--sessions', '3'] });
    await waitForSessions(f, 'lim', 'a1', 2);
    await a1.waitForLine((l) => l.includes('refused for now: instance lim/a1 already holds 2 sessions to this router') && l.includes('--tunnel-max-sessions-per-instance'), { timeoutMs: 15_000 });
    // b1 asks for 2: the router holds 3 at most, so it gets 1.
    const b1 = startAgent(f, { app: 'lim', id: 'b1', to: app.url, token: secret });
    limitAgents.b1 = b1;
    await waitForSessions(f, 'lim', 'b1', 1);
    await b1.waitForLine((l) => l.includes('refused for now: this router holds its maximum of 3 tunnel sessions (--tunnel-max-sessions)'), { timeoutMs: 15_000 });
    await instance(f, 'lim', 'b1');
    await waitFor(async () => {
      const res = await request(`${f.router.url}/`, { headers: { host }, dispatcher });
      await res.body.dump();
      return res.statusCode === 200 ? true : undefined;
    }, { timeoutMs: 10_000, message: 'lim served through b1' });
    expect(a1.running && b1.running).toBe(true);
    const metrics = await metricsText(f.router);
    expect(sample(metrics, 'router_tunnel_sessions')).toBe(3);
    expect(sample(metrics, 'router_tunnel_agents_refused_total{reason="instance_full"}')).toBeGreaterThanOrEqual(1);
    expect(sample(metrics, 'router_tunnel_agents_refused_total{reason="router_full"}')).toBeGreaterThanOrEqual(1);
    // Room again: b1's retrying slot gets its session.
    await a1.stop();
    await waitForSessions(f, 'lim', 'b1', 2, 20_000);
    expect(await sessionsHeld(f, 'lim', 'a1')).toBe(0);
  });

  it('a request outlasting the PING timeout (4 s) finishes while its agent drains: a draining session is not dropped for PINGs Node cancels', async () => {
    const b1 = limitAgents.b1!;
    const held = request(`${f.router.url}/hold?id=drain`, { headers: { host }, dispatcher }).then(async (res) => ({ status: res.statusCode, body: await res.body.text() }));
    await waitFor(async () => ((await (await fetch(`${app.url}/held?id=drain`)).text()) === '1' ? true : undefined), { timeoutMs: 10_000, message: 'the request held by the app' });
    const termAt = Date.now();
    b1.kill('SIGTERM');
    await b1.waitForLine((l) => l.includes('draining'), { timeoutMs: 5000 });
    // Past the router's PING timeout (4 s) plus a sweep, the held request is still open.
    await waitFor(() => (Date.now() - termAt > 5500 ? true : undefined), { timeoutMs: 10_000, intervalMs: 100, message: 'the PING timeout passed' });
    expect(b1.running, `${b1.tail(12)}\n${f.router.proc.tail(8)}`).toBe(true);
    await fetch(`${app.url}/release?id=drain`);
    expect(await held).toEqual({ status: 200, body: expect.stringContaining('"held":"drain"') });
    expect((await b1.exited).code).toBe(0);
    expect(b1.stdout.join('\n')).toContain('"clean":true');
    expect(sample(await metricsText(f.router), 'router_tunnel_session_closes_total{reason="ping_timeout"}')).toBe(0);
  });
});

describe('tunnel metrics', () => {
  let f: Fleet;
  let app: SampleApp;
  let secret: string;
  let host: string;

  beforeAll(async () => {
    f = await startFleet('tmetrics');
    [app, { secret, host }] = await Promise.all([startSampleApp({ app: 'met', name: 'm1' }), setUpApp(f, 'met')]);
  });

  it('counts sessions, streams, bytes, opens and closes by reason, refused agents and streams by reason; a fixed set of series that promtool accepts', async () => {
    const base = await metricsText(f.router);
    const seriesOf = (text: string) => text.split('\n').filter((l) => l.startsWith('router_tunnel_')).map((l) => l.slice(0, l.lastIndexOf(' ')));
    expect(sample(base, 'router_tunnel_sessions')).toBe(0);

    // A tunnel instance whose agent is not connected: no session on this router, and it is the last instance: 503 with Retry-After (contract).
    await instance(f, 'met', 'ghost');
    await waitFor(async () => {
      const res = await request(`${f.router.url}/`, { headers: { host }, dispatcher });
      await res.body.dump();
      return res.statusCode === 503 && res.headers['retry-after'] !== undefined ? true : undefined;
    }, { timeoutMs: 10_000, message: 'the ghost instance answered 503 with Retry-After' });
    await etcdctl(endpoints, ['del', `${f.prefix}/instances/met/ghost`]);

    // An agent with a wrong secret: refused, counted by reason.
    const tokenId = secret.slice(0, secret.indexOf('.'));
    const bad = startAgent(f, { app: 'met', id: 'x1', to: app.url, token: `${tokenId}.wrong` });
    expect((await bad.exited).code).toBe(1);

    const agents = [startAgent(f, { app: 'met', id: 'm1', to: app.url, token: secret }), startAgent(f, { app: 'met', id: 'm2', to: app.url, token: secret })];
    await instance(f, 'met', 'm1');
    await instance(f, 'met', 'm2');
    await Promise.all([waitForSessions(f, 'met', 'm1', 2), waitForSessions(f, 'met', 'm2', 2)]);
    const size = 8 * 1024 * 1024;
    const down = await request(`${f.router.url}/bytes?n=${size}`, { headers: { host }, dispatcher });
    // While the download is open (unread), its stream is counted.
    const during = await metricsText(f.router);
    expect(sample(during, 'router_tunnel_streams')).toBeGreaterThanOrEqual(1);
    let got = 0;
    for await (const chunk of down.body) got += (chunk as Buffer).length;
    expect(got).toBe(size);
    const up = await request(`${f.router.url}/count`, { method: 'POST', headers: { host }, body: Buffer.alloc(size, 3), dispatcher });
    expect((JSON.parse(await up.body.text()) as { bytes: number }).bytes).toBe(size);

    agents[0]!.kill('SIGKILL');
    await waitForSessions(f, 'met', 'm1', 0, 10_000);
    await agents[1]!.stop();
    await waitForSessions(f, 'met', 'm2', 0, 10_000);

    const text = await metricsText(f.router);
    expect(sample(text, 'router_tunnel_sessions')).toBe(0);
    expect(sample(text, 'router_tunnel_streams')).toBe(0);
    expect(sample(text, 'router_tunnel_session_opens_total')).toBe(4);
    expect(sample(text, 'router_tunnel_session_closes_total{reason="connection_lost"}')).toBe(2);
    expect(sample(text, 'router_tunnel_session_closes_total{reason="agent_closed"}')).toBe(2);
    // One per session slot that said Hello before the agent exited on the first refusal.
    expect([1, 2]).toContain(sample(text, 'router_tunnel_agents_refused_total{reason="secret_mismatch"}'));
    expect(sample(text, 'router_tunnel_streams_refused_total{reason="no_session"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'router_tunnel_bytes_total{direction="from_agents"}')).toBeGreaterThan(size);
    expect(sample(text, 'router_tunnel_bytes_total{direction="to_agents"}')).toBeGreaterThan(size);
    // The same series before any agent and after two agents, three instances and every reason.
    expect(seriesOf(text)).toEqual(seriesOf(base));
    const checked = await promtool(text);
    expect(checked.output).toBe('');
    expect(checked.code).toBe(0);
  });
});

describe('the portable upstream client and a draining agent', () => {
  it('SIGTERM on one of two agents under GET and POST load: its sessions are not reused, 0 failed requests, the agent drains cleanly', async () => {
    const f = await startFleet('portable', ['--upstream-client', 'portable']);
    const [a1, a2, { secret, host }] = await Promise.all([startSampleApp({ app: 'port', name: 'q1' }), startSampleApp({ app: 'port', name: 'q2' }), setUpApp(f, 'port')]);
    const g1 = startAgent(f, { app: 'port', id: 'q1', to: a1.url, token: secret });
    const g2 = startAgent(f, { app: 'port', id: 'q2', to: a2.url, token: secret, extra: ['--drain-timeout', '10s'] });
    await instance(f, 'port', 'q1');
    await instance(f, 'port', 'q2');
    await Promise.all([waitForSessions(f, 'port', 'q1', 2), waitForSessions(f, 'port', 'q2', 2)]);
    const traffic = load(f.router, host, { posts: true });
    await served(100, traffic).catch(async (err: Error) => {
      throw new Error(`${err.message}: ${(await traffic.stop()).failed.slice(0, 5).join('; ')}\n${f.router.proc.tail(15)}`);
    });
    const termAt = Date.now();
    g2.kill('SIGTERM');
    const { code } = await g2.exited;
    const drainMs = Date.now() - termAt;
    expect(code).toBe(0);
    await served(100, traffic);
    const { ok, failed } = await traffic.stop();
    expect(failed).toEqual([]);
    expect(ok).toBeGreaterThan(200);
    // Drained, not cut at --drain-timeout: the router stopped reusing its streams.
    expect(g2.stdout.join('\n')).toContain('"clean":true');
    expect(drainMs).toBeLessThan(10_000);
    expect(g1.running).toBe(true);
  });
});

describe('--listen-tunnel with --workers', () => {
  it('is refused at start-up with one line and exit code 2', async () => {
    const port = await freePort();
    const result = await run(process.execPath, [ROUTER_BIN, '--etcd', endpoints.join(','), '--id', 'w', '--workers', '2', '--listen-tunnel', `127.0.0.1:${port}`, '--tunnel-cert', 'tunnel'], { timeout: 15_000 }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code?: number; stderr?: string }) => ({ code: err.code, stderr: err.stderr ?? '' }),
    );
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain('--listen-tunnel cannot be combined with --workers');
  });
});
