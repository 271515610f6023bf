import { describe, expect, test } from 'vitest';
import { eventLine, createReporter } from '../src/cli/reporter.js';
import { DeployError } from '../src/errors.js';
import type { RedeployResult } from '../src/redeploy.js';
import { digestOutliers, formatStatus, type FleetStatus } from '../src/status.js';
import { formatFailure, formatRedeploySummary } from '../src/summary.js';
import type { StepRecord } from '../src/steps.js';

const steps: StepRecord[] = [
  { step: 'lock', label: 'take the app lock', ok: true, ms: 3.2, detail: '/paas/rollouts/mango' },
  { step: 'health', label: 'health-check new instances', ok: true, ms: 210, detail: '2 healthy' },
  { step: 'write', label: 'write the new instances', ok: true, ms: 8, detail: 'ready at revision 120' },
  { step: 'confirm', label: 'routers apply the new instances', ok: true, ms: 35.5, detail: 'revision 120 on 2 routers' },
];

describe('summary', () => {
  test('redeploy: what serves, what was retired, how long routers took, each step with its time', () => {
    const result = {
      app: 'mango',
      release: 'v2',
      instances: [
        { id: 'v2-aaaaaa', key: 'k', url: 'http://h:1', reused: false, unchangedAt: undefined },
        { id: 'v2-bbbbbb', key: 'k', url: 'http://h:2', reused: true, unchangedAt: 3n },
      ],
      readyRevision: 120n,
      confirm: { target: 120n, ms: 35.5, routers: [{ id: 'r1', ms: 12 }, { id: 'r2', ms: 35.5 }], gone: ['r3'], joined: [] },
      drain: {
        ids: ['v1-a'],
        revision: 121n,
        confirm: { target: 121n, ms: 10, routers: [], gone: [], joined: [] },
        drain: { ms: 1200, timedOut: false, remaining: [], behind: [], peak: 2, unreported: [] },
        deleted: ['v1-a'],
        kept: [],
        deleteRevision: 124n,
      },
      ignored: [],
      steps,
      totalMs: 3410,
    } satisfies RedeployResult;
    const text = formatRedeploySummary(result);
    expect(text).toContain('redeploy mango (release v2): done in 3.41s');
    expect(text).toContain('serving: v2-aaaaaa http://h:1, v2-bbbbbb http://h:2 (reused)');
    expect(text).toContain('retired: v1-a');
    expect(text).toContain('routers confirmed the new instances (revision 120) in 36ms: r1 12ms, r2 36ms; gone meanwhile: r3');
    expect(text).toMatch(/4\s+ok\s+routers apply the new instances\s+36ms\s+revision 120 on 2 routers/);
  });

  test('failure: the reason, what was rolled back, the steps', () => {
    const err = new DeployError('router-timeout', 'router r2 did not apply revision 120 within 10.0s');
    err.steps = [...steps.slice(0, 3), { step: 'confirm', label: 'routers apply the new instances', ok: false, ms: 10_000, detail: 'router r2 ...' }];
    err.rollback = { removed: ['v2-aaaaaa'], restored: [], skipped: [{ id: 'v2-b', reason: 'changed since' }], revision: 130n };
    const text = formatFailure('redeploy mango', err);
    expect(text.split('\n')[0]).toBe('redeploy mango failed: router r2 did not apply revision 120 within 10.0s');
    expect(text).toContain('rolled back: removed v2-aaaaaa (revision 130); old instances untouched');
    expect(text).toContain('not rolled back: v2-b: changed since');
    expect(text).toMatch(/4\s+FAILED\s+routers apply the new instances/);
  });

  test('failure before any write says nothing was written', () => {
    const err = new DeployError('unhealthy', 'instance http://h:1 did not pass');
    err.steps = steps.slice(0, 1);
    expect(formatFailure('redeploy mango', err)).toContain('nothing was written');
  });
});

describe('status', () => {
  test('digestOutliers: the minority digest at one revision; a tie marks all; different revisions are not compared', () => {
    expect(digestOutliers([
      { id: 'a', revision: '10', digest: 'x' },
      { id: 'b', revision: '10', digest: 'x' },
      { id: 'c', revision: '10', digest: 'y' },
      { id: 'd', revision: '9', digest: 'z' },
    ])).toEqual(new Set(['c']));
    expect(digestOutliers([
      { id: 'a', revision: '10', digest: 'x' },
      { id: 'b', revision: '10', digest: 'y' },
    ])).toEqual(new Set(['a', 'b']));
  });

  test('formatStatus: routers with lag and a digest mark, apps with instances and in-flight', () => {
    const s: FleetStatus = {
      prefix: '/paas',
      endpoints: ['http://e:2379'],
      revision: 130n,
      newestChange: 128n,
      routers: [
        { id: 'r1', load: { requestsPerSecond: 120.5, connections: 35, eventLoopUtilization: 0.12, cpu: 0.3, rssBytes: 220200960, loadAverage: 1.2, sampledAt: '2026-11-29T10:00:00.000Z' }, revision: 128n, current: 128n, lag: 0n, missingChanges: false, digest: 'aaaa', digestMismatch: false, routes: 3, rejected: 0, conflicts: 0, inflightCut: false, warnings: 0, warningList: [], unhealthy: 0, unhealthyList: [], rejectedList: [], conflictList: [], updatedAt: undefined, error: undefined },
        { id: 'r2', load: undefined, revision: 128n, current: 128n, lag: 0n, missingChanges: false, digest: 'bbbb', digestMismatch: true, routes: 3, rejected: 5000, conflicts: 2, inflightCut: false, warnings: 1, warningList: [{ key: '/paas/apps/mango', revision: '127', unknownFields: ['routes.0.hots'] }], unhealthy: 1, unhealthyList: [{ instance: 'mango/v2-b', problem: 'ejected', reason: 'ECONNREFUSED', since: '2026-11-29T10:00:00.000Z' }], rejectedList: [], conflictList: [], updatedAt: undefined, error: undefined },
        { id: 'r3', load: undefined, revision: 120n, current: 120n, lag: 10n, missingChanges: true, digest: 'cccc', digestMismatch: false, routes: 2, rejected: 0, conflicts: 0, inflightCut: true, warnings: 0, warningList: [], unhealthy: 0, unhealthyList: [], rejectedList: [], conflictList: [], updatedAt: undefined, error: undefined },
      ],
      apps: [
        {
          name: 'mango',
          record: { routes: [{ host: 'www.mango.com' }, { path: '/m' }] },
          error: undefined,
          unknownFields: [],
          lock: undefined,
          instances: [
            { id: 'v1-a', state: 'draining', release: 'v1', url: 'http://h:1', inflight: 3, inflightPartial: true, inflightByRouter: [], health: [], unknownFields: [], error: undefined },
            { id: 'v2-b', state: 'ready', release: 'v2', url: 'http://h:2', inflight: undefined, inflightPartial: false, inflightByRouter: [], health: [{ router: 'r2', problem: 'ejected', reason: 'ECONNREFUSED', since: '2026-11-29T10:00:00.000Z' }], unknownFields: ['weigth'], error: undefined },
          ],
        },
      ],
      overrides: [
        { host: 'www.kiwi.com', what: 'maintenance 503: Back at 14:00', endsInSeconds: 1790 },
        { host: 'beta.mango.com', what: 'app mango-canary', endsInSeconds: undefined },
      ],
    };
    const text = formatStatus(s);
    expect(text).toContain('  r1 load: 120.5 req/s, 35 connections, event loop 12%, CPU 0.3 cores, RSS 210 MB, load average 1.2');
    expect(text).not.toContain('r2 load:');
    expect(text).toContain('OVERRIDES (2)');
    expect(text).toMatch(/www\.kiwi\.com\s+maintenance 503: Back at 14:00\s+in 1790s/);
    expect(text).toMatch(/beta\.mango\.com\s+app mango-canary\s+-/);
    expect(text).toContain('revision 130');
    expect(text).toMatch(/ROUTES\s+REJECTED\s+CONFLICTS\s+WARNINGS\s+UNHEALTHY\s+NOTE/);
    expect(text).toMatch(/r2\s+128\s+0\s+bbbb !\s+3\s+5000\s+2\s+1\s+1\s+digest differs from peers at the same revision/);
    expect(text).toContain('warning: /paas/apps/mango (revision 127): unknown fields ignored: routes.0.hots');
    expect(text).toContain('warning: instance v2-b: unknown fields ignored: weigth');
    expect(text).toContain("A router's record lists its newest rejected records; its admin /status lists them all.");
    expect(text).toMatch(/r3\s+120\s+10\*.*status record full: not every instance in flight is listed/);
    expect(text).toContain('APP mango  routes www.mango.com, */m  balance round-robin  health passive (deploys GET /healthz)');
    expect(text).toMatch(/v1-a\s+draining\s+v1\s+http:\/\/h:1\s+3\+/);
    expect(text).toMatch(/v2-b\s+ready\s+v2\s+http:\/\/h:2\s+-\s+r2: ejected since 2026-11-29T10:00:00.000Z \(ECONNREFUSED\)/);
    expect(text).toMatch(/v1-a\s+draining\s+v1\s+http:\/\/h:1\s+3\+\s+ok/);
    expect(text).toContain('1 draining, 1 ready');
  });
});

describe('reporter', () => {
  test('plain lines for steps and router events', () => {
    expect(eventLine({ type: 'step-start', step: 'confirm', at: 0 })).toBe('[confirm] routers apply the new instances ...');
    expect(eventLine({ type: 'step-end', step: 'confirm', ok: true, ms: 35, detail: 'revision 120' })).toBe('[confirm] ok in 35ms: revision 120');
    expect(eventLine({ type: 'router-gone', step: 'confirm', router: 'r2' })).toContain('router r2 is gone');
    expect(eventLine({ type: 'routers-waiting', step: 'confirm', target: 120n, elapsedMs: 1, pending: [{ id: 'r2', revision: 118n }], applied: 1 })).toBe('  waiting for r2 (at 118) to reach revision 120');
    expect(eventLine({ type: 'health', url: 'http://h:1', ok: false, attempt: 2, answer: 'HTTP 503' })).toBeUndefined();
  });

  test('plain mode writes whole lines; TTY mode redraws one live line', () => {
    const plain: string[] = [];
    const r = createReporter({ write: (t) => plain.push(t) }, false);
    r.listener({ type: 'step-start', step: 'lock', at: 0 });
    r.listener({ type: 'step-end', step: 'lock', ok: true, ms: 2, detail: '' });
    r.stop();
    expect(plain).toEqual(['[lock] take the app lock ...\n', '[lock] ok in 2ms\n']);

    const tty: string[] = [];
    const t = createReporter({ write: (x) => tty.push(x) }, true);
    t.listener({ type: 'step-start', step: 'confirm', at: 0 });
    t.listener({ type: 'routers-waiting', step: 'confirm', target: 5n, elapsedMs: 1, pending: [{ id: 'r2', revision: 4n }], applied: 0 });
    t.listener({ type: 'step-end', step: 'confirm', ok: true, ms: 2, detail: 'done' });
    t.stop();
    const out = tty.join('');
    expect(out).toContain('routers apply the new instances');
    expect(out).toContain('waiting for r2@4 → 5');
    expect(out).toContain('\r\x1b[2K[confirm] ok in 2ms: done\n');
  });
});
