#!/usr/bin/env node
/**
 * `pnpm bench`: every benchmark configuration, one after another, in one run, on loopback.
 * Writes test/bench/results/bench-<time>.{json,md,svg} and latest.{json,md,svg}.
 *
 *   pnpm bench                                   # everything (~10 min on 2 cores)
 *   pnpm bench -- --only proxy,propagation --quick
 *   pnpm bench -- --only soak --duration 5m      # the soak (30 min by default; never in "everything")
 *   node test/bench/run.mjs --help
 *
 * Needs `pnpm exec tsc -b` first (it runs the built router). Installs wrk, haproxy, nginx and
 * h2load (nghttp2-client) from Debian when missing (unless --no-install). Everything it starts
 * is stopped at the end, on errors and on Ctrl-C; it only uses free ports it picked and temp
 * dirs it made.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile, copyFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { canPin, installSignalHandlers, onCleanup, setNiceness, start, stopAll } from './lib/procs.mjs';
import { machineLoad, waitForCalm } from './lib/cpu.mjs';
import { startEtcd } from './lib/etcd.mjs';
import { client as etcdClientFor, loadApps } from './lib/etcd-load.mjs';
import { ensureTools } from './lib/install.mjs';
import { freePorts, waitFor } from './lib/net.mjs';
import { ROUTER_BIN, routerSupportsWorkers } from './lib/router.mjs';
import { ALL_TARGETS } from './lib/targets.mjs';
import { evaluateTargets, renderMarkdown } from './lib/report.mjs';
import { renderSvg } from './lib/svg.mjs';
import { proxySuite } from './suites/proxy.mjs';
import { fixedRateSuite } from './suites/fixed-rate.mjs';
import { propagationSuite, PREFIX } from './suites/propagation.mjs';
import { scaleSuite } from './suites/scale.mjs';
import { lookupSuite } from './suites/lookup.mjs';
import { etcdRollSuite } from './suites/etcd-roll.mjs';
import { certsSuite } from './suites/certs.mjs';
import { soakSuite } from './suites/soak.mjs';
import { TLS_PARTS, tlsSuite } from './suites/tls.mjs';
import { tunnelSuite } from './suites/tunnel.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SUITES = ['proxy', 'fixed-rate', 'tls', 'propagation', 'scale', 'lookup', 'etcd-roll', 'certs', 'tunnel'];
/** Run only when named in --only: the soak takes 30 minutes. */
const OPTIONAL_SUITES = ['soak'];
const HELP = `Usage: node test/bench/run.mjs [flags]   (pnpm bench -- [flags])

  --only LIST        suites to run, comma-separated (default: all): ${SUITES.join(', ')}
                     and, only when named: ${OPTIONAL_SUITES.join(', ')}
  --quick            short durations and small app counts (seconds, for iterating and the smoke test)
  --proxies LIST     configurations for proxy and fixed-rate (default: all): ${ALL_TARGETS.join(', ')}
  --tls-parts LIST   parts of the tls suite (default: all): targets and/or loads (a load alone: on every target), ${TLS_PARTS.join(', ')}
  --rounds N         tls and tunnel suites: rounds of each load, every configuration measured
                     once per round in turn; a cell is its median round; scale: cold starts, the
                     median reported (default 3; --quick 1)
  --client NAME      closed-loop client: wrk (default when installed) or autocannon
  --no-install       never apt-get install; configurations missing a tool are reported as skipped
  --out DIR          results folder (default test/bench/results)
  --apps N           apps for the scale and etcd-roll suites (default 100000; quick 2000)
  --certs N          certificate records for the certs suite (default 10000; quick 1000)
  --levels LIST      app counts for propagation (default 0,10000,100000; quick 0,1000)
  --iterations N     puts per propagation level (default 200; quick 20)
  --duration S       measured seconds per proxy run (default 10; quick 2); soak: its length
                     (default 30m; 5m, 300s or 300 are the same)
  --rate N           fixed rate in req/s (default 3000; quick 1000); soak: its rate (default 500)
  --redeploy-every D        soak: one redeploy of the app this often (default 30s)
  --etcd-restart-every D    soak: one etcd member restarted this often (default 5m)
  --router-restart-every D  soak: one router restarted (SIGTERM, drain) this often (default 10m)
  --baseline DIR     a checkout of another router build (built: packages/router/dist), offered as the
                     configuration router-baseline, so two builds are compared within one run
  --baseline-node P  the node binary router-baseline runs on (default: the bench's own)
  --nice N           run everything the bench starts under \`nice -n N\` (e.g. -10, root only): on a
                     machine shared with other work, fewer of its time slices land in the figures
  --noise-retries N  measure a proxy / fixed-rate configuration again, up to N times, while other
                     processes used more than 0.25 cores during it (fixed rate: or the load generator
                     stalled over 5 ms); keeps the calmest (default 2; quick 0)
  --warmup S         warm-up seconds before each proxy / fixed-rate measurement (default 3; quick 1)
  --max-minutes M    hard limit for the whole run (default 40; quick 3)
  --help             this text
`;

/** "5m", "300s" or "300" (seconds) -> seconds. */
function seconds(text, flag) {
  const m = /^(\d+(?:\.\d+)?)(s|m)?$/.exec(text);
  if (!m) throw new Error(`${flag}: ${JSON.stringify(text)} is not a duration (e.g. 300, 300s, 5m)`);
  return Number(m[1]) * (m[2] === 'm' ? 60 : 1);
}

function parseArgs(argv) {
  const o = { only: SUITES, quick: false, install: true, out: path.join(HERE, 'results') };
  const list = (v) => v.split(',').map((s) => s.trim()).filter(Boolean);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    switch (a) {
      case '--': break; // what `pnpm bench -- ...` may pass through
      case '--only': o.only = list(val()).map((s) => (s === 'fixed' || s === 'fixedrate' ? 'fixed-rate' : s)); break;
      case '--quick': o.quick = true; break;
      case '--proxies': o.proxies = list(val()); break;
      case '--tls-parts': o.tlsParts = list(val()); break;
      case '--client': o.client = val(); break;
      case '--no-install': o.install = false; break;
      case '--out': o.out = path.resolve(val()); break;
      case '--apps': o.apps = Number(val()); break;
      case '--certs': o.certs = Number(val()); break;
      case '--levels': o.levels = list(val()).map(Number); break;
      case '--iterations': o.iterations = Number(val()); break;
      case '--duration': o.duration = seconds(val(), a); break;
      case '--rate': o.rate = Number(val()); break;
      case '--redeploy-every': o.redeployEvery = seconds(val(), a); break;
      case '--etcd-restart-every': o.etcdRestartEvery = seconds(val(), a); break;
      case '--router-restart-every': o.routerRestartEvery = seconds(val(), a); break;
      case '--warmup': o.warmup = Number(val()); break;
      case '--baseline': o.baseline = path.resolve(val()); break;
      case '--baseline-node': o.baselineNode = path.resolve(val()); break;
      case '--nice': o.nice = Number(val()); break;
      case '--noise-retries': o.noiseRetries = Number(val()); break;
      case '--rounds': o.rounds = Number(val()); break;
      case '--max-minutes': o.maxMinutes = Number(val()); break;
      case '--help': case '-h': process.stdout.write(HELP); process.exit(0); break;
      default: throw new Error(`unknown flag ${a} (--help lists them)`);
    }
  }
  for (const s of o.only) if (!SUITES.includes(s) && !OPTIONAL_SUITES.includes(s)) throw new Error(`unknown suite ${s}; known: ${[...SUITES, ...OPTIONAL_SUITES].join(', ')}`);
  for (const p of o.proxies ?? []) if (!ALL_TARGETS.includes(p)) throw new Error(`unknown configuration ${p}; known: ${ALL_TARGETS.join(', ')}`);
  if (o.rounds !== undefined && !(Number.isInteger(o.rounds) && o.rounds >= 1)) throw new Error(`--rounds takes a whole number of rounds ≥ 1, got ${o.rounds}`);
  for (const p of o.tlsParts ?? []) if (!TLS_PARTS.includes(p)) throw new Error(`unknown tls part ${p}; known: ${TLS_PARTS.join(', ')}`);
  return o;
}

function gitRevision() {
  try {
    const rev = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: HERE }).toString().trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'packages'], { cwd: HERE }).toString().trim() ? ' (packages/ modified)' : '';
    return rev + dirty;
  } catch {
    return 'unknown';
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  installSignalHandlers();
  const q = opts.quick;
  const t0 = performance.now();
  // Seconds since start on every line: where a run spends its time.
  const log = (...a) => console.log(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(5)}s]`, ...a);
  if (!existsSync(path.join(HERE, '../../packages/router/dist/main.js'))) {
    throw new Error('the router is not built: run `pnpm exec tsc -b` first');
  }
  const soakSeconds = opts.only.includes('soak') ? (opts.duration ?? 30 * 60) : 0;
  // A soak longer than the default limit gets its length plus set-up time.
  const maxMinutes = opts.maxMinutes ?? Math.max(q ? 3 : 40, Math.ceil(soakSeconds / 60) + 10);
  const startedAt = new Date();
  const notes = [];

  // Which tools the chosen suites need; install only then.
  const needsProxies = opts.only.some((s) => s === 'proxy' || s === 'fixed-rate');
  const wanted = opts.proxies ?? ALL_TARGETS;
  const need = [];
  if (needsProxies) {
    if (wanted.includes('haproxy')) need.push('haproxy');
    if (wanted.includes('nginx')) need.push('nginx');
    if (opts.only.includes('proxy') && (opts.client ?? 'wrk') === 'wrk') need.push('wrk');
  }
  // The TLS suite: HAProxy as the reference, wrk for keep-alive HTTPS, h2load for HTTP/2 and handshakes.
  if (opts.only.includes('tls') && (opts.tlsParts ?? TLS_PARTS).some((p) => p !== 'first-handshake')) need.push(...['haproxy', 'wrk', 'h2load'].filter((t) => !need.includes(t)));
  // The tunnel suite: HAProxy for the transfers' reference (an encrypted hop with no tunnel).
  if (opts.only.includes('tunnel') && !need.includes('haproxy')) need.push('haproxy');
  const tools = need.length ? await ensureTools({ install: opts.install, log, need }) : {};
  const client = opts.client ?? (tools.wrk ? 'wrk' : 'autocannon');
  if (client === 'wrk' && !tools.wrk) throw new Error('--client wrk but wrk is not installed (drop --no-install or use --client autocannon)');
  if (opts.only.includes('proxy') && client !== 'wrk') notes.push('closed-loop client is autocannon (JS): it saturates before the proxies do, so req/s is a client limit; requests per proxy CPU-second stays meaningful.');

  const nproc = os.availableParallelism?.() ?? os.cpus().length;
  const pin = nproc >= 2 && canPin();
  const cpus = pin ? { proxy: '0', client: '1', all: '0,1' } : { proxy: undefined, client: undefined, all: undefined };
  const pinning = pin
    ? 'taskset: proxy under test (haproxy, nginx master+worker, router) and lookup.bench on CPU 0; backend, wrk/load generator on CPU 1; router --workers on CPUs 0,1; etcd, propagation replicas and the scale router unpinned.'
    : `no pinning (${nproc} CPU(s)${canPin() ? '' : ', no taskset'}): proxy and client share the CPUs, so req/s is low and noisy.`;

  if (opts.nice !== undefined) {
    setNiceness(opts.nice);
    notes.push(`every process the bench started ran under \`nice -n ${opts.nice}\` (--nice), to lose fewer time slices to other work on the machine.`);
  }
  for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => notes.push(`interrupted by ${sig}: the figures after that point are missing or partial`));

  const tmpDir = await mkdtemp(path.join(os.tmpdir(), 'paas-bench-'));
  onCleanup(() => rm(tmpDir, { recursive: true, force: true }));
  await mkdir(opts.out, { recursive: true });

  let backendP;
  let etcdP;
  let clientP;
  let loadedApps = 0;
  const ctx = {
    quick: q,
    log,
    tools,
    client,
    cpus,
    tmpDir,
    outDir: path.join(HERE, 'results'),
    targets: opts.proxies,
    tlsParts: opts.tlsParts ?? TLS_PARTS,
    baseline: opts.baseline === undefined ? undefined : { bin: path.join(opts.baseline, 'packages/router/bin/paas-router.js'), node: opts.baselineNode ?? process.execPath, dir: opts.baseline },
    connections: 50,
    warmSeconds: opts.warmup ?? (q ? 1 : 3),
    measureSeconds: opts.duration ?? (q ? 2 : 10),
    rate: opts.rate ?? (q ? 1000 : 3000),
    rateSeconds: opts.duration ?? (q ? 2 : 10),
    propagationLevels: opts.levels ?? (q ? [0, 1000] : [0, 10_000, 100_000]),
    propagationIterations: opts.iterations ?? (q ? 20 : 200),
    propagationWarmup: q ? 3 : 20,
    propagationBudgetMs: q ? 15_000 : 120_000,
    scaleApps: opts.apps ?? (q ? 2000 : 100_000),
    scaleChanges: q ? 20 : 200,
    certCount: opts.certs ?? (q ? 1000 : 10_000),
    certApps: q ? 1000 : 10_000,
    certRounds: q ? 1 : 3,
    readyTimeoutMs: 180_000,
    noiseRetries: opts.noiseRetries ?? (q ? 0 : 2),
    rounds: opts.rounds ?? (q ? 1 : 3),
    noiseCores: 0.25,
    // A fixed-rate run whose load generator stalled longer than this is measured again.
    maxLateMs: 5,
    // Before measuring a disturbed configuration again, wait for a calm second (other processes
    // under noiseCores), at most 30 s each time and calmBudgetMs over the whole run.
    calmBudgetMs: q ? 0 : 240_000,
    async calmDown(name, attempt) {
      const maxMs = Math.min(30_000, ctx.calmBudgetMs);
      const c = maxMs >= 1000 ? await waitForCalm({ thresholdCores: ctx.noiseCores, maxMs }) : undefined;
      if (c) ctx.calmBudgetMs -= c.waitedMs;
      log(
        `  ${name}: disturbed, measuring again (${attempt}/${ctx.noiseRetries})` +
          (c ? (c.calm ? ` after ${(c.waitedMs / 1000).toFixed(0)} s waiting for a calm machine` : ` although others still use ${c.cores.toFixed(2)} cores (waited ${(c.waitedMs / 1000).toFixed(0)} s)`) : ''),
      );
    },
    soakSeconds,
    soakRate: opts.rate ?? 500,
    soakRedeployMs: (opts.redeployEvery ?? 30) * 1000,
    soakEtcdRestartMs: (opts.etcdRestartEvery ?? 300) * 1000,
    soakRouterRestartMs: (opts.routerRestartEvery ?? 600) * 1000,
    extraApps: 0,
    backend() {
      backendP ??= (async () => {
        const [port] = await freePorts(1);
        const proc = start('backend', process.execPath, [path.join(HERE, 'lib/backend-server.mjs'), String(port)], { cpus: cpus.client });
        await waitFor(() => proc.lines.some((l) => l.startsWith('listening')), { message: 'backend to listen', proc });
        return { proc, port, url: `http://127.0.0.1:${port}` };
      })();
      return backendP;
    },
    etcd() {
      etcdP ??= startEtcd().then((e) => {
        onCleanup(() => e.cleanup());
        return e;
      });
      return etcdP;
    },
    etcdClient() {
      clientP ??= ctx.etcd().then((e) => {
        const c = etcdClientFor(e.endpoint);
        onCleanup(() => c.close());
        return c;
      });
      return clientP;
    },
    /** Loads apps app0..app<n-1> under /paas (cumulative); resolves how many apps etcd holds. */
    async ensureApps(n) {
      if (n > loadedApps) {
        const backend = await ctx.backend();
        const r = await loadApps(await ctx.etcdClient(), { prefix: PREFIX, from: loadedApps, to: n, backendUrl: backend.url });
        log(`  loaded apps ${loadedApps}..${n - 1} (${r.keys} keys) in ${r.seconds.toFixed(1)} s`);
        loadedApps = n;
      }
      return loadedApps + ctx.extraApps;
    },
  };

  const results = {
    meta: {
      date: startedAt.toISOString(),
      command: `node test/bench/run.mjs ${process.argv.slice(2).join(' ')}`.trim(),
      quick: q,
      node: process.version,
      cpus: nproc,
      pinning,
      routerBin: path.relative(path.join(HERE, '../..'), ROUTER_BIN),
      routerWorkers: await routerSupportsWorkers(),
      gitRevision: gitRevision(),
      loadBefore: machineLoad(),
      tools: Object.fromEntries(Object.entries(tools).map(([k, v]) => [k, v ?? 'missing'])),
      notes,
    },
  };
  if ((results.meta.loadBefore.load1 ?? 0) > 0.5 * nproc) {
    notes.push(`the machine was busy before the run (load ${results.meta.loadBefore.load1}): other processes share these cores, figures are noisier.`);
  }
  if (opts.only.includes('fixed-rate')) notes.push('fixed-rate latency is measured from when each request is handed to its keep-alive connection (not from its scheduled time): Node timers tick at ~1 ms, which would add up to 1 ms of scheduling noise to every percentile.');

  const watchdog = setTimeout(async () => {
    console.error(`\nthe run passed its limit of ${maxMinutes} min: stopping, writing what was measured`);
    results.meta.notes.push(`stopped by the ${maxMinutes} min limit`);
    await finish(results, opts).catch(() => {});
    await stopAll();
    process.exit(2);
  }, maxMinutes * 60_000);
  watchdog.unref();

  const suites = {
    proxy: ['proxy', proxySuite],
    'fixed-rate': ['fixedRate', fixedRateSuite],
    tls: ['tls', tlsSuite],
    propagation: ['propagation', propagationSuite],
    scale: ['scale', scaleSuite],
    lookup: ['lookup', lookupSuite],
    'etcd-roll': ['etcdRoll', etcdRollSuite],
    certs: ['certs', certsSuite],
    soak: ['soak', soakSuite],
    tunnel: ['tunnel', tunnelSuite],
  };
  try {
    for (const name of [...SUITES, ...OPTIONAL_SUITES]) {
      if (!opts.only.includes(name)) continue;
      const [key, fn] = suites[name];
      const t0 = performance.now();
      console.log('');
      log(`== ${name}`);
      try {
        results[key] = await fn(ctx);
      } catch (err) {
        // One broken part must not lose the others' figures.
        console.error(`  ${name} failed: ${err.stack ?? err}`);
        results[key] = { error: String(err.message ?? err).split('\n').slice(0, 3).join(' ') };
      }
      if (results[key]) results[key].elapsedSeconds = (performance.now() - t0) / 1000;
      if (name === 'propagation') ctx.extraApps += ctx.propagationLevels.length * (ctx.propagationWarmup + ctx.propagationIterations);
      if (name === 'scale') ctx.extraApps += ctx.scaleChanges;
    }
  } finally {
    clearTimeout(watchdog);
    await stopAll();
  }
  const files = await finish(results, opts);
  console.log(`\n${files.markdown}\n`);
  console.log(`wrote ${files.paths.join(', ')}`);
}

/** Targets, Markdown, SVG; writes bench-<time>.* and latest.* into the results folder. */
async function finish(results, opts) {
  results.meta.loadAfter = machineLoad();
  results.meta.finishedAt = new Date().toISOString();
  results.targets = evaluateTargets(results);
  const markdown = renderMarkdown(results);
  const svg = renderSvg(results);
  const stamp = results.meta.date.replace(/[:.]/g, '-');
  const paths = [];
  for (const [ext, text] of [['json', `${JSON.stringify(results, null, 2)}\n`], ['md', `${markdown}\n`], ['svg', svg]]) {
    const file = path.join(opts.out, `bench-${stamp}.${ext}`);
    await writeFile(file, text);
    await copyFile(file, path.join(opts.out, `latest.${ext}`));
    const rel = path.relative(process.cwd(), file);
    paths.push(rel.startsWith('..') ? file : rel);
  }
  return { markdown, paths };
}

main().catch(async (err) => {
  console.error(err.stack ?? String(err));
  await stopAll();
  process.exit(1);
});
