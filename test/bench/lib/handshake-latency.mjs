/**
 * Handshake latency, one connection at a time (no queueing in the figure): for each host given,
 * the time from connect to the end of the TLS handshake naming it, then as many handshakes again
 * for the first host (its context cached by then). Its own process, so it runs under --nice like
 * the other clients, away from the bench's own event loop.
 * Usage: node handshake-latency.mjs PORT HOST_PATTERN FIRST STEP SAMPLES
 *   (hosts HOST_PATTERN with {} replaced by FIRST, FIRST+STEP, ...); prints { first, cached } in ms.
 */
import { handshakeMs as handshakeAt } from './tls-handshake.mjs';

const [port, pattern, first, step, samples] = process.argv.slice(2);

const handshakeMs = (servername) => handshakeAt(Number(port), servername);

const host = (i) => pattern.replace('{}', String(i));
const out = { first: [], cached: [] };
for (let k = 0; k < Number(samples); k++) out.first.push(await handshakeMs(host(Number(first) + k * Number(step))));
for (let k = 0; k < Number(samples); k++) out.cached.push(await handshakeMs(host(Number(first))));
console.log(JSON.stringify(out));
