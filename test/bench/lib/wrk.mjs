/**
 * Closed-loop load with wrk (C, one thread per core it is given): the client for throughput.
 * autocannon (JS) saturates its own core before a proxy does, so it is only the fallback here
 * (no wrk on the machine, or the smoke test, which must not depend on apt).
 */
import { run } from './procs.mjs';

const UNIT_MS = { us: 1e-3, ms: 1, s: 1000, m: 60_000 };

function toMs(text) {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  return m ? Number(m[1]) * UNIT_MS[m[2]] : NaN;
}

/** Parses `wrk --latency` output. */
export function parseWrk(out) {
  const num = (re) => {
    const m = re.exec(out);
    return m ? Number(m[1]) : undefined;
  };
  const pct = (p) => {
    const m = new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out);
    return m ? toMs(m[1]) : undefined;
  };
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    requests: num(/(\d+) requests in/),
    p50Ms: pct(50),
    p75Ms: pct(75),
    p90Ms: pct(90),
    p99Ms: pct(99),
    non2xx: num(/Non-2xx or 3xx responses:\s+(\d+)/) ?? 0,
    socketErrors: sock ? sock.slice(1).map(Number).reduce((a, b) => a + b, 0) : 0,
  };
}

/**
 * Runs wrk against url for `seconds` with `connections`, one thread (the client core is shared
 * with the backend: more threads would only fight over it). Resolves the parsed figures.
 */
export async function wrk(wrkBin, url, { seconds, connections = 50, threads = 1, host, cpus } = {}) {
  const args = [`-t${threads}`, `-c${connections}`, `-d${seconds}s`, '--latency', '--timeout', '5s'];
  if (host) args.push('-H', `Host: ${host}`);
  args.push(url);
  const res = await run(wrkBin, args, { cpus, timeoutMs: (seconds + 30) * 1000 });
  if (res.code !== 0) throw new Error(`wrk failed (${res.code}): ${res.stderr || res.stdout}`);
  const parsed = parseWrk(res.stdout);
  if (!parsed.rps) throw new Error(`could not parse wrk output:\n${res.stdout}`);
  return { ...parsed, raw: res.stdout };
}
