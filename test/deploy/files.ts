/**
 * Shared by the tests of deploy/ and docker-compose.yml: the repository's paths, running a
 * checker (docker-compose, promtool, systemd-analyze: installed by `make test`, see
 * scripts/ensure-deploy-tools.sh), and the metric names the dashboard and the alert rules use.
 */
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; a missing command is an error naming the script that installs it. */
export function run(command: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd: opts.cwd ?? REPO, env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new Error(`${command} is not installed: run \`make test\` (scripts/ensure-deploy-tools.sh installs it)`));
        return;
      }
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

export function readRepoFile(path: string): string {
  return readFileSync(`${REPO}${path}`, 'utf8');
}

/** Every PromQL expression of the Grafana dashboard, with Grafana's variables given values Prometheus accepts. */
export function dashboardExpressions(): string[] {
  const dash = JSON.parse(readRepoFile('deploy/grafana/paas-router-dashboard.json')) as { panels: Array<{ targets?: Array<{ expr: string }> }> };
  return dash.panels
    .flatMap((p) => p.targets ?? [])
    .map((t) => t.expr.replaceAll('$__rate_interval', '1m').replaceAll('$job', '.*').replaceAll('$instance', '.*'));
}

/** Every expression of the alert rules files under deploy/prometheus/ (not their unit tests). */
export function ruleExpressions(): string[] {
  return readdirSync(`${REPO}deploy/prometheus`)
    .filter((f) => f.endsWith('-rules.yml'))
    .flatMap((f) => (parseYaml(readRepoFile(`deploy/prometheus/${f}`)) as { groups: Array<{ rules: Array<{ expr: string }> }> }).groups)
    .flatMap((g) => g.rules.map((r) => r.expr));
}

/** The router's metric names (router_*, and prom-client's process_* and nodejs_*) an expression reads. */
export function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\b((?:router|process|nodejs)_[a-z0-9_]+)\b/g)].map((m) => m[1]!);
}
