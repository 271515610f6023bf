/**
 * A 3-member etcd cluster on loopback for the soak run: free ports, temp data dirs, and
 * restartMember(k) — SIGTERM one member, start it again on the same ports and data — while the
 * other two keep quorum.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { start } from './procs.mjs';
import { freePorts, waitFor } from './net.mjs';

async function healthy(clientUrl) {
  const res = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1000) });
  return res.ok && (await res.json()).health === 'true';
}

export async function startEtcdCluster({ size = 3 } = {}) {
  const ports = await freePorts(size * 2);
  const token = `paas-soak-${process.pid}-${Date.now()}`;
  const members = [];
  for (let k = 0; k < size; k++) {
    members.push({
      name: `m${k}`,
      clientUrl: `http://127.0.0.1:${ports[2 * k]}`,
      peerUrl: `http://127.0.0.1:${ports[2 * k + 1]}`,
      dataDir: await mkdtemp(path.join(os.tmpdir(), `paas-soak-etcd-m${k}-`)),
      proc: undefined,
    });
  }
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
  const launch = (m) => {
    // The initial-cluster flags only matter on the first start; a restart reads its data dir.
    m.proc = start(`etcd ${m.name}`, 'etcd', [
      '--name', m.name,
      '--data-dir', m.dataDir,
      '--listen-client-urls', m.clientUrl,
      '--advertise-client-urls', m.clientUrl,
      '--listen-peer-urls', m.peerUrl,
      '--initial-advertise-peer-urls', m.peerUrl,
      '--initial-cluster', initialCluster,
      '--initial-cluster-token', token,
      '--initial-cluster-state', 'new',
      '--logger', 'zap',
      '--log-level', 'error',
    ]);
  };
  members.forEach(launch);
  // A member reports healthy only once the cluster has a leader.
  await Promise.all(members.map((m) => waitFor(() => healthy(m.clientUrl), { timeoutMs: 30_000, message: `etcd ${m.name} healthy`, proc: m.proc })));
  return {
    endpoints: members.map((m) => m.clientUrl),
    members,
    pids: () => members.map((m) => m.proc.pid),
    /** Stops member k (SIGTERM) and starts it again; resolves once it is healthy: { downMs }. */
    async restartMember(k) {
      const m = members[k];
      const t0 = performance.now();
      await m.proc.stop();
      launch(m);
      await waitFor(() => healthy(m.clientUrl), { timeoutMs: 30_000, message: `etcd ${m.name} healthy again`, proc: m.proc });
      return { downMs: performance.now() - t0 };
    },
    async cleanup() {
      await Promise.all(members.map((m) => m.proc?.stop()));
      await Promise.all(members.map((m) => rm(m.dataDir, { recursive: true, force: true })));
    },
  };
}
