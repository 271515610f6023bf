#!/usr/bin/env node
// A sample app instance for tests and the demo: a plain node:http server with a WebSocket echo.
// Usage: sample-app.mjs --port 0 --name mango-1 --release v1 [--host 127.0.0.1] [--unhealthy]
// Prints one JSON line {"event":"listening","port":N} on stdout once it accepts connections.
//   GET  /healthz          200 "ok" (503 when started with --unhealthy or after POST /admin/unhealthy)
//   GET  /slow?ms=N        answers after N ms (in-flight requests during a drain)
//   GET  /hold?id=K        answers only once /release?id=K is requested (a request held on purpose)
//   GET  /release?id=K     answers every request held under K, then "released N"
//   GET  /held?id=K        how many requests are held under K
//   ANY  /echo             JSON of method, url and request headers
//   GET  /bytes?n=N        N bytes (zeros) streamed in 64 KiB chunks, with backpressure
//   GET  /bytes?n=N&pattern  the same with byte i = PATTERN[i % 65537] (the generator below): a
//                          body whose every byte a client can check, at no fixed offset
//   POST /count            the request body's byte count, read as it streams: {"bytes":N};
//                          ?pause=MS waits MS before reading any of it (an instance slow to read);
//                          ?close ends the connection with the answer
//   ANY  anything else     JSON {"app","instance","release","path"} (~100 bytes)
//   WebSocket upgrade      echoes every message back, prefixed by nothing
import http from 'node:http';
import { parseArgs } from 'node:util';
import { WebSocketServer } from 'ws';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.PORT ?? '0' },
    host: { type: 'string', default: '127.0.0.1' },
    name: { type: 'string', default: process.env.INSTANCE_NAME ?? 'app' },
    app: { type: 'string', default: process.env.APP_NAME ?? 'app' },
    release: { type: 'string', default: process.env.RELEASE ?? 'v1' },
    unhealthy: { type: 'boolean', default: false },
  },
});

let healthy = !values.unhealthy;
/** Requests held by /hold, by id: each entry answers its request. */
const held = new Map();
const ident = { app: values.app, instance: values.name, release: values.release };

const server = http.createServer((req, res) => {
  const q = req.url.indexOf('?');
  const path = q >= 0 ? req.url.slice(0, q) : req.url;
  if (path === '/healthz') {
    res.writeHead(healthy ? 200 : 503, { 'content-type': 'text/plain' });
    res.end(healthy ? 'ok' : 'unhealthy');
    return;
  }
  if (path === '/admin/unhealthy' && req.method === 'POST') {
    healthy = false;
    res.end('ok');
    return;
  }
  if (path === '/slow') {
    const ms = Number(new URLSearchParams(req.url.slice(q + 1)).get('ms') ?? '1000');
    const timer = setTimeout(() => reply(res, { ...ident, path, sleptMs: ms }), ms);
    res.on('close', () => clearTimeout(timer));
    return;
  }
  if (path === '/hold') {
    const id = new URLSearchParams(req.url.slice(q + 1)).get('id') ?? '';
    const waiting = held.get(id) ?? new Set();
    held.set(id, waiting);
    const answer = () => reply(res, { ...ident, path, held: id });
    waiting.add(answer);
    res.on('close', () => waiting.delete(answer));
    return;
  }
  if (path === '/held') {
    const id = new URLSearchParams(req.url.slice(q + 1)).get('id') ?? '';
    res.end(String(held.get(id)?.size ?? 0));
    return;
  }
  if (path === '/release') {
    const id = new URLSearchParams(req.url.slice(q + 1)).get('id') ?? '';
    const waiting = held.get(id) ?? new Set();
    held.delete(id);
    for (const answer of waiting) answer();
    res.end(`released ${waiting.size}`);
    return;
  }
  if (path === '/bytes') {
    const params = new URLSearchParams(req.url.slice(q + 1));
    let left = Number(params.get('n') ?? '0');
    const patterned = params.has('pattern');
    let sent = 0;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(left), 'x-instance': ident.instance });
    const write = () => {
      while (left > 0) {
        const n = Math.min(left, CHUNK.length);
        left -= n;
        const at = sent % PATTERN_LENGTH;
        sent += n;
        const chunk = patterned ? PATTERN2.subarray(at, at + n) : n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n);
        if (!res.write(chunk)) return void res.once('drain', write);
      }
      res.end();
    };
    write();
    return;
  }
  if (path === '/count' && req.method === 'POST') {
    let bytes = 0;
    const params = new URLSearchParams(req.url.slice(q + 1));
    req.on('data', (c) => (bytes += c.length));
    req.on('end', () => {
      // ?close: the connection ends with this answer, so the next request opens a new one.
      if (params.has('close')) res.setHeader('connection', 'close');
      reply(res, { ...ident, bytes });
    });
    // ?pause=<ms>: an instance slow to read the body (it waits before reading any of it).
    const pauseMs = Number(params.get('pause') ?? '0');
    if (pauseMs > 0) {
      req.pause();
      setTimeout(() => req.resume(), pauseMs);
    }
    return;
  }
  if (path === '/echo') {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c) => (body += c));
    req.on('end', () => reply(res, { ...ident, method: req.method, url: req.url, headers: req.headers, body }));
    return;
  }
  req.resume();
  reply(res, { ...ident, path });
});

const CHUNK = Buffer.alloc(64 * 1024);
/** /bytes?pattern: 65,537 bytes of an LCG's high bytes, twice over so any 64 KiB chunk is one slice. */
const PATTERN_LENGTH = 65537;
const PATTERN2 = Buffer.allocUnsafe(2 * PATTERN_LENGTH);
for (let i = 0, x = 1; i < PATTERN_LENGTH; i++) {
  x = (Math.imul(x, 1103515245) + 12345) >>> 0;
  PATTERN2[i] = PATTERN2[i + PATTERN_LENGTH] = x >>> 24;
}

function reply(res, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(200, { 'content-type': 'application/json', 'x-instance': ident.instance, 'x-release': ident.release });
  res.end(body);
}

const wss = new WebSocketServer({ server });
wss.on('connection', (ws, req) => {
  ws.send(JSON.stringify({ hello: ident.instance, release: ident.release, headers: req.headers }));
  ws.on('message', (data, binary) => ws.send(data, { binary }));
});

server.keepAliveTimeout = 65_000;
server.listen(Number(values.port), values.host, () => {
  process.stdout.write(JSON.stringify({ event: 'listening', port: server.address().port, ...ident }) + '\n');
});

function shutdown() {
  for (const c of wss.clients) c.terminate();
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
