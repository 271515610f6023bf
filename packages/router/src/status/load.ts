/**
 * The router's load as its status record publishes it, so that a deployer (or an operator's
 * `paas-deploy status`) can tell a router near capacity from an idle one without scraping
 * metrics: answers per second, open client connections, event-loop utilisation, CPU, RSS and the
 * machine's load average, each over the period since the previous sample.
 */
import { loadavg } from 'node:os';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { RouterLoad } from '@paas/registry';

export interface LoadSources {
  /** Answers given so far (a running total). */
  answered(): number;
  /** Client connections open now. */
  connections(): number;
}

export class LoadSampler {
  private last: RouterLoad | undefined;
  private at = performance.now();
  private answered: number;
  private elu: EventLoopUtilization = performance.eventLoopUtilization();
  private cpu = process.cpuUsage();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly sources: LoadSources) {
    this.answered = sources.answered();
  }

  /** Samples every `intervalMs` from now on (the first sample after one interval). */
  start(intervalMs: number): void {
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** The latest sample; undefined before the first. */
  get current(): RouterLoad | undefined {
    return this.last;
  }

  /** Takes a sample of the period since the previous one and returns it. */
  sample(): RouterLoad {
    const now = performance.now();
    const seconds = Math.max((now - this.at) / 1000, 1e-3);
    const answered = this.sources.answered();
    const requests = answered - this.answered;
    const elu = performance.eventLoopUtilization(this.elu);
    const cpu = process.cpuUsage(this.cpu);
    this.at = now;
    this.answered = answered;
    this.elu = performance.eventLoopUtilization();
    this.cpu = process.cpuUsage();
    this.last = {
      requestsPerSecond: round(requests / seconds),
      connections: this.sources.connections(),
      eventLoopUtilization: round(Math.min(1, Math.max(0, elu.utilization))),
      cpu: round((cpu.user + cpu.system) / 1e6 / seconds),
      rssBytes: process.memoryUsage.rss(),
      loadAverage: round(loadavg()[0]!),
      sampledAt: new Date().toISOString(),
    };
    return this.last;
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
