/**
 * A floor for the TLS suite's first-handshake figure: a bare Node `tls.createServer` with one
 * certificate of its own (no SNICallback, no HTTP, no router), offering the router's ALPN. What a
 * TLS 1.3 handshake costs on this machine in Node before the router does anything.
 * Usage: node node-tls-bare.mjs PORT CERT_FILE KEY_FILE
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:tls';

const [port, certFile, keyFile] = process.argv.slice(2);
const server = createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile), ALPNProtocols: ['h2', 'http/1.1'] }, (socket) => {
  socket.on('error', () => {});
  // Read on, so that the client's close is seen and the socket freed.
  socket.resume();
});
server.on('tlsClientError', () => {});
server.listen(Number(port), '127.0.0.1', () => console.log(`listening ${server.address().port}`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
