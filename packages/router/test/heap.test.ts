/**
 * countBuffersInHeapLimit (src/heap.ts), in a child Node of this version: with it, a gigabyte of
 * short-lived Buffers costs a few full mark-compacts at most; on V8 13 (Node 24) an operator's
 * `--no-external-memory-accounted-in-global-limit` is left alone, and the collections come back.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const HEAP = fileURLToPath(new URL('../dist/heap.js', import.meta.url));

/** Full mark-compacts while 1 GiB of 128 KiB Buffers is allocated and dropped, after the call. */
function majorCollections(nodeFlags: string[]): number {
  const script = `
    import { PerformanceObserver, constants } from 'node:perf_hooks';
    const { countBuffersInHeapLimit } = await import(${JSON.stringify(HEAP)});
    countBuffersInHeapLimit();
    let major = 0;
    new PerformanceObserver((list) => { for (const e of list.getEntries()) if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) major++; }).observe({ entryTypes: ['gc'] });
    let n = 0;
    const step = () => {
      for (let i = 0; i < 64; i++) n += Buffer.allocUnsafe(128 * 1024).length;
      if (n < 1024 ** 3) setImmediate(step);
      else setTimeout(() => process.stdout.write(String(major)), 20);
    };
    step();`;
  return Number(execFileSync(process.execPath, [...nodeFlags, '--input-type=module', '-e', script], { env: { ...process.env, NODE_OPTIONS: '' }, encoding: 'utf8', timeout: 60_000 }));
}

describe('countBuffersInHeapLimit', () => {
  it('keeps a gigabyte of short-lived Buffers to a few full collections', () => {
    expect(majorCollections(['--initial-old-space-size=64'])).toBeLessThanOrEqual(4);
  });

  it.runIf(process.versions.v8.startsWith('13.'))('leaves the flag to an operator who gave it: with --no-…, V8 13 collects every 64 MB again', () => {
    expect(majorCollections(['--initial-old-space-size=64', '--no-external-memory-accounted-in-global-limit'])).toBeGreaterThanOrEqual(8);
  });
});
