/**
 * Handshake latency, one connection at a time (no queueing in the figure): the time from connect
 * to the end of the TLS handshake, for hosts never handshaken before (the router builds their
 * context on the way) and for one host whose context is cached, measured the same way:
 *
 * - pairs: an uncached host and the cached host, in alternating order, so both kinds see the same
 *   moments of the machine (measuring every uncached host first and every cached one after put
 *   the uncached ones nearer the router's start);
 * - a warm-up first (handshakes for the cached host, untimed): the client's and the router's
 *   code paths compiled and loaded before anything counts;
 * - a pause between handshakes, so one connection's close is not in the next one's time;
 * - one client TLS context for every connection: `tls.connect` otherwise builds a new one per
 *   connection (OpenSSL's SSL_CTX_new, a few hundred µs of the client's CPU inside the timed span);
 * - the client's own garbage collection kept out of the timed spans: a full collection in the
 *   pause every GC_EVERY handshakes (run with --expose-gc; it also ends any incremental marking,
 *   whose steps would otherwise run inside spans), and the spans that a client GC still
 *   overlapped counted in `clientGcInSpans`.
 *
 * The timed span is what it was: from connect until the client's 'secureConnect' (the server's
 * whole flight, context build included, received and checked).
 *
 * Usage: node --expose-gc handshake-latency.mjs PORT HOST_PATTERN FIRST STEP SAMPLES
 *   uncached hosts: HOST_PATTERN with {} replaced by FIRST+STEP, FIRST+2*STEP, ... (SAMPLES of
 *   them); the cached host: FIRST. Prints { first, cached, clientGcInSpans } (ms).
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { createSecureContext } from 'node:tls';
import { handshakeMs } from './tls-handshake.mjs';

const WARMUP = 50;
const PAUSE_MS = 2;
const GC_EVERY = 20;

const [port, pattern, first, step, samples] = process.argv.slice(2);
const host = (i) => pattern.replace('{}', String(i));
const clientContext = createSecureContext({});
const pause = () => new Promise((r) => setTimeout(r, PAUSE_MS));

const gcs = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcs.push([e.startTime, e.startTime + e.duration, e.detail?.kind]);
}).observe({ entryTypes: ['gc'] });

const spans = [];
let done = 0;
async function timed(servername) {
  if (globalThis.gc !== undefined && ++done % GC_EVERY === 0) globalThis.gc();
  await pause();
  const t0 = performance.now();
  const ms = await handshakeMs(Number(port), servername, clientContext);
  spans.push([t0, t0 + ms]);
  return ms;
}

const cachedHost = host(Number(first));
for (let k = 0; k < WARMUP; k++) await handshakeMs(Number(port), cachedHost, clientContext);
const out = { first: [], cached: [] };
for (let k = 0; k < Number(samples); k++) {
  const uncached = host(Number(first) + (k + 1) * Number(step));
  if (k % 2 === 0) {
    out.first.push(await timed(uncached));
    out.cached.push(await timed(cachedHost));
  } else {
    out.cached.push(await timed(cachedHost));
    out.first.push(await timed(uncached));
  }
}
// The observer is told of a collection after it ends: give it a turn.
await pause();
out.clientGcInSpans = spans.filter(([a, b]) => gcs.some(([s, e]) => s < b && e > a)).length;
if (process.env.HS_DEBUG) console.error(JSON.stringify(gcs.filter(([s, e]) => spans.some(([a, b]) => s < b && e > a))));
console.log(JSON.stringify(out));
