import { describe, expect, it } from 'vitest';
import { LoadSampler } from '../src/status/load.js';

/** Burns `ms` of this process's CPU time on the event loop. */
function burnCpu(ms: number): void {
  const start = process.cpuUsage();
  for (;;) {
    for (let i = 0; i < 1e5; i++) Math.sqrt(i);
    const used = process.cpuUsage(start);
    if ((used.user + used.system) / 1000 >= ms) return;
  }
}

describe('LoadSampler', () => {
  it('reports answers per second, connections, event-loop use and CPU over the period since the last sample', async () => {
    let answered = 1000;
    const outerStart = performance.now();
    const sampler = new LoadSampler({ answered: () => answered, connections: () => 7 });
    const innerStart = performance.now();
    expect(sampler.current).toBeUndefined();
    answered += 50;
    const burnStart = performance.now();
    burnCpu(200);
    // The loop was busy the whole time the burn took (its CPU counts every thread of the process,
    // so the wall time, not the 200 ms, bounds the loop's busy time).
    const burnt = (performance.now() - burnStart) / 1000;
    await new Promise((r) => setTimeout(r, 100));
    const inner = (performance.now() - innerStart) / 1000;
    const load = sampler.sample();
    const outer = (performance.now() - outerStart) / 1000;
    expect(sampler.current).toBe(load);
    // The sampler's period lies between `inner` and `outer`; its figures are per second of it,
    // rounded to two decimals. 50 answers (the 1000 before it existed do not count).
    expect(load.requestsPerSecond * outer).toBeGreaterThanOrEqual(50 - 0.01 * outer);
    expect(load.requestsPerSecond * inner).toBeLessThanOrEqual(50 + 0.01 * inner);
    expect(load.connections).toBe(7);
    expect(load.cpu * outer).toBeGreaterThanOrEqual(0.2 - 0.01 * outer);
    expect(load.eventLoopUtilization * outer).toBeGreaterThanOrEqual(burnt - 0.01 * outer);
    expect(load.eventLoopUtilization).toBeLessThanOrEqual(1);
    expect(load.rssBytes).toBe(Math.round(load.rssBytes));
    expect(load.rssBytes).toBeGreaterThan(10 * 1024 * 1024);
    expect(load.loadAverage).toBeGreaterThanOrEqual(0);
    expect(Date.parse(load.sampledAt)).not.toBeNaN();

    // The next period starts at the previous sample: nothing answered since, nothing counted.
    await new Promise((r) => setTimeout(r, 20));
    expect(sampler.sample().requestsPerSecond).toBe(0);
  });
});
