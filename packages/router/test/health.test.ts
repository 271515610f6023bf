import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AppRecord } from '@paas/registry';
import { afterEach, describe, expect, it } from 'vitest';
import { ActiveHealthChecker } from '../src/health/active.js';
import { createUpstreamClient } from '../src/transport/select-client.js';
import type { UpstreamClient, UpstreamExchange } from '../src/transport/upstream.js';
import { recordFailure, recordSuccess } from '../src/health/passive.js';
import { Backend } from '../src/table/backend.js';
import { RoutingTable } from '../src/table/routing-table.js';
import { backendByKey } from './support/table-lookup.js';

describe('passive health', () => {
  it('says when an ejection begins (once per ejection) and when the instance is back, keeping since-when and reason for the report', () => {
    const b = new Backend('web', 'w1', 'http://127.0.0.1:8001');
    const table = new RoutingTable();
    expect(recordSuccess(b)).toBe(false);
    expect(recordFailure(b, 5000, 'ECONNREFUSED')).toBe(true);
    expect(recordFailure(b, 5100, 'ECONNRESET')).toBe(false);
    expect([b.ejectedSince, b.ejectReason]).toEqual([5000, 'ECONNREFUSED']);
    // A second ejection after the first ran out keeps the run's start, with the newest reason.
    expect(recordFailure(b, 7000, 'ECONNRESET')).toBe(true);
    expect([b.ejectedSince, b.ejectReason]).toEqual([5000, 'ECONNRESET']);
    table.noteUnhealthy(b);
    // Not in the table: not listed (the set forgets it).
    expect([...table.unhealthyBackends(7100)]).toEqual([]);
    expect(recordSuccess(b)).toBe(true);
    expect([b.ejectedSince, b.ejectReason, b.ejectedUntil]).toEqual([0, '', 0]);
  });

  it('ejects for 1 s, doubling per consecutive failure (each after the last ejection ran out) up to 30 s', () => {
    const b = new Backend('web', 'w1', 'http://127.0.0.1:8001');
    let now = 1_000_000;
    const ejections = Array.from({ length: 8 }, () => {
      recordFailure(b, now, 'refused');
      const ms = b.ejectedUntil - now;
      now = b.ejectedUntil;
      return ms;
    });
    expect(ejections).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    expect(b.consecutiveFailures).toBe(8);
    expect(b.isAvailable(now - 1)).toBe(false);
    expect(b.isAvailable(now)).toBe(true);
  });

  it('counts a burst of concurrent failures as one ejection', () => {
    const b = new Backend('web', 'w1', 'http://127.0.0.1:8001');
    for (let i = 0; i < 10; i++) recordFailure(b, 5000 + i, 'refused');
    expect(b.consecutiveFailures).toBe(1);
    expect(b.ejectedUntil).toBe(6000);
  });

  it('forgets the failures after a success', () => {
    const b = new Backend('web', 'w1', 'http://127.0.0.1:8001');
    recordFailure(b, 5000, 'refused');
    recordFailure(b, 5000, 'refused');
    recordSuccess(b);
    expect(b.consecutiveFailures).toBe(0);
    expect(b.isAvailable(5000)).toBe(true);
    recordFailure(b, 7000, 'refused');
    expect(b.ejectedUntil).toBe(8000);
  });
});

/** A local instance whose health answer the test flips; counts the probes it gets. */
interface FakeInstance {
  origin: string;
  status: number;
  /** When true, requests are left unanswered (a timeout). */
  hang: boolean;
  probes: number;
  server: Server;
}

async function startInstance(): Promise<FakeInstance> {
  const instance = { origin: '', status: 200, hang: false, probes: 0 } as FakeInstance;
  instance.server = createServer((req, res) => {
    if (req.url === '/hc') instance.probes++;
    if (instance.hang) return;
    res.statusCode = req.url === '/hc' ? instance.status : 404;
    res.end('x');
  });
  await new Promise<void>((resolve) => instance.server.listen(0, '127.0.0.1', resolve));
  instance.origin = `http://127.0.0.1:${(instance.server.address() as AddressInfo).port}`;
  return instance;
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The traffic's client, as the router builds it; the checks go through it. */
function upstreamClient(kind: 'native' | 'portable'): UpstreamClient {
  const client = createUpstreamClient(kind, { connectTimeoutMs: 1000, upstreamTimeoutMs: 5000, keepAliveTimeoutMs: 4000, keepAliveMaxTimeoutMs: 60_000 }, { warn: () => {} });
  if (client.kind !== kind) throw new Error(`asked for ${kind}, got ${client.kind}`);
  return client;
}

describe.each(['native', 'portable'] as const)('ActiveHealthChecker through the %s upstream client', (kind) => {
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    for (const cleanup of cleanups.splice(0)) cleanup();
  });

  function newClient(): UpstreamClient {
    const client = upstreamClient(kind);
    cleanups.push(() => void client.close());
    return client;
  }

  async function setup(record: AppRecord) {
    const [ready, starting, draining] = [await startInstance(), await startInstance(), await startInstance()];
    let table = new RoutingTable();
    table.setApp('web', record, 1n);
    table.setInstance('web', 'ready', { url: ready.origin, state: 'ready' });
    table.setInstance('web', 'starting', { url: starting.origin, state: 'starting' });
    table.setInstance('web', 'draining', { url: draining.origin, state: 'draining' });
    const changes: string[] = [];
    const logs: string[] = [];
    const logger = { warn: (_: object, msg: string) => logs.push(msg), info: (_: object, msg: string) => logs.push(msg) };
    const client = newClient();
    const checker = new ActiveHealthChecker({ getTable: () => table, client, logger, onChange: (b) => changes.push(`${b.id}=${b.checkHealthy}`) });
    cleanups.push(() => {
      checker.stop();
      for (const s of [ready, starting, draining]) stopServer(s.server);
    });
    const backend = (id: string) => backendByKey(table, `web/${id}`)!;
    return {
      ready, starting, draining, checker, client, changes, logs, backend,
      get table() { return table; },
      set table(t: RoutingTable) { table = t; },
    };
  }

  const checked: AppRecord = { routes: [{ host: 'web.io' }], healthCheck: { path: '/hc', intervalMs: 100, timeoutMs: 300 } };

  it('marks ready and starting instances unhealthy after two failed probes and healthy after one success', async () => {
    const t = await setup(checked);
    t.checker.sync();
    await waitFor(() => t.ready.probes >= 1 && t.starting.probes >= 1, 'first probes');
    expect(t.backend('ready').checkHealthy).toBe(true);

    t.ready.status = 500;
    t.starting.status = 503;
    const probesAtFlip = t.ready.probes;
    await waitFor(() => !t.backend('ready').checkHealthy && !t.backend('starting').checkHealthy, 'unhealthy verdicts');
    expect(t.ready.probes - probesAtFlip).toBeGreaterThanOrEqual(2);
    expect(t.changes.sort()).toEqual(['ready=false', 'starting=false']);
    expect(t.logs).toContain('instance fails its health check');

    t.ready.status = 204;
    await waitFor(() => t.backend('ready').checkHealthy, 'recovery');
    expect(t.backend('starting').checkHealthy).toBe(false);
    expect(t.changes).toContain('ready=true');
    expect(t.draining.probes).toBe(0);
  });

  it('fails an instance that does not answer within timeoutMs', async () => {
    const t = await setup(checked);
    t.ready.hang = true;
    t.checker.sync();
    await waitFor(() => !t.backend('ready').checkHealthy, 'timeout verdict');
    expect(t.backend('starting').checkHealthy).toBe(true);
  });

  it('probes over the traffic client\'s keep-alive connections, and stop() gives up probes in flight', async () => {
    const t = await setup(checked);
    let connections = 0;
    t.ready.server.on('connection', () => connections++);
    t.checker.sync();
    await waitFor(() => t.ready.probes >= 4, 'four probes');
    expect(connections).toBe(1);

    t.ready.hang = true;
    const slow: AppRecord = { routes: [{ host: 'web.io' }], healthCheck: { path: '/hc', intervalMs: 100, timeoutMs: 30_000 } };
    t.table.setApp('web', slow, 1n);
    t.checker.sync();
    const probes = t.ready.probes;
    await waitFor(() => t.ready.probes > probes, 'a probe that hangs');
    t.checker.stop();
    // Nothing is left waiting on the hanging instance: the client closes at once.
    const closing = Date.now();
    await t.client.close();
    expect(Date.now() - closing).toBeLessThan(5000);
    expect(t.backend('ready').checkHealthy).toBe(true);
  });

  it('sees what traffic sees on an https instance with a self-signed certificate', async (ctx) => {
    let dir: string | undefined;
    try {
      dir = mkdtempSync(join(tmpdir(), 'health-tls-'));
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    } catch {
      if (dir) rmSync(dir, { recursive: true, force: true });
      ctx.skip();
      return;
    }
    let probes = 0;
    const tls = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (_req, res) => {
      probes++;
      res.end('ok');
    });
    rmSync(dir, { recursive: true, force: true });
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
    cleanups.push(() => {
      tls.closeAllConnections();
      tls.close();
    });
    const origin = `https://127.0.0.1:${(tls.address() as AddressInfo).port}`;
    const table = new RoutingTable();
    table.setApp('secure', { routes: [{ host: 'secure.io' }], healthCheck: { path: '/hc', intervalMs: 100, timeoutMs: 1000 } }, 1n);
    table.setInstance('secure', 's1', { url: origin, state: 'ready' });
    const reasons: unknown[] = [];
    const client = newClient();
    const checker = new ActiveHealthChecker({ getTable: () => table, client, logger: { warn: (obj) => reasons.push((obj as { reason?: unknown }).reason), info: () => {} } });
    cleanups.push(() => checker.stop());
    checker.sync();
    await waitFor(() => backendByKey(table, 'secure/s1')!.checkHealthy === false, 'unhealthy verdict');

    // A request through the same client fails the same way.
    const traffic = await new Promise<Error>((resolve) => {
      const ex: UpstreamExchange = {
        method: 'GET', path: '/', headers: [], hasHost: false, body: null, chunked: false, upstream: null,
        onHeaders: () => resolve(new Error('answered')), onData: () => true, onComplete: () => {}, onError: resolve,
      };
      client.request(origin, ex);
    });
    expect((traffic as Error & { code?: string }).code).toBe('DEPTH_ZERO_SELF_SIGNED_CERT');
    expect(reasons).toEqual([traffic.message]);
    expect(probes).toBe(0);
  });

  it('leaves apps without a healthCheck alone, and clears verdicts when the check is removed', async () => {
    const t = await setup(checked);
    t.ready.status = 500;
    t.checker.sync();
    await waitFor(() => !t.backend('ready').checkHealthy, 'unhealthy verdict');

    t.table.setApp('web', { routes: [{ host: 'web.io' }] }, 1n);
    t.checker.sync();
    expect(t.backend('ready').checkHealthy).toBe(true);

    const other = await startInstance();
    cleanups.push(() => stopServer(other.server));
    t.table.setApp('plain', { routes: [] }, 2n);
    t.table.setInstance('plain', 'p1', { url: other.origin, state: 'ready' });
    t.table.setApp('probed', { routes: [], healthCheck: { path: '/hc', intervalMs: 100 } }, 3n);
    t.table.setInstance('probed', 'q1', { url: t.starting.origin, state: 'ready' });
    t.checker.sync();
    const before = t.starting.probes;
    await waitFor(() => t.starting.probes >= before + 2, 'probes of the other app');
    expect(other.probes).toBe(0);
  });

  it('follows a table swap and probes the new backends', async () => {
    const t = await setup(checked);
    t.checker.sync();
    await waitFor(() => t.ready.probes >= 1, 'first probe');
    const moved = await startInstance();
    cleanups.push(() => stopServer(moved.server));
    moved.status = 500;
    const next = new RoutingTable();
    next.setApp('web', checked, 1n);
    next.setInstance('web', 'ready', { url: moved.origin, state: 'ready' });
    t.table = next;
    t.checker.sync();
    await waitFor(() => backendByKey(next, 'web/ready')!.checkHealthy === false, 'verdict on the new backend');
    expect(moved.probes).toBeGreaterThanOrEqual(2);
  });

  it('stops probing after stop()', async () => {
    const t = await setup(checked);
    // A second checker on another app tells when enough rounds have passed.
    const clock = await startInstance();
    cleanups.push(() => stopServer(clock.server));
    const clockTable = new RoutingTable();
    clockTable.setApp('clock', checked, 1n);
    clockTable.setInstance('clock', 'c1', { url: clock.origin, state: 'ready' });
    const clockChecker = new ActiveHealthChecker({ getTable: () => clockTable, client: t.client });
    cleanups.push(() => clockChecker.stop());
    t.checker.sync();
    clockChecker.sync();
    await waitFor(() => t.ready.probes >= 1, 'first probe');

    t.checker.stop();
    t.ready.status = 500;
    t.checker.sync();
    const probes = t.ready.probes;
    const ticks = clock.probes;
    await waitFor(() => clock.probes >= ticks + 4, 'four more rounds of the other checker');
    // A probe in flight when stop() ran may still land, but no verdict follows from it.
    expect(t.ready.probes - probes).toBeLessThanOrEqual(1);
    expect(t.backend('ready').checkHealthy).toBe(true);
  });
});

function stopServer(server: Server): void {
  server.closeAllConnections();
  server.close();
}
