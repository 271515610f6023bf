/**
 * The backend every proxy forwards to: a plain node:http server answering every request with the
 * same ~100-byte body. Run as its own process (so it can be pinned with taskset, away from the
 * proxy under test). Usage: node backend-server.mjs PORT
 *
 * keepAliveTimeout is long on purpose: proxies keep idle upstream connections (the router closes
 * its own after 4 s by default); a backend closing them first would turn into reconnects and
 * errors that measure the backend, not the proxy.
 */
import http from 'node:http';

const port = Number(process.argv[2] ?? 0);
const body = Buffer.from(`${'{"ok":true,"from":"bench-backend","pad":"'.padEnd(96, 'x')}"}\n`);
const server = http.createServer((req, res) => {
  // Drain any request body, then answer.
  req.resume();
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;
server.maxRequestsPerSocket = 0;
server.listen(port, '127.0.0.1', () => console.log(`listening ${server.address().port}`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
