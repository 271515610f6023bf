/**
 * What certificate records cost a router: the same apps under two prefixes, one of them with
 * --certs (default 10 000; quick 1 000) certificate records besides (real ECDSA P-256 leaves with
 * their keys, lib/certs.mjs). For each prefix, cold starts one after the other, alternating:
 * spawn → /readyz 200 (polled every 10 ms), the router's CPU time until then (utime + stime, all
 * its threads: less disturbed than wall time by other work on a shared machine) and VmRSS 2 s
 * after ready; the medians, and what the certificates add. The router's /status must list every certificate (none rejected), or the
 * suite fails rather than time rejections.
 */
import { clockTicks, cpuTicks, rssMB } from '../lib/cpu.mjs';
import { benchCa } from '../lib/certs.mjs';
import { appOps } from '../lib/etcd-load.mjs';
import { sleep } from '../lib/procs.mjs';
import { spawnRouter, waitReady } from '../lib/router.mjs';

const PREFIX_PLAIN = '/bench-certs-0';
const PREFIX_CERTS = '/bench-certs-n';
const OPS_PER_TXN = 2000;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function putAll(etcd, ops) {
  for (let i = 0; i < ops.length; i += OPS_PER_TXN) await etcd.txn([], ops.slice(i, i + OPS_PER_TXN));
}

export async function certsSuite(ctx) {
  const certs = ctx.certCount;
  const apps = ctx.certApps;
  const etcd = await ctx.etcd();
  const client = await ctx.etcdClient();
  const backend = await ctx.backend();

  const t0 = performance.now();
  const ca = benchCa();
  const certOps = [];
  for (let i = 0; i < certs; i++) {
    const c = ca.issue(i);
    certOps.push({ put: `${PREFIX_CERTS}/certs/cert${i}`, value: JSON.stringify({ cert: c.certPem, key: c.keyPem }) });
  }
  const appOpsFor = (prefix) => Array.from({ length: apps }, (_, i) => appOps(prefix, `app${i}`, `cert${i}.bench.local`, backend.url)).flat();
  await putAll(client, appOpsFor(PREFIX_PLAIN));
  await putAll(client, [...appOpsFor(PREFIX_CERTS), ...certOps]);
  const recordBytes = certOps.reduce((n, op) => n + op.value.length, 0) / certs;
  ctx.log(`  ${apps} apps under both prefixes, ${certs} certificates (${recordBytes.toFixed(0)} bytes each) under one; made and written in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const runs = { plain: [], certs: [] };
  for (let round = 0; round < ctx.certRounds; round++) {
    for (const [kind, prefix] of [['plain', PREFIX_PLAIN], ['certs', PREFIX_CERTS]]) {
      const router = await spawnRouter({ etcd: etcd.endpoint, prefix, id: `certs-${kind}-${round}` });
      try {
        const coldStartMs = await waitReady(router, { timeoutMs: ctx.readyTimeoutMs, intervalMs: 10 });
        const cpuMs = ((cpuTicks(router.proc.pid) ?? NaN) * 1000) / clockTicks();
        await sleep(2000);
        const rss = rssMB(router.proc.pid);
        if (kind === 'certs' && round === 0) {
          const status = await (await fetch(`${router.admin}/status`)).json();
          if (status.certificates?.count !== certs || status.rejected.length !== 0) {
            throw new Error(`router serves ${status.certificates?.count} certificates of ${certs}, ${status.rejected.length} rejected (first: ${status.rejected[0]?.error})`);
          }
        }
        runs[kind].push({ coldStartMs, cpuMs, rssMB: rss });
        ctx.log(`  ${kind} #${round + 1}: cold start ${coldStartMs.toFixed(0)} ms (CPU ${cpuMs.toFixed(0)} ms), RSS ${rss?.toFixed(0)} MB`);
      } finally {
        await router.proc.stop();
      }
    }
  }
  const summary = (kind) => ({ coldStartMs: median(runs[kind].map((r) => r.coldStartMs)), cpuMs: median(runs[kind].map((r) => r.cpuMs)), rssMB: median(runs[kind].map((r) => r.rssMB)) });
  const plain = summary('plain');
  const withCerts = summary('certs');
  const added = { coldStartMs: withCerts.coldStartMs - plain.coldStartMs, cpuMs: withCerts.cpuMs - plain.cpuMs, rssMB: withCerts.rssMB - plain.rssMB };
  ctx.log(`  ${certs} certificates add ${added.coldStartMs.toFixed(0)} ms to cold start (CPU to ready: ${added.cpuMs.toFixed(0)} ms) and ${added.rssMB.toFixed(1)} MB RSS (medians of ${ctx.certRounds})`);
  return { apps, certs, recordBytes, rounds: ctx.certRounds, plain, withCerts, added, runs };
}
