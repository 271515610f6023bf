import { connect } from 'node:net';
import { expect, inject, it } from 'vitest';
import { runEtcdctl as etcdctl, uniquePrefix } from '../harness/etcd.js';
import { startRouter, startSampleApp } from '../harness/processes.js';

const endpoints = inject('etcdEndpoints');
it('race', async () => {
  const prefix = uniquePrefix('race');
  const app = await startSampleApp({ app: 'x', name: 'x1' });
  const r = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'race', extraArgs: ['--lease-ttl', '2s'] });
  const results: string[] = [];
  await etcdctl(endpoints, ['put', `${prefix}/instances/a/i1`, JSON.stringify({ url: app.url, state: 'ready' })]);
  await etcdctl(endpoints, ['put', `${prefix}/apps/a`, JSON.stringify({ routes: [{ host: `a.test` }], tls: { acme: true } })]);
  for (const freezeMs of [500, 1500, 2500, 3500, 5000]) {
    const token = `tok${freezeMs}xxxxxxxxxxxxxxxxxxxx`;
    await etcdctl(endpoints, ['put', `${prefix}/acme/challenges/${token}`, JSON.stringify({ host: 'a.test', keyAuthorization: `${token}.k` })]);
    await new Promise((res) => setTimeout(res, 300));
    r.proc.kill('SIGSTOP');
    const sock = connect(r.port, '127.0.0.1');
    await new Promise((res) => sock.once('connect', res));
    sock.write(`GET /.well-known/acme-challenge/${token} HTTP/1.1\r\nhost: a.test\r\nconnection: close\r\n\r\n`);
    await new Promise((res) => setTimeout(res, freezeMs));
    const t0 = Date.now();
    r.proc.kill('SIGCONT');
    let data = '';
    sock.on('data', (d) => (data += d));
    await new Promise((res) => sock.once('close', res));
    results.push(`${freezeMs}: ${data.split('\r\n')[0]} after ${Date.now() - t0} ms ${data.split('\r\n\r\n')[1]}`);
  }
  console.log(results.join('\n'));
  console.log(r.proc.stdout.slice(-15).join('\n'));
  expect(results.length).toBe(5);
});
