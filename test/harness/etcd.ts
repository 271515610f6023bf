/**
 * Real etcd for tests, never a mock.
 *
 * - The integration project's globalSetup starts ONE shared etcd (startSharedEtcd) and hands its
 *   endpoints to the tests: `sharedEtcdEndpoints()` (or `inject('etcdEndpoints')`), with a
 *   `uniquePrefix()` per test so files running in parallel never see each other's keys.
 * - A test that must stop, restart or kill etcd starts its own with `startEtcd()`.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import type {} from './global-setup.js'; // the ProvidedContext typing of inject('etcdEndpoints')
import { EtcdServerProcess } from './etcd-process.js';
import { freePorts } from './ports.js';
import { waitFor } from './wait.js';

const INSTALL_HINT =
  'install etcd (Debian/Ubuntu: `apt-get install etcd-server etcd-client`, or scripts/ensure-etcd.sh), ' +
  'or set ETCD_ENDPOINTS=http://host:port to use a running one';

/** An etcd server run by a test: stop it, restart it on the same ports and data, kill it. */
export interface EtcdProcess {
  /** Client URLs, e.g. ["http://127.0.0.1:41234"]; the same after restart(). */
  readonly endpoints: string[];
  /** The pid of the running server (a new one after restart()); undefined while stopped. */
  readonly pid: number | undefined;
  readonly running: boolean;
  readonly dataDir: string;
  /** SIGTERM, then resolves once the process has exited. A no-op when already stopped. */
  stop(): Promise<void>;
  /** Stops it if running, starts it again with the same ports and data dir, resolves once healthy. */
  restart(): Promise<void>;
  /**
   * Sends `signal` (default SIGKILL). Resolves once the process has exited, except for
   * SIGSTOP/SIGCONT (freezing the server to simulate a hang), which resolve at once.
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Runs the real etcdctl (ETCDCTL_API=3) against this server; resolves with its stdout. */
  etcdctl(...args: string[]): Promise<string>;
  /** Stops the server and deletes its data dir. */
  cleanup(): Promise<void>;
}

export interface StartEtcdOptions {
  /** More etcd flags, e.g. ['--experimental-watch-progress-notify-interval=500ms']. */
  extraArgs?: string[];
  /** How long to wait for the server to become healthy (default 20 000 ms). */
  startTimeoutMs?: number;
  /**
   * Serve clients over TLS only, asking each for a certificate signed by `trustedCaFile`
   * (--client-cert-auth). Endpoints are then https://localhost:<port> (the server certificate
   * needs DNS:localhost); health is checked on a plain-HTTP metrics listener.
   */
  tls?: { certFile: string; keyFile: string; trustedCaFile: string };
}

/** Starts a single-member etcd from the local binary, on free loopback ports and a temporary data dir. */
export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdProcess> {
  const etcdBin = findOnPath('etcd');
  if (!etcdBin) throw new Error(`no etcd binary on PATH: ${INSTALL_HINT}`);
  // Another process can take a port between picking and binding it: pick again then.
  for (let attempt = 1; ; attempt++) {
    const [clientPort, peerPort, metricsPort] = (await freePorts(3)) as [number, number, number];
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'paas-etcd-'));
    const server = new LocalEtcd(etcdBin, dataDir, clientPort, peerPort, metricsPort, opts);
    try {
      await server.launch();
      return server;
    } catch (err) {
      await server.cleanup();
      if (attempt < 3 && /address already in use/.test(String(err))) continue;
      throw err;
    }
  }
}

/** The shared etcd of a test run, as the integration globalSetup starts it. */
export interface SharedEtcd {
  endpoints: string[];
  /** Where it came from, for the log line. */
  source: string;
  stop(): Promise<void>;
}

/**
 * The etcd shared by a whole test run, picked in this order: ETCD_ENDPOINTS (comma-separated
 * URLs) if set; else the local etcd binary on free ports; else a testcontainers etcd when a
 * Docker engine is reachable; else an error saying how to get etcd.
 */
export async function startSharedEtcd(): Promise<SharedEtcd> {
  const fromEnv = parseEndpoints(process.env.ETCD_ENDPOINTS);
  if (fromEnv.length > 0) {
    return { endpoints: fromEnv, source: 'ETCD_ENDPOINTS', stop: async () => {} };
  }
  if (findOnPath('etcd')) {
    const etcd = await startEtcd();
    return { endpoints: etcd.endpoints, source: `local etcd (pid ${etcd.pid}, data ${etcd.dataDir})`, stop: () => etcd.cleanup() };
  }
  const container = await startContainerEtcd();
  if (container) return container;
  throw new Error(`no etcd for the tests: ${INSTALL_HINT} (no Docker engine is reachable for testcontainers either)`);
}

/**
 * The shared etcd's endpoints inside a test: what the globalSetup provided, else ETCD_ENDPOINTS.
 */
export function sharedEtcdEndpoints(): string[] {
  const provided = inject('etcdEndpoints');
  if (provided && provided.length > 0) return provided;
  const fromEnv = parseEndpoints(process.env.ETCD_ENDPOINTS);
  if (fromEnv.length > 0) return fromEnv;
  throw new Error('no shared etcd: run the file in the "integration" vitest project (its globalSetup starts one) or set ETCD_ENDPOINTS');
}

/**
 * A key prefix no other test uses, valid for KeyLayout/--prefix: "/t/<label>-<random>".
 * Pass a label (the test's name) so leftovers in a shared etcd say where they came from.
 */
export function uniquePrefix(label = 'test'): string {
  const slug = label.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40) || 'test';
  return `/t/${slug}-${randomBytes(4).toString('hex')}`;
}

function parseEndpoints(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

class LocalEtcd implements EtcdProcess {
  readonly endpoints: string[];
  private readonly server: EtcdServerProcess;

  constructor(
    etcdBin: string,
    readonly dataDir: string,
    private readonly clientPort: number,
    private readonly peerPort: number,
    private readonly metricsPort: number,
    private readonly opts: StartEtcdOptions,
  ) {
    this.endpoints = [opts.tls ? `https://localhost:${clientPort}` : `http://127.0.0.1:${clientPort}`];
    this.server = new EtcdServerProcess('etcd', etcdBin);
  }

  get pid(): number | undefined {
    return this.server.pid;
  }

  get running(): boolean {
    return this.server.running;
  }

  /** Spawns the server and resolves once /health says it is healthy; rejects if it exits first. */
  async launch(): Promise<void> {
    const { tls } = this.opts;
    const clientUrl = `${tls ? 'https' : 'http'}://127.0.0.1:${this.clientPort}`;
    const peerUrl = `http://127.0.0.1:${this.peerPort}`;
    const metricsUrl = `http://127.0.0.1:${this.metricsPort}`;
    const args = [
      '--name', 'test',
      '--data-dir', this.dataDir,
      '--listen-client-urls', clientUrl,
      '--advertise-client-urls', this.endpoints[0]!,
      ...(tls ? ['--cert-file', tls.certFile, '--key-file', tls.keyFile, '--trusted-ca-file', tls.trustedCaFile, '--client-cert-auth', '--listen-metrics-urls', metricsUrl] : []),
      '--listen-peer-urls', peerUrl,
      '--initial-advertise-peer-urls', peerUrl,
      '--initial-cluster', `test=${peerUrl}`,
      '--initial-cluster-state', 'new',
      // Quiet: only errors reach stderr, and they are kept for the error message below.
      '--logger', 'zap',
      '--log-level', 'error',
      // Fast: a single member elects itself after one election timeout, on start and restart.
      '--heartbeat-interval', '50',
      '--election-timeout', '300',
      ...(this.opts.extraArgs ?? []),
    ];
    const exitedEarly = this.server.spawn(args);
    const healthUrl = `${tls ? metricsUrl : clientUrl}/health`;
    await waitFor(
      async () => {
        const res = await fetch(healthUrl, { signal: AbortSignal.timeout(1_000) });
        return res.ok && ((await res.json()) as { health?: string }).health === 'true';
      },
      {
        timeoutMs: this.opts.startTimeoutMs ?? 20_000,
        intervalMs: 25,
        message: `etcd to be healthy at ${healthUrl}`,
        signal: exitedEarly,
      },
    );
  }

  stop(): Promise<void> {
    return this.server.stop();
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    return this.server.kill(signal);
  }

  etcdctl(...args: string[]): Promise<string> {
    return runEtcdctl(this.endpoints, args);
  }

  async cleanup(): Promise<void> {
    await this.stop();
    await rm(this.dataDir, { recursive: true, force: true });
  }
}

/** Runs etcdctl (v3 API) against `endpoints`; resolves with stdout, rejects with stderr in the message. */
export function runEtcdctl(endpoints: string[], args: string[], timeoutMs = 15_000): Promise<string> {
  const etcdctl = findOnPath('etcdctl');
  if (!etcdctl) return Promise.reject(new Error(`no etcdctl binary on PATH: ${INSTALL_HINT}`));
  return new Promise((resolve, reject) => {
    execFile(
      etcdctl,
      ['--endpoints', endpoints.join(','), '--command-timeout', '5s', ...args],
      { env: { ...process.env, ETCDCTL_API: '3' }, timeout: timeoutMs },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`etcdctl ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
        else resolve(stdout);
      },
    );
  });
}

const ETCD_IMAGE = 'gcr.io/etcd-development/etcd:v3.4.23';

/** An etcd container when a Docker engine is reachable, else undefined. */
async function startContainerEtcd(): Promise<SharedEtcd | undefined> {
  const tc = await import('testcontainers');
  try {
    await tc.getContainerRuntimeClient();
  } catch {
    return undefined;
  }
  const container = await new tc.GenericContainer(ETCD_IMAGE)
    .withExposedPorts(2379)
    .withCommand([
      '/usr/local/bin/etcd',
      '--listen-client-urls', 'http://0.0.0.0:2379',
      '--advertise-client-urls', 'http://0.0.0.0:2379',
      '--logger', 'zap',
      '--log-level', 'error',
    ])
    .withWaitStrategy(tc.Wait.forHttp('/health', 2379).forResponsePredicate((body) => body.includes('"health":"true"')))
    .withStartupTimeout(60_000)
    .start();
  return {
    endpoints: [`http://${container.getHost()}:${container.getMappedPort(2379)}`],
    source: `testcontainers ${ETCD_IMAGE}`,
    stop: async () => {
      await container.stop();
    },
  };
}
