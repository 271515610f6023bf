/**
 * Micro-benchmark of RoutingTable.lookup() (and lookup + pick, one routing decision) at 10 and
 * 100k apps, for exact hosts, wildcard hosts and host-less path routes. Prints ns per call.
 *
 * Each app i has four routes: app<i>.example.com, app<i>.example.com/api, *.app<i>.wild.com and
 * /app<i> (any host), and three ready instances. Every timed sample runs a batch of lookups over
 * 1024 requests to random apps, so timer overhead is spread over many calls. At 100k apps those
 * requests touch objects scattered over a large heap, so cache misses (not the algorithm) make
 * up most of the difference to 10 apps; the "one hot host" row shows the cost without them.
 * Request strings are reused, so V8 has their hashes cached as it would not for fresh headers.
 *
 * Not part of the test suite. Run it compiled by tsc (Vite's SSR transform would slow the hot
 * path it measures) into the git-ignored results folder:
 *   pnpm exec tsc --noCheck --outDir test/bench/results/js --rootDir . --module nodenext \
 *     --target es2022 --skipLibCheck test/bench/lookup.bench.ts \
 *     && node test/bench/results/js/test/bench/lookup.bench.js
 */
import { Bench } from 'tinybench';
import { RoutingTable, type Target } from '../../packages/router/src/table/routing-table.js';

const BATCH = 1024;

function buildTable(apps: number): RoutingTable {
  const table = new RoutingTable();
  for (let i = 0; i < apps; i++) {
    const name = `app${i}`;
    table.setApp(
      name,
      {
        routes: [
          { host: `${name}.example.com` },
          { host: `${name}.example.com`, path: '/api' },
          { host: `*.${name}.wild.com` },
          { path: `/${name}` },
        ],
      },
      BigInt(i + 1),
    );
    for (let k = 0; k < 3; k++) table.setInstance(name, `i${k}`, { url: `http://10.0.${k}.1:${8000 + (i % 1000)}`, state: 'ready' });
  }
  return table;
}

type Request = readonly [host: string, url: string];

function requests(apps: number, make: (name: string) => Request): Request[] {
  return Array.from({ length: BATCH }, () => make(`app${Math.floor(Math.random() * apps)}`));
}

const KINDS: Array<[label: string, make: (name: string) => Request]> = [
  // One host over and over: what lookup() itself costs, with the data in cache.
  ['exact host, / (one hot host)', () => ['app7.example.com', '/']],
  ['exact host, /', (n) => [`${n}.example.com`, '/']],
  ['exact host, longest path', (n) => [`${n}.example.com`, '/api/users/42?expand=1']],
  ['wildcard host', (n) => [`x.${n}.wild.com`, '/']],
  ['wildcard host, 3 labels deep', (n) => [`a.b.c.${n}.wild.com`, '/static/app.js']],
  ['host-less path', (n) => ['other.org', `/${n}/static/main.js?v=3`]],
  ['no route (404)', () => ['nothing.org', '/nope/x']],
];

/** A routing decision: lookup() then pick() among 3 ready instances (round robin). */
const DECISIONS: Array<[label: string, make: (name: string) => Request]> = [
  ['lookup + pick, exact host and path', (n) => [`${n}.example.com`, '/api/users/42?expand=1']],
  ['lookup + pick, wildcard host', (n) => [`x.${n}.wild.com`, '/']],
];

let sink = 0;

function count(target: Target | undefined): void {
  if (target !== undefined) sink++;
}

async function main(): Promise<void> {
  const rows: Array<Record<string, string | number>> = [];
  for (const apps of [10, 100_000]) {
    const started = performance.now();
    const table = buildTable(apps);
    const buildMs = performance.now() - started;
    const bench = new Bench({ time: 1000, warmupTime: 300 });
    for (const [label, make] of KINDS) {
      const reqs = requests(apps, make);
      bench.add(label, () => {
        for (let i = 0; i < BATCH; i++) {
          const r = reqs[i]!;
          count(table.lookup(r[0], r[1]));
        }
      });
    }
    const now = Date.now();
    for (const [label, make] of DECISIONS) {
      const reqs = requests(apps, make);
      bench.add(label, () => {
        for (let i = 0; i < BATCH; i++) {
          const r = reqs[i]!;
          const target = table.lookup(r[0], r[1]);
          if (target?.kind === 'app' && target.pick(now) !== undefined) sink++;
        }
      });
    }
    await bench.run();
    for (const task of bench.tasks) {
      const result = task.result;
      if (result === undefined) continue;
      rows.push({
        apps,
        case: task.name,
        'ns/op (mean)': Math.round((result.latency.mean * 1e6) / BATCH),
        'ns/op (p99 of batches)': Math.round(((result.latency.p99 ?? result.latency.mean) * 1e6) / BATCH),
      });
    }
    console.log(`${apps} apps: ${table.routeCount()} routes built in ${Math.round(buildMs)} ms`);
  }
  console.table(rows);
  if (sink === 0) console.log('(no lookups matched)');
}

await main();
