/**
 * Node's floor for the TLS suite: a bare `http2.createSecureServer` (HTTP/2 and HTTP/1.1 by ALPN,
 * TLS 1.3, its own certificate, no SNICallback) that answers every request itself with the
 * backend's body. No proxying, no routing, no metrics: what any Node TLS server pays, so the
 * router's figures can be split into Node's share and the router's own.
 * The same handler also listens in plain HTTP/1.1 on PLAIN_PORT: what TLS adds in Node, per request.
 * Usage: node node-tls-server.mjs PORT PLAIN_PORT CERT_FILE KEY_FILE
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createSecureServer } from 'node:http2';

const [port, plainPort, certFile, keyFile] = process.argv.slice(2);
const body = Buffer.from(`${'{"ok":true,"from":"bench-backend","pad":"'.padEnd(96, 'x')}"}\n`);
const answer = (req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
};
const server = createSecureServer({ cert: readFileSync(certFile), key: readFileSync(keyFile), allowHTTP1: true, ALPNProtocols: ['h2', 'http/1.1'], minVersion: 'TLSv1.3' }, answer);
const plain = createServer(answer);
plain.keepAliveTimeout = 120_000;
plain.listen(Number(plainPort), '127.0.0.1', () => server.listen(Number(port), '127.0.0.1', () => console.log(`listening ${server.address().port}`)));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
