/**
 * The routing decision alone: runs the existing micro-benchmark test/bench/lookup.bench.ts, compiled
 * by tsc as its header says (Vite's transform would slow the code it measures), pinned to the
 * proxy core, and parses the table it prints (console.table) into rows.
 */
import path from 'node:path';
import { run } from '../lib/procs.mjs';
import { REPO_ROOT } from '../lib/router.mjs';

export function parseConsoleTable(text) {
  const rows = [];
  let header;
  for (const line of text.split('\n')) {
    if (!line.startsWith('│')) continue;
    const cells = line.split('│').slice(1, -1).map((c) => c.trim().replace(/^'(.*)'$/, '$1'));
    if (!header) {
      header = cells;
      continue;
    }
    const row = {};
    header.forEach((h, i) => {
      if (h === '(index)') return;
      const v = cells[i];
      row[h] = v !== '' && !Number.isNaN(Number(v)) ? Number(v) : v;
    });
    rows.push(row);
  }
  return rows;
}

export async function lookupSuite(ctx) {
  const outDir = path.join(ctx.outDir, 'js');
  const tsc = path.join(REPO_ROOT, 'node_modules/typescript/bin/tsc');
  const build = await run(
    process.execPath,
    [tsc, '--noCheck', '--outDir', outDir, '--rootDir', REPO_ROOT, '--module', 'nodenext', '--target', 'es2022', '--skipLibCheck', path.join(REPO_ROOT, 'test/bench/lookup.bench.ts')],
    { timeoutMs: 120_000 },
  );
  if (build.code !== 0) throw new Error(`tsc of lookup.bench.ts failed: ${build.stdout}${build.stderr}`);
  const res = await run(process.execPath, [path.join(outDir, 'test/bench/lookup.bench.js')], { cpus: ctx.cpus.proxy, timeoutMs: 300_000 });
  if (res.code !== 0) throw new Error(`lookup.bench failed: ${res.stderr}`);
  const rows = parseConsoleTable(res.stdout);
  const built = [...res.stdout.matchAll(/^(\d+) apps: (\d+) routes built in (\d+) ms/gm)].map((m) => ({ apps: Number(m[1]), routes: Number(m[2]), buildMs: Number(m[3]) }));
  for (const r of rows) if (r.apps === 100000) ctx.log(`  100k apps, ${r.case}: ${r['ns/op (mean)']} ns/op`);
  return { rows, built };
}
