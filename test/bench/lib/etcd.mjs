/**
 * A private etcd for the run (like test/harness/etcd.ts startEtcd, without vitest): free loopback
 * ports, temp data dir, restartable on the same ports and data (to force a router re-list).
 *
 * Limits raised on purpose, for loading 100k apps quickly in few transactions:
 * --max-txn-ops (default 128) and --max-request-bytes (default 1.5 MiB).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { start } from './procs.mjs';
import { freePorts, waitFor } from './net.mjs';

export async function startEtcd({ cpus } = {}) {
  const [clientPort, peerPort] = await freePorts(2);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'paas-bench-etcd-'));
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const args = [
    '--name', 'bench',
    '--data-dir', dataDir,
    '--listen-client-urls', clientUrl,
    '--advertise-client-urls', clientUrl,
    '--listen-peer-urls', peerUrl,
    '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster', `bench=${peerUrl}`,
    '--initial-cluster-state', 'new',
    '--logger', 'zap',
    '--log-level', 'error',
    '--heartbeat-interval', '50',
    '--election-timeout', '300',
    '--max-txn-ops', '20000',
    '--max-request-bytes', String(32 * 1024 * 1024),
    '--quota-backend-bytes', String(4 * 1024 * 1024 * 1024),
  ];
  let proc;
  const launch = async () => {
    proc = start('etcd', 'etcd', args, { cpus });
    await waitFor(
      async () => {
        const res = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1000) });
        return res.ok && (await res.json()).health === 'true';
      },
      { timeoutMs: 20_000, message: `etcd healthy at ${clientUrl}`, proc },
    );
  };
  await launch();
  return {
    endpoint: clientUrl,
    get pid() {
      return proc.pid;
    },
    async restart() {
      await proc.stop();
      await launch();
    },
    async cleanup() {
      await proc.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
