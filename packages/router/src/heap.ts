/**
 * A V8 setting for the router, which passes Buffers on.
 *
 * V8 13 (Node 24) counts every ArrayBuffer's memory on its own and starts a full mark-compact
 * each 64 MB of them allocated, however briefly they live: a proxy allocates one or more per
 * read it passes on, so it marked its whole heap every few hundred milliseconds of a transfer
 * (README, "Agent tunnels": most of a tunnel's CPU per byte). Counted in the heap's global limit
 * instead, which grows with what survives a collection, short-lived Buffers die in young
 * collections. Node 22's V8 (12) and Node 26's (14) do not collect this way: the flag is set only
 * on V8 13, where it exists, and not when the operator gave it either way on the command line.
 * V8 reads it at each allocation-limit check, so setting it once running takes effect. The agent
 * does not set it: its 64 MB old-generation floor already kept it from full collections, and the
 * flag only raised its RSS.
 */
import { setFlagsFromString } from 'node:v8';

const FLAG = 'external-memory-accounted-in-global-limit';

export function countBuffersInHeapLimit(execArgv: readonly string[] = process.execArgv): void {
  if (!process.versions.v8.startsWith('13.')) return;
  if (execArgv.some((a) => a.replaceAll('_', '-').replace(/^--no-/, '--') === `--${FLAG}`)) return;
  setFlagsFromString(`--${FLAG}`);
}
