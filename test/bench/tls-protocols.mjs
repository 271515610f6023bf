#!/usr/bin/env node
/**
 * What the TLS listener costs per request, by protocol, against plain HTTP/1.1 in the same run:
 * one router (pinned to CPU 0 when taskset works), the bench backend, and for each protocol a
 * closed loop of 50 requests in flight for --seconds: HTTP/1.1 plain and over TLS with wrk
 * (keep-alive: handshakes amortised), HTTP/2 with a Node client (5 sessions x 10 streams).
 * Reports requests/s and requests per router CPU-second, and each one's ratio to plain HTTP/1.1.
 *
 *   pnpm exec tsc -b && node test/bench/tls-protocols.mjs [--seconds 5] [--rounds 2]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { get } from 'node:http';
import { connect } from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { cpuMeter } from './lib/cpu.mjs';
import { startEtcd } from './lib/etcd.mjs';
import { freePorts, waitFor, waitForPort } from './lib/net.mjs';
import { installSignalHandlers, start, stopAll } from './lib/procs.mjs';
import { spawnRouter, waitReady } from './lib/router.mjs';
import { wrk } from './lib/wrk.mjs';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' }, rounds: { type: 'string', default: '2' } } });
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);
const HOST = 'bench.example';
installSignalHandlers();

/** A self-signed ECDSA P-256 certificate for HOST (what most certificates are today). */
function certificate() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'paas-bench-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${dir}/key.pem`, '-out', `${dir}/cert.pem`, '-days', '2', '-subj', `/CN=${HOST}`, '-addext', `subjectAltName=DNS:${HOST}`], { stdio: 'ignore' });
  return { cert: readFileSync(`${dir}/cert.pem`, 'utf8'), key: readFileSync(`${dir}/key.pem`, 'utf8') };
}

/** 50 streams in flight over 5 HTTP/2 sessions for `seconds`; resolves the completed count. */
async function h2load(port, seconds) {
  const sessions = Array.from({ length: 5 }, () => connect(`https://127.0.0.1:${port}`, { servername: HOST, rejectUnauthorized: false }));
  let done = 0;
  let failed = 0;
  const until = performance.now() + seconds * 1000;
  const loop = (session) =>
    new Promise((resolve) => {
      const next = () => {
        if (performance.now() > until) return resolve();
        const req = session.request({ ':path': '/', ':authority': HOST });
        req.on('response', (h) => {
          if (h[':status'] !== 200) failed++;
        });
        req.on('data', () => undefined);
        req.on('end', () => {
          done++;
          next();
        });
        req.on('error', () => {
          failed++;
          next();
        });
      };
      next();
    });
  await Promise.all(sessions.flatMap((s) => Array.from({ length: 10 }, () => loop(s))));
  for (const s of sessions) s.close();
  if (failed > 0) throw new Error(`${failed} HTTP/2 requests failed`);
  return done;
}

async function main() {
  const etcd = await startEtcd();
  const [backendPort, tlsPort] = await freePorts(2);
  const backend = start('backend', process.execPath, [new URL('./lib/backend-server.mjs', import.meta.url).pathname, String(backendPort)], { cpus: 1 });
  await waitForPort(backendPort);
  const prefix = '/bench-tls';
  const put = (key, value) => execFileSync('etcdctl', ['--endpoints', etcd.endpoint, 'put', `${prefix}/${key}`, JSON.stringify(value)], { env: { ...process.env, ETCDCTL_API: '3' }, stdio: 'ignore' });
  const { cert, key } = certificate();
  put('apps/bench', { routes: [{ host: HOST }] });
  put('instances/bench/b1', { url: `http://127.0.0.1:${backendPort}`, state: 'ready' });
  put('certs/bench', { cert, key });
  const router = await spawnRouter({ etcd: etcd.endpoint, prefix, id: 'bench-tls', cpus: 0, extraArgs: ['--listen-tls', `127.0.0.1:${tlsPort}`, '--default-cert', 'bench'] });
  await waitReady(router);
  // (fetch drops a Host header: node:http sends it.)
  const served = () => new Promise((resolve) => get(`${router.url}/`, { headers: { host: HOST } }, (res) => resolve(res.resume().statusCode === 200)).on('error', () => resolve(false)));
  await waitFor(served, { message: 'route served', proc: router.proc });

  const measure = async (name, fn) => {
    const meter = cpuMeter([router.proc.pid]);
    const requests = await fn();
    const { cpuSeconds, wallSeconds } = meter.stop();
    return { name, rps: requests / wallSeconds, perCpu: requests / cpuSeconds };
  };
  const runs = {
    'http/1.1 plain (wrk)': async () => Math.round((await wrk('wrk', `${router.url}/`, { seconds: SECONDS, host: HOST, cpus: 1 })).rps * SECONDS),
    'http/1.1 over TLS (wrk)': async () => Math.round((await wrk('wrk', `https://127.0.0.1:${tlsPort}/`, { seconds: SECONDS, host: HOST, cpus: 1 })).rps * SECONDS),
    'h2 over TLS (node http2 client)': () => h2load(tlsPort, SECONDS),
  };
  const results = new Map();
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, fn] of Object.entries(runs)) {
      const r = await measure(name, fn);
      const best = results.get(name);
      if (best === undefined || r.perCpu > best.perCpu) results.set(name, r);
    }
  }
  const base = results.get('http/1.1 plain (wrk)').perCpu;
  console.log(`| protocol | req/s | req per router CPU-s | vs plain |\n| --- | --- | --- | --- |`);
  for (const r of results.values()) console.log(`| ${r.name} | ${Math.round(r.rps)} | ${Math.round(r.perCpu)} | ${(r.perCpu / base).toFixed(2)}x |`);
  await etcd.cleanup();
  backend.stop?.();
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => stopAll());
