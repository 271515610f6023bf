/**
 * A 3-member etcd cluster for the etcd-roll and soak suites (test/harness/etcd-cluster.ts without
 * vitest and without peer forwarders): free loopback ports, temp data dirs, members stopped and
 * started one by one on the same ports and data. etcd's default timing (heartbeat 100 ms, election 1000 ms), as in
 * production; the bench's raised limits (see etcd.mjs) for loading 100k apps quickly.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { clockTicks, cpuTicks } from './cpu.mjs';
import { start } from './procs.mjs';
import { freePorts, waitFor } from './net.mjs';

export async function startEtcdCluster({ size = 3 } = {}) {
  const ports = await freePorts(size * 2);
  const dataRoot = await mkdtemp(path.join(os.tmpdir(), 'paas-bench-etcd-cluster-'));
  const names = Array.from({ length: size }, (_, i) => `m${i}`);
  const peerUrl = (i) => `http://127.0.0.1:${ports[size + i]}`;
  const initialCluster = names.map((n, i) => `${n}=${peerUrl(i)}`).join(',');
  const members = names.map((name, i) => {
    const clientUrl = `http://127.0.0.1:${ports[i]}`;
    const args = [
      '--name', name,
      '--data-dir', path.join(dataRoot, name),
      '--listen-client-urls', clientUrl,
      '--advertise-client-urls', clientUrl,
      '--listen-peer-urls', peerUrl(i),
      '--initial-advertise-peer-urls', peerUrl(i),
      '--initial-cluster', initialCluster,
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', `paas-bench-${process.pid}`,
      '--logger', 'zap',
      '--log-level', 'error',
      '--max-txn-ops', '20000',
      '--max-request-bytes', String(32 * 1024 * 1024),
      '--quota-backend-bytes', String(4 * 1024 * 1024 * 1024),
    ];
    let proc;
    let earlierTicks = 0;
    const member = {
      name,
      clientUrl,
      get pid() {
        return proc?.running ? proc.pid : undefined;
      },
      /** CPU seconds of every process this member ran so far. */
      cpuSeconds() {
        return (earlierTicks + (proc?.running ? cpuTicks(proc.pid) ?? 0 : 0)) / clockTicks();
      },
      spawn() {
        proc = start(`etcd ${name}`, 'etcd', args);
      },
      async stop() {
        if (!proc?.running) return;
        earlierTicks += cpuTicks(proc.pid) ?? 0;
        await proc.stop({ timeoutMs: 20_000 });
      },
      /** Starts it again; resolves once it answers /health with a leader (it has caught up). */
      async start() {
        member.spawn();
        await waitHealthy(member, 120_000);
      },
    };
    return member;
  });
  const waitHealthy = (m, timeoutMs) =>
    waitFor(
      async () => {
        const res = await fetch(`${m.clientUrl}/health`, { signal: AbortSignal.timeout(2000) });
        return res.ok && (await res.json()).health === 'true';
      },
      { timeoutMs, intervalMs: 50, message: `etcd ${m.name} healthy` },
    );
  for (const m of members) m.spawn();
  await Promise.all(members.map((m) => waitHealthy(m, 60_000)));
  return {
    endpoints: members.map((m) => m.clientUrl),
    members,
    /** Stops member k (SIGTERM) and starts it again; resolves once it is healthy: { downMs }. */
    async restartMember(k) {
      const t0 = performance.now();
      await members[k].stop();
      await members[k].start();
      return { downMs: performance.now() - t0 };
    },
    async cleanup() {
      await Promise.all(members.map((m) => m.stop()));
      await rm(dataRoot, { recursive: true, force: true });
    },
  };
}
