// A sample app instance for the compose stack, with no dependencies (it runs in the stock node
// image, nothing from the host): GET /healthz answers "ok", anything else a JSON line naming the
// app and the instance, so a request through the routers shows which instance served it.
// Environment: PORT (default 7001), APP, INSTANCE, RELEASE.
import http from 'node:http';

const ident = { app: process.env.APP ?? 'app', instance: process.env.INSTANCE ?? 'app-1', release: process.env.RELEASE ?? 'v1' };
const server = http.createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(`${JSON.stringify({ ...ident, path: req.url })}\n`);
});
server.listen(Number(process.env.PORT ?? 7001), process.env.HOST ?? '0.0.0.0', () => {
  console.log(JSON.stringify({ event: 'listening', port: server.address().port, ...ident }));
});
// The stack stops it with SIGTERM; node's default would be to die mid-response.
process.on('SIGTERM', () => server.close(() => process.exit(0)));
