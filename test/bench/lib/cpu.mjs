/**
 * CPU time and memory of processes from /proc: what a proxy spent per request, and how much
 * memory the router holds. CPU = utime + stime (fields 14 and 15 of /proc/<pid>/stat, in clock
 * ticks; `getconf CLK_TCK`, 100 on Linux). Those fields already cover every thread of the
 * process; child processes (nginx workers, router workers) are summed explicitly.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { descendants } from './procs.mjs';

let ticks;
export function clockTicks() {
  if (ticks === undefined) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

/** utime + stime of one pid in ticks, or undefined when it is gone. */
export function cpuTicks(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state), so field N is fields[N - 3].
    return Number(fields[14 - 3]) + Number(fields[15 - 3]);
  } catch {
    return undefined;
  }
}

/**
 * A CPU meter over a process and its descendants (taken at start: a proxy's workers exist by
 * then). stop() returns CPU seconds spent in between, and which pids were counted.
 */
export function cpuMeter(rootPids) {
  const pids = [...new Set(rootPids.flatMap((p) => [p, ...descendants(p)]))];
  const before = new Map(pids.map((p) => [p, cpuTicks(p) ?? 0]));
  const t0 = process.hrtime.bigint();
  return {
    pids,
    stop() {
      let total = 0;
      for (const [pid, start] of before) total += (cpuTicks(pid) ?? start) - start;
      const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
      return { cpuSeconds: total / clockTicks(), wallSeconds: wallS, pids };
    },
  };
}

/** VmRSS of a pid in MB (from /proc/<pid>/status), or undefined when it is gone. */
export function rssMB(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Samples the RSS of `pid` every `intervalMs` until stop(); stop() returns { peakMB, samples }. */
export function rssSampler(pid, intervalMs = 20) {
  let peak = 0;
  let samples = 0;
  const tick = () => {
    const v = rssMB(pid);
    if (v !== undefined) {
      samples++;
      if (v > peak) peak = v;
    }
  };
  tick();
  const timer = setInterval(tick, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      tick();
      return { peakMB: peak, samples };
    },
  };
}

/** 1-minute load average and core count, printed with the results: a busy machine skews them. */
export function machineLoad() {
  try {
    const [one, five] = readFileSync('/proc/loadavg', 'utf8').split(' ').map(Number);
    return { load1: one, load5: five };
  } catch {
    return {};
  }
}

/** Busy CPU-seconds of the whole machine so far (all cores), from the `cpu` line of /proc/stat. */
function machineBusySeconds() {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
    const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
    return (user + nice + system + irq + softirq + steal) / clockTicks();
  } catch {
    return NaN;
  }
}

/** This process plus its reaped children (cutime/cstime: the client runs that have exited). */
function selfAndReapedSeconds() {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[14 - 3]) + Number(fields[15 - 3]) + Number(fields[16 - 3]) + Number(fields[17 - 3])) / clockTicks();
}

/**
 * CPU used on this machine by processes that are NOT part of the measurement (another engineer's
 * benchmark, CI, ...), in cores: machine busy time minus ours (the pids given, e.g. proxy and
 * backend, plus this process and the clients it ran and reaped) over wall time. Call stop() after
 * the client has exited. Above ~0.1 core the figures beside it are disturbed.
 */
export function foreignCpuMeter(ourPids) {
  const ours = cpuMeter(ourPids);
  const m0 = machineBusySeconds();
  const s0 = selfAndReapedSeconds();
  return {
    stop() {
      const o = ours.stop();
      const machine = machineBusySeconds() - m0;
      const self = selfAndReapedSeconds() - s0;
      return Math.max(0, (machine - o.cpuSeconds - self) / o.wallSeconds);
    },
  };
}

/**
 * Waits (at most maxMs) until the machine is calm: over a 1 s window, processes other than this
 * one used at most `thresholdCores`. Call it between runs, while nothing we started is busy, so
 * a re-measurement does not land in the same burst of other work. Resolves { calm, waitedMs, cores }.
 */
export async function waitForCalm({ thresholdCores, maxMs }) {
  const started = performance.now();
  let cores = NaN;
  for (;;) {
    const m0 = machineBusySeconds();
    const s0 = selfAndReapedSeconds();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 1000));
    cores = (machineBusySeconds() - m0 - (selfAndReapedSeconds() - s0)) / ((performance.now() - t0) / 1000);
    const waitedMs = performance.now() - started;
    if (cores <= thresholdCores) return { calm: true, waitedMs, cores };
    if (waitedMs >= maxMs) return { calm: false, waitedMs, cores };
  }
}
