/**
 * What the interleaved TLS A/B scripts (ab-client-parser.mjs, ab-handshakes.mjs) start before
 * their targets: etcd, the backend on the client core, and app `bench` at AB_HOST with an ECDSA
 * P-256 certificate in etcd, also written to files for bare servers and HAProxy.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startEtcd } from './etcd.mjs';
import { appOps, client } from './etcd-load.mjs';
import { freePorts, waitFor } from './net.mjs';
import { start } from './procs.mjs';
import { ecdsaCertificate } from './tls-certs.mjs';

export const AB_HOST = 'tls.bench.local';
const BACKEND = new URL('./backend-server.mjs', import.meta.url).pathname;

/** Resolves { dir, etcd, backendPort, cert, files: { cert, key, pem } }. */
export async function startAbTls({ prefix, cpus }) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ab-tls-'));
  const etcd = await startEtcd();
  const [backendPort] = await freePorts(1);
  const backend = start('backend', process.execPath, [BACKEND, String(backendPort)], { cpus: cpus.client });
  await waitFor(() => backend.lines.some((l) => l.startsWith('listening')), { message: 'backend' });
  const cert = ecdsaCertificate([AB_HOST, 'localhost']);
  await client(etcd.endpoint).txn([], [...appOps(prefix, 'bench', AB_HOST, `http://127.0.0.1:${backendPort}`, 1), { put: `${prefix}/certs/bench`, value: JSON.stringify(cert) }]);
  const files = { cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem'), pem: path.join(dir, 'haproxy.pem') };
  await writeFile(files.cert, cert.cert);
  await writeFile(files.key, cert.key);
  await writeFile(files.pem, cert.cert + cert.key);
  return { dir, etcd, backendPort, cert, files };
}
