/**
 * Constant HTTP load through routers for the e2e tests: a few workers send requests back to back
 * (round-robin over the routers), bounded in count and time, and count every answer and error.
 */
import { Agent, request } from 'undici';

export interface LoadReport {
  total: number;
  ok: number;
  /** status -> count, for answers outside 2xx */
  non2xx: Record<string, number>;
  /** error code -> count (connection refused, reset, timeouts...) */
  errors: Record<string, number>;
  /** x-release header -> count */
  releases: Record<string, number>;
  /** A few examples of failures, for the assertion message. */
  samples: string[];
  ms: number;
}

export interface Load {
  readonly report: LoadReport;
  /** Stops the workers and resolves with the final report once every request in flight ended. */
  stop(): Promise<LoadReport>;
  /** Resolves once `n` more requests completed (to know the load is really flowing). */
  waitForRequests(n: number, timeoutMs?: number): Promise<void>;
}

export function startLoad(opts: { targets: string[]; host: string; path?: string; concurrency?: number; maxRequests?: number; maxMs?: number }): Load {
  const agent = new Agent({ keepAliveTimeout: 10_000, connections: 16 });
  const report: LoadReport = { total: 0, ok: 0, non2xx: {}, errors: {}, releases: {}, samples: [], ms: 0 };
  const t0 = performance.now();
  const maxRequests = opts.maxRequests ?? 200_000;
  const maxMs = opts.maxMs ?? 50_000;
  let stopped = false;
  let next = 0;
  const waiters: { at: number; resolve: () => void }[] = [];

  const worker = async () => {
    while (!stopped && report.total < maxRequests && performance.now() - t0 < maxMs) {
      const target = opts.targets[next++ % opts.targets.length]!;
      try {
        const res = await request(`${target}${opts.path ?? '/'}`, { headers: { host: opts.host }, dispatcher: agent, headersTimeout: 10_000, bodyTimeout: 10_000 });
        await res.body.dump();
        const release = String(res.headers['x-release'] ?? '-');
        report.releases[release] = (report.releases[release] ?? 0) + 1;
        if (res.statusCode >= 200 && res.statusCode < 300) report.ok++;
        else {
          report.non2xx[res.statusCode] = (report.non2xx[res.statusCode] ?? 0) + 1;
          if (report.samples.length < 10) report.samples.push(`${target}: HTTP ${res.statusCode} at ${Math.round(performance.now() - t0)} ms`);
        }
      } catch (err) {
        const code = (err as { code?: string }).code ?? (err as Error).name;
        report.errors[code] = (report.errors[code] ?? 0) + 1;
        if (report.samples.length < 10) report.samples.push(`${target}: ${code} ${(err as Error).message} at ${Math.round(performance.now() - t0)} ms`);
      }
      report.total++;
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (report.total >= waiters[i]!.at) {
          waiters[i]!.resolve();
          waiters.splice(i, 1);
        }
      }
    }
  };
  const workers = Array.from({ length: opts.concurrency ?? 4 }, () => worker());

  return {
    report,
    async stop() {
      stopped = true;
      await Promise.all(workers);
      report.ms = performance.now() - t0;
      await agent.close();
      return report;
    },
    waitForRequests(n, timeoutMs = 10_000) {
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`load: ${n} more requests did not complete within ${timeoutMs} ms (${JSON.stringify(report)})`)), timeoutMs);
        waiters.push({ at: report.total + n, resolve: () => (clearTimeout(timer), resolve()) });
      });
    },
  };
}
