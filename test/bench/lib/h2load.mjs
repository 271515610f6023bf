/**
 * h2load (nghttp2-client, C): the TLS suite's client for HTTP/2 and for full handshakes. It sets
 * SNI from the URL's host and connects where --connect-to says, so the server name is a real
 * one on loopback. Resumption: h2load keeps a session for a client that reconnects (measured:
 * `--h1` with `Connection: close` resumed all but the first handshakes), but a run where every
 * client makes one connection (-c N -n N) offers no session: each handshake is a full one.
 */
import { run } from './procs.mjs';

/** Parses h2load's summary. */
export function parseH2load(out) {
  const fin = /finished in ([\d.]+)(ms|s), ([\d.]+) req\/s/.exec(out);
  const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  const st = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  return {
    seconds: fin ? Number(fin[1]) / (fin[2] === 'ms' ? 1000 : 1) : undefined,
    rps: fin ? Number(fin[3]) : undefined,
    succeeded: req ? Number(req[4]) : undefined,
    failed: req ? Number(req[5]) + Number(req[6]) + Number(req[7]) : undefined,
    non2xx: st ? Number(st[2]) + Number(st[3]) + Number(st[4]) : undefined,
  };
}

/** One h2load run; `host` is the name in the URL (SNI, :authority), the connection goes to 127.0.0.1:port. */
export async function h2load(bin, { host, port, args, cpus, timeoutMs = 120_000 }) {
  const res = await run(bin, ['-t1', `--connect-to=127.0.0.1:${port}`, ...args, `https://${host}:${port}/`], { cpus, timeoutMs });
  const parsed = parseH2load(res.stdout);
  if (res.code !== 0 || parsed.succeeded === undefined) throw new Error(`h2load failed (${res.code}): ${(res.stderr || res.stdout).slice(-800)}`);
  return parsed;
}

/** HTTP/2, `connections` x `streams` in flight, for `seconds`: { rps, requests, errors }. */
export async function h2Streams(bin, { host, port, connections, streams, seconds, cpus }) {
  const r = await h2load(bin, { host, port, cpus, args: [`-c${connections}`, `-m${streams}`, `-D${seconds}`], timeoutMs: (seconds + 30) * 1000 });
  return { rps: r.rps, requests: r.succeeded, errors: r.failed + (r.non2xx ?? 0) };
}

/**
 * Full handshakes for `seconds`: batches of `batch` new h2load clients (one TLS 1.3 connection,
 * one HTTP/1.1 request, no session to resume), one batch after another. Resolves
 * { handshakes, errors, seconds, batches }.
 */
export async function handshakeLoop(bin, { host, port, seconds, batch = 100, cpus }) {
  const t0 = performance.now();
  let handshakes = 0;
  let errors = 0;
  let batches = 0;
  while (performance.now() - t0 < seconds * 1000) {
    const r = await h2load(bin, { host, port, cpus, args: ['--h1', `-c${batch}`, `-n${batch}`, '-m1'] });
    handshakes += r.succeeded;
    errors += r.failed + (r.non2xx ?? 0);
    batches++;
  }
  return { handshakes, errors, seconds: (performance.now() - t0) / 1000, batches };
}
