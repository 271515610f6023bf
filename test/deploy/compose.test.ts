/**
 * docker-compose.yml without a Docker engine: `docker-compose config` (Debian's docker-compose,
 * which parses and validates the file and its build contexts offline) accepts it, and the
 * resolved configuration has what the stack needs: a 3-member etcd cluster with health checks,
 * routers and the seed job that wait for it, a stop grace longer than the routers' drain, and
 * sample apps that need nothing from the host. The parts that run outside containers are run
 * here for real: the seed script writes the records with etcdctl into the test etcd, the
 * dependency-free sample app serves, and a router routes to it by those records.
 */
import { describe, expect, inject, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { parse as parseYaml } from 'yaml';
import { uniquePrefix } from '../harness/etcd.js';
import { processes, startRouter } from '../harness/processes.js';
import { waitFor } from '../harness/wait.js';
import { REPO, readRepoFile, run } from './files.js';

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  stop_grace_period?: string;
  volumes?: string[];
  command?: string[];
  user?: string;
}

const endpoints = inject('etcdEndpoints');

function seconds(duration: string): number {
  const m = /^(\d+)(ms|s|m)$/.exec(duration);
  if (!m) throw new Error(`not a duration: ${duration}`);
  return Number(m[1]) * { ms: 0.001, s: 1, m: 60 }[m[2] as 'ms' | 's' | 'm'];
}

describe('docker-compose.yml', () => {
  it('passes docker-compose config, and the stack waits, seeds and stops as it should', async () => {
    const resolved = await run('docker-compose', ['-f', 'docker-compose.yml', 'config']);
    expect(resolved.stderr).toBe('');
    expect(resolved.code).toBe(0);
    const services = (parseYaml(resolved.stdout) as { services: Record<string, Service> }).services;
    expect(Object.keys(services).sort()).toEqual(['apple-1', 'etcd-1', 'etcd-2', 'etcd-3', 'mango-1', 'mango-2', 'router-1', 'router-2', 'seed']);

    const etcds = ['etcd-1', 'etcd-2', 'etcd-3'];
    for (const name of etcds) {
      const etcd = services[name]!;
      expect(etcd.image).toBe('quay.io/coreos/etcd:v3.5.17');
      expect(etcd.environment?.ETCD_NAME).toBe(name);
      expect(etcd.environment?.ETCD_INITIAL_CLUSTER).toBe(etcds.map((n) => `${n}=http://${n}:2380`).join(','));
      expect(etcd.healthcheck?.test).toEqual(['CMD', 'etcdctl', '--endpoints=http://127.0.0.1:2379', 'endpoint', 'health']);
    }
    const waitsForEtcd = Object.fromEntries(etcds.map((n) => [n, { condition: 'service_healthy' }]));
    const clientUrls = etcds.map((n) => `http://${n}:2379`).join(',');

    for (const name of ['router-1', 'router-2']) {
      const router = services[name]!;
      expect(router.build).toEqual({ context: REPO.replace(/\/$/, ''), dockerfile: 'deploy/Dockerfile' });
      expect(router.image).toBe('paas-routing:0.1.0');
      expect(router.depends_on).toEqual(waitsForEtcd);
      expect(router.environment).toMatchObject({ ETCD_ENDPOINTS: clientUrls, ROUTER_ID: name });
      // The engine sends SIGKILL after stop_grace_period: it must outlast the drain.
      const drain = seconds(router.environment!.ROUTER_DRAIN_WAIT!) + seconds(router.environment!.ROUTER_SHUTDOWN_TIMEOUT!);
      expect(seconds(router.stop_grace_period!)).toBeGreaterThan(drain);
    }

    const seed = services.seed!;
    expect(seed.build?.dockerfile).toBe('deploy/compose/seed.Dockerfile');
    expect(seed.depends_on).toEqual(waitsForEtcd);
    expect(seed.environment?.ETCDCTL_ENDPOINTS).toBe(clientUrls);
    // The seed's instances are the stack's sample app services.
    const seeded = `${seed.environment!.MANGO_INSTANCES} ${seed.environment!.APPLE_INSTANCES}`.split(' ');
    expect(seeded).toEqual(['mango-1=http://mango-1:7001', 'mango-2=http://mango-2:7001', 'apple-1=http://apple-1:7001']);

    for (const name of ['mango-1', 'mango-2', 'apple-1']) {
      const app = services[name]!;
      expect(app.image).toBe('node:24-bookworm-slim');
      expect(app.user).toBe('1000:1000');
      // Self-contained: one file of this repository mounted, nothing from the host's node_modules.
      expect(app.volumes).toEqual([`${REPO}deploy/compose/sample-app.mjs:/app/sample-app.mjs:ro`]);
      expect(app.command).toEqual(['node', '/app/sample-app.mjs']);
      expect(app.environment?.INSTANCE).toBe(name);
    }
    for (const [name, s] of Object.entries(services)) expect(s.image, name).toMatch(/:[\w.-]+$/);
    expect(Object.values(services).some((s) => s.image?.endsWith(':latest'))).toBe(false);
  });

  it('is rejected with a wrong condition (the check can fail)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'paas-compose-'));
    try {
      writeFileSync(join(dir, 'docker-compose.yml'), readRepoFile('docker-compose.yml').replaceAll('service_healthy', 'service_ready'));
      const broken = await run('docker-compose', ['-f', join(dir, 'docker-compose.yml'), 'config']);
      expect(broken.code).not.toBe(0);
      expect(broken.stderr).toContain('service_ready');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('deploy/compose/seed.sh and sample-app.mjs, run outside containers', () => {
  it('the seed writes the records with etcdctl, and a router serves the sample apps from them', async () => {
    const prefix = uniquePrefix('compose');
    const apps: Record<string, string> = {};
    for (const [app, instance] of [['mango', 'mango-1'], ['mango', 'mango-2'], ['apple', 'apple-1']] as const) {
      const proc = processes.spawn(process.execPath, [`${REPO}deploy/compose/sample-app.mjs`], { name: instance, env: { APP: app, INSTANCE: instance, PORT: '0', HOST: '127.0.0.1' } });
      const line = await proc.waitForLine((l) => l.includes('"listening"'));
      apps[instance] = `http://127.0.0.1:${(JSON.parse(line) as { port: number }).port}`;
    }
    const seeded = await run('sh', [`${REPO}deploy/compose/seed.sh`], {
      env: {
        PATH: process.env.PATH,
        ETCDCTL_ENDPOINTS: endpoints.join(','),
        PAAS_PREFIX: prefix,
        MANGO_INSTANCES: `mango-1=${apps['mango-1']} mango-2=${apps['mango-2']}`,
        APPLE_INSTANCES: `apple-1=${apps['apple-1']}`,
      },
    });
    expect(seeded.stderr).toBe('');
    expect(seeded.code).toBe(0);
    expect(seeded.stdout).toContain(`seeded ${prefix}: apps mango and apple`);

    const router = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'compose-1' });
    const get = async (path: string, host: string) => {
      const res = await request(`${router.url}${path}`, { headers: { host } });
      return { status: res.statusCode, body: (await res.body.json()) as { app: string; instance: string } };
    };
    // Both mango instances take turns (round-robin) once the routers' health checks pass.
    const seen = new Set<string>();
    await waitFor(async () => {
      const r = await get('/', 'mango.localhost');
      if (r.status === 200 && r.body.app === 'mango') seen.add(r.body.instance);
      return seen.size === 2;
    }, { timeoutMs: 15_000, message: 'both mango instances to answer through the router' });
    expect((await get('/apple/x', 'anything.localhost')).body).toMatchObject({ app: 'apple', instance: 'apple-1' });
    expect((await get('/', 'apple.localhost')).body).toMatchObject({ app: 'apple', instance: 'apple-1' });
  });
});
