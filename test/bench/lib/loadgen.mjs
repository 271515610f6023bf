/**
 * Node load generators, run as a child process (so they can be pinned away from the proxy, and so
 * their event loop does not share the orchestrator's). Prints one JSON line on stdout.
 *
 *   node loadgen.mjs closed URL HOST SECONDS CONNECTIONS [WARM_SECONDS]
 *     closed loop with autocannon: the throughput client when wrk is missing (smoke test); a
 *     warm-up run first, in the same process (saves a node start per configuration).
 *   node loadgen.mjs rate URL HOST SECONDS RATE [WARM_SECONDS]
 *     open loop at a fixed rate (requests per second), latency per request; the first
 *     WARM_SECONDS run at the same rate on the same connections and are not recorded (a separate
 *     warm-up process would leave this one with cold connections and a cold JIT).
 *
 * Why not autocannon's overallRate for the fixed rate: autocannon limits each connection to
 * rate/connections requests *per second* and sends them back to back, then idles until the next
 * second — bursts at the top of every second, not a fixed rate. This loop starts requests spread
 * evenly: every 1 ms timer tick sends the requests that are due, on a keep-alive undici Pool
 * (connections open as needed, up to 64, so a slow answer never delays the next start). Latency
 * is measured from the actual send to the end of the body with hrtime (µs resolution). Requests
 * that were due while the loop was late are still sent (catch-up), and how late is reported.
 */
import { Pool } from 'undici';

const [mode, url, host, secondsArg, nArg, warmArg] = process.argv.slice(2);
const warmSeconds = Number(warmArg ?? 0);
const seconds = Number(secondsArg);
const n = Number(nArg);

function percentile(sorted, p) {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function closed() {
  const { default: autocannon } = await import('autocannon');
  if (warmSeconds > 0) await autocannon({ url, connections: n, duration: warmSeconds, headers: { host }, pipelining: 1 });
  process.stdout.write('measuring\n');
  const result = await autocannon({ url, connections: n, duration: seconds, headers: { host }, pipelining: 1 });
  const non2xx = result.non2xx + result.errors + result.timeouts;
  process.stdout.write(
    `${JSON.stringify({
      rps: result.requests.average,
      requests: result.requests.total,
      p50Ms: result.latency.p50,
      p99Ms: result.latency.p99,
      non2xx,
      client: 'autocannon',
    })}\n`,
  );
}

async function rate() {
  const origin = new URL(url).origin;
  const path = new URL(url).pathname;
  const pool = new Pool(origin, { connections: 64, pipelining: 1, keepAliveTimeout: 60_000 });
  const warm = Math.round(warmSeconds * n);
  const total = warm + Math.round(seconds * n);
  const latUs = new Float64Array(total);
  let done = 0;
  let errors = 0;
  let non2xx = 0;
  let sent = 0;
  let maxLateMs = 0;
  let t0 = performance.now();
  const one = async (i) => {
    const start = process.hrtime.bigint();
    try {
      const res = await pool.request({ path, method: 'GET', headers: { host } });
      await res.body.dump();
      if (res.statusCode !== 200 && i >= warm) non2xx++;
      latUs[i] = Number(process.hrtime.bigint() - start) / 1000;
    } catch {
      if (i >= warm) errors++;
      latUs[i] = NaN;
    }
    done++;
  };
  // When this process itself was stalled (descheduled by other work on the machine, a GC), the
  // requests due meanwhile are skipped rather than sent in one burst: a burst would queue in the
  // proxy and be blamed on it. Skips and the longest stall are reported; the suite measures
  // again when the stall was long (requests in flight during it were inflated too).
  const maxBacklog = Math.max(1, Math.ceil(n * 0.005));
  let skipped = 0;
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      const due = Math.min(total, Math.floor(((now - t0) / 1000) * n) + 1);
      if (sent >= warm && due - sent > 1) maxLateMs = Math.max(maxLateMs, (due - sent - 1) * (1000 / n));
      if (due - sent > maxBacklog) {
        const skip = due - sent - maxBacklog;
        for (let k = sent; k < sent + skip; k++) latUs[k] = -1;
        if (sent + skip > warm) skipped += Math.min(skip, sent + skip - warm);
        sent += skip;
        done += skip;
      }
      while (sent < due) one(sent++);
      if (sent < total) setTimeout(tick, 1);
      else resolve();
    };
    tick();
  });
  const deadline = Date.now() + 10_000;
  while (done < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  const elapsed = (performance.now() - t0) / 1000 - warmSeconds;
  await pool.close();
  // Only requests started after the warm-up; unanswered ones (0) are dropped as errors.
  const sorted = Array.from(latUs.subarray(warm, total)).filter((v) => v > 0 && !Number.isNaN(v)).sort((a, b) => a - b);
  const measured = sorted.length;
  process.stdout.write(
    `${JSON.stringify({
      rate: n,
      skippedRequests: skipped,
      achievedRps: measured / elapsed,
      requests: measured,
      errors,
      non2xx,
      maxLateMs,
      p50Ms: percentile(sorted, 50) / 1000,
      p99Ms: percentile(sorted, 99) / 1000,
      p999Ms: percentile(sorted, 99.9) / 1000,
      maxMs: sorted[sorted.length - 1] / 1000,
    })}\n`,
  );
}

await (mode === 'closed' ? closed() : rate());
process.exit(0);
