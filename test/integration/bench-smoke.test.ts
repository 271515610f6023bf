/**
 * Smoke test of `pnpm bench` (test/bench/run.mjs) in its quickest mode: the script runs, stops what
 * it started, and writes JSON, Markdown and SVG with a positive figure for every configuration it
 * ran. No target is asserted (figures on a shared CI machine say little). Only configurations that
 * need no apt install: backend direct and the router, loaded by autocannon / an undici loop, so
 * `make test` never depends on Debian's wrk, haproxy or nginx.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface ProxyRow { name: string; skipped?: string; rps: number; p50Ms: number; p99Ms: number; requests: number; reqPerProxyCpuS?: number }
interface RateRow { name: string; skipped?: string; p50Ms: number; p99Ms: number; p999Ms: number; requests: number }
interface Summary { n: number; p50: number; p99: number; max: number; timeouts: number }
interface Level { apps: number; iterations: number; r1: Summary; r2: Summary; both: Summary }
interface Results {
  meta: { quick: boolean };
  proxy: { rows: ProxyRow[] };
  fixedRate: { rows: RateRow[] };
  propagation: { levels: Level[] };
  targets: Array<{ target: string; status: string }>;
}

function runBench(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['test/bench/run.mjs', ...args], { cwd: REPO_ROOT, timeout: 50_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('pnpm bench (quick smoke)', () => {
  let out: string | undefined;
  afterAll(async () => {
    if (out) await rm(out, { recursive: true, force: true });
  });

  it('runs direct and router configurations and writes JSON, Markdown and SVG with positive figures', async () => {
    out = await mkdtemp(path.join(os.tmpdir(), 'bench-smoke-'));
    const res = await runBench([
      '--only', 'proxy,fixed-rate,propagation',
      '--quick',
      '--proxies', 'direct,router',
      '--client', 'autocannon',
      '--no-install',
      '--duration', '1',
      '--warmup', '0.5',
      '--rate', '500',
      '--levels', '200',
      '--iterations', '10',
      '--max-minutes', '1',
      '--out', out,
    ]);
    expect(res.code, `bench exited ${res.code}:\n${res.stdout.slice(-3000)}\n${res.stderr.slice(-3000)}`).toBe(0);

    const json = JSON.parse(await readFile(path.join(out, 'latest.json'), 'utf8')) as Results;
    const md = await readFile(path.join(out, 'latest.md'), 'utf8');
    const svg = await readFile(path.join(out, 'latest.svg'), 'utf8');
    expect(json.meta.quick).toBe(true);

    expect(json.proxy.rows.map((r) => r.name)).toEqual(['direct', 'router']);
    for (const row of json.proxy.rows) {
      expect(row.skipped, `${row.name} skipped`).toBeUndefined();
      expect(row.rps, row.name).toBeGreaterThan(0);
      expect(row.requests, row.name).toBeGreaterThan(0);
      expect(row.p50Ms, row.name).toBeGreaterThan(0);
      expect(row.p99Ms, row.name).toBeGreaterThan(0);
      expect(md).toContain(`| ${row.name} |`);
    }
    expect(json.proxy.rows.find((r) => r.name === 'router')?.reqPerProxyCpuS).toBeGreaterThan(0);

    expect(json.fixedRate.rows.map((r) => r.name)).toEqual(['direct', 'router']);
    for (const row of json.fixedRate.rows) {
      expect(row.skipped, `${row.name} skipped`).toBeUndefined();
      expect(row.requests, row.name).toBeGreaterThan(0);
      for (const v of [row.p50Ms, row.p99Ms, row.p999Ms]) expect(v, row.name).toBeGreaterThan(0);
    }

    expect(json.propagation.levels.map((l) => l.apps)).toEqual([200]);
    for (const level of json.propagation.levels) {
      expect(level.iterations).toBeGreaterThan(0);
      expect(level.both.timeouts).toBe(0);
      for (const s of [level.r1, level.r2, level.both]) {
        expect(s.p50).toBeGreaterThan(0);
        expect(s.max).toBeGreaterThan(0);
        expect(Number.isFinite(s.max)).toBe(true);
      }
    }

    for (const heading of ['## Targets', '## Proxy throughput and latency', '## Fixed-rate latency', '## Propagation']) expect(md).toContain(heading);
    expect(json.targets.length).toBeGreaterThan(0);
    expect(svg).toMatch(/^<\?xml[^]*<svg[^]*<\/svg>\s*$/);
    expect(svg).toContain('router');
  }, 60_000);
});
