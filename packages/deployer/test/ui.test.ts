import { describe, expect, test } from 'vitest';
import { KeyLayout, type RouterStatusRecord } from '@paas/registry';
import { parseCommandLine } from '../src/cli/parse.js';
import { UsageError } from '../src/errors.js';
import { statusOf, type StatusEntry } from '../src/status.js';
import { fleetView } from '../src/ui/fleet-view.js';
import { PAGE_CSP, PAGE_HTML } from '../src/ui/page.js';
import { allowedHost } from '../src/ui/server.js';

const layout = new KeyLayout('/paas');
let rev = 0n;
function entry(key: string, value: unknown): StatusEntry {
  return { key, value: Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)), modRevision: ++rev };
}
function router(id: string, record: Partial<RouterStatusRecord>): StatusEntry {
  return entry(layout.router(id), { revision: '5', currentRevision: '9', digest: 'd1', routes: 1, rejected: [], inflight: {}, ...record });
}
function view(entries: StatusEntry[]) {
  const sorted = [...entries].sort((a, b) => (a.key < b.key ? -1 : 1));
  return fleetView({ status: { ...statusOf(sorted, 10n, layout), overrides: [] }, endpoints: ['http://e:2379'], etcdConnected: true, certs: [], tunnelTokens: new Map() });
}

describe('fleetView', () => {
  test('per router: health problems, "unknown" when its list was cut, in-flight (0 when a complete record does not list it, null when a full one does not)', () => {
    const v = view([
      entry(layout.app('mango'), { routes: [{ host: 'www.mango.com' }, { path: '/m' }] }),
      entry(layout.instance('mango', 'a'), { url: 'http://10.0.0.1:80', state: 'ready' }),
      entry(layout.instance('mango', 'b'), { url: 'http://10.0.0.2:80', state: 'draining' }),
      router('r1', { inflight: { 'mango/b': 3 }, unhealthy: [{ instance: 'mango/a', problem: 'ejected', reason: 'ECONNREFUSED', since: '2026-11-29T10:00:00.000Z' }, { instance: 'mango/a', problem: 'failing', reason: 'status 503', since: '2026-11-29T09:00:00.000Z' }], unhealthyCount: 2 }),
      router('r2', { inflight: { 'mango/b': 2 }, inflightComplete: false, unhealthy: [], unhealthyCount: 4 }),
    ]);
    const [a, b] = v.apps[0]!.instances;
    expect(a!.routers).toEqual([
      { router: 'r1', health: 'ejected+failing', reasons: ['ejected: ECONNREFUSED', 'failing: status 503'], since: '2026-11-29T09:00:00.000Z', inflight: 0 },
      { router: 'r2', health: 'unknown', reasons: [], since: null, inflight: null },
    ]);
    expect([a!.inflight, a!.inflightPartial]).toEqual([0, true]);
    expect(b!.routers.map((x) => x.inflight)).toEqual([3, 2]);
    expect([b!.inflight, b!.inflightPartial]).toEqual([5, false]);
    expect(v.apps[0]!.routes).toEqual(['www.mango.com', '*/m']);
    expect(v.apps[0]!.states).toEqual({ ready: 1, draining: 1 });
  });

  test('rejected records and warnings merged over routers, with what each router serves instead', () => {
    const rejected = { key: '/paas/instances/kiwi/k2', revision: '7', error: 'state: must be one of starting, ready, draining', kept: null };
    const v = view([
      router('r1', { rejected: [rejected], rejectedCount: 30, warnings: [{ key: '/paas/apps/kiwi', revision: '6', unknownFields: ['balanse'] }] }),
      router('r2', { rejected: [rejected, { key: '/paas/apps/x', revision: '8', error: 'bad', kept: '4' }], rejectedCount: 2 }),
      entry(layout.router('r3'), '{"revision":'),
    ]);
    expect(v.rejected).toEqual([
      { key: '/paas/apps/x', revision: '8', text: 'bad', kept: 'its value of revision 4', routers: ['r2'] },
      { key: rejected.key, revision: '7', text: rejected.error, kept: 'nothing', routers: ['r1', 'r2'] },
    ]);
    expect(v.warnings).toEqual([{ key: '/paas/apps/kiwi', revision: '6', text: 'unknown fields ignored: balanse', kept: null, routers: ['r1'] }]);
    expect(v.routers.find((r) => r.id === 'r1')!.notes).toContain('lists 1 of 30 rejected records (its admin /status lists all)');
    expect(v.routers.find((r) => r.id === 'r3')!.error).toMatch(/.+/);
  });
});

describe('ui command line and server rules', () => {
  test('--listen takes IP:PORT only; default 127.0.0.1:8081', () => {
    const run = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
      const p = parseCommandLine(argv, env);
      if (p.kind !== 'run' || p.command.name !== 'ui') throw new Error('expected ui');
      return p.command.args.listen;
    };
    expect(run(['ui'])).toEqual({ host: '127.0.0.1', port: 8081 });
    expect(run(['ui', '--listen', '[::1]:0'])).toEqual({ host: '::1', port: 0 });
    expect(run(['ui'], { PAAS_DEPLOY_UI_LISTEN: '10.1.2.3:9000' })).toEqual({ host: '10.1.2.3', port: 9000 });
    for (const bad of ['localhost:8081', ':8081', '127.0.0.1', '127.0.0.1:70000', '::1:8081', '[127.0.0.1]:80']) {
      expect(() => run(['ui', '--listen', bad])).toThrow(UsageError);
    }
  });

  test('Host must be an IP address or localhost (DNS rebinding)', () => {
    for (const ok of ['127.0.0.1:8081', 'localhost:8081', 'LOCALHOST', '[::1]:8081', '10.0.0.1']) expect(allowedHost(ok)).toBe(true);
    for (const bad of [undefined, '', 'evil.example:8081', 'localhost.evil.example', '127.0.0.1.nip.io:8081', '[::1']) expect(allowedHost(bad)).toBe(false);
  });

  test('the page has no markup sink and the CSP admits only its own inline script and style', () => {
    expect(PAGE_HTML).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/);
    expect(PAGE_CSP).toMatch(/^default-src 'none'; script-src 'sha256-[A-Za-z0-9+/=]+'; style-src 'sha256-[A-Za-z0-9+/=]+'; connect-src 'self'/);
    expect(PAGE_CSP).not.toContain('unsafe');
  });
});
