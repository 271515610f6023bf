/**
 * deploy/prometheus/ and deploy/grafana/: the alert rules pass `promtool check rules` and their
 * unit tests (`promtool test rules`), every alert has a test, and every expression of the Grafana
 * dashboard is PromQL that promtool parses. (That the metrics they read exist is checked against
 * a running router in install-layout.test.ts.)
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { REPO, dashboardExpressions, readRepoFile, run } from './files.js';

const tmp = mkdtempSync(join(tmpdir(), 'paas-promtool-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Rule { alert: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }

/** `promtool check rules` on these expressions as recording rules: parses each as PromQL. */
async function checkExpressions(exprs: string[]) {
  const file = join(tmp, `exprs-${Math.random().toString(36).slice(2)}.yml`);
  writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules: exprs.map((expr, i) => ({ record: `dashboard:expr_${i}`, expr })) }] }));
  return run('promtool', ['check', 'rules', file]);
}

describe('deploy/prometheus/paas-router-rules.yml', () => {
  it('passes promtool check rules', async () => {
    const checked = await run('promtool', ['check', 'rules', 'deploy/prometheus/paas-router-rules.yml']);
    expect(checked.stderr).toBe('');
    expect(checked.code).toBe(0);
    expect(checked.stdout).toMatch(/SUCCESS: 8 rules found/);
  });

  it('passes its unit tests (promtool test rules), which cover every alert', async () => {
    const tested = await run('promtool', ['test', 'rules', 'paas-router-rules.test.yml'], { cwd: `${REPO}deploy/prometheus` });
    expect(tested.stdout + tested.stderr).toContain('SUCCESS');
    expect(tested.code).toBe(0);
    const rules = (parseYaml(readRepoFile('deploy/prometheus/paas-router-rules.yml')) as { groups: Array<{ rules: Rule[] }> }).groups.flatMap((g) => g.rules);
    const tests = parseYaml(readRepoFile('deploy/prometheus/paas-router-rules.test.yml')) as { tests: Array<{ alert_rule_test: Array<{ alertname: string; exp_alerts: unknown[] }> }> };
    const firedInTests = new Set(tests.tests.flatMap((t) => t.alert_rule_test.filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname)));
    expect([...firedInTests].sort()).toEqual(rules.map((r) => r.alert).sort());
    for (const r of rules) {
      expect(['critical', 'warning'], r.alert).toContain(r.labels?.severity);
      expect(r.annotations?.summary, r.alert).toBeTruthy();
    }
  });
});

describe('deploy/grafana/paas-router-dashboard.json', () => {
  const dash = JSON.parse(readRepoFile('deploy/grafana/paas-router-dashboard.json')) as {
    uid: string;
    title: string;
    templating: { list: Array<{ name: string }> };
    panels: Array<{ id: number; type: string; title: string; gridPos: { x: number; y: number; w: number; h: number }; datasource?: { uid: string }; targets?: Array<{ expr: string; datasource: { uid: string } }> }>;
  };

  it('is PromQL throughout that promtool parses', async () => {
    const exprs = dashboardExpressions();
    expect(exprs.length).toBeGreaterThan(20);
    const checked = await checkExpressions(exprs);
    expect(checked.stdout + checked.stderr).toContain(`SUCCESS: ${exprs.length} rules found`);
    expect(checked.code).toBe(0);
    // The check fails on an expression that is not PromQL.
    expect((await checkExpressions(['sum by (app) (rate(router_requests_total[5m])'])).code).not.toBe(0);
  });

  it('has the panels the operators look for, laid out without overlap, on the chosen data source', () => {
    expect(dash.uid).toBe('paas-routers');
    expect(dash.templating.list.map((v) => v.name)).toEqual(['datasource', 'job', 'instance']);
    const titles = dash.panels.map((p) => p.title);
    for (const t of ['Requests by status', '5xx ratio by app', 'Upstream latency (time to response headers)', 'Requests in flight', 'Table changes and re-lists', 'etcd connected', 'Unhealthy instances by app', 'Certificates: time to expiry']) {
      expect(titles).toContain(t);
    }
    expect(new Set(dash.panels.map((p) => p.id)).size).toBe(dash.panels.length);
    const cells = new Set<string>();
    for (const p of dash.panels) {
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
      for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++) {
        for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
          expect(cells.has(`${x},${y}`), `${p.title} overlaps at ${x},${y}`).toBe(false);
          cells.add(`${x},${y}`);
        }
      }
      for (const t of p.targets ?? []) expect(t.datasource.uid).toBe('${datasource}');
    }
  });
});
