/**
 * Child processes of one bench run: spawn (optionally pinned to CPUs with taskset), wait for them,
 * stop them, and make sure none outlives the run — on normal end, on an error and on Ctrl-C.
 *
 * Why a registry instead of per-suite try/finally only: a suite that throws half-way (or a
 * SIGINT while wrk runs) must still stop etcd, the proxies and the backend, and the exit
 * handler below is the last line of defence (SIGKILL, synchronous, whatever is left).
 */
import { spawn, execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const live = new Set();
let cleanupHooks = [];

/** Is `taskset` usable here? (util-linux; absent on some minimal images.) */
let tasksetOk;
export function canPin() {
  if (tasksetOk === undefined) {
    try {
      execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
      tasksetOk = true;
    } catch {
      tasksetOk = false;
    }
  }
  return tasksetOk;
}

let niceness;
/**
 * Runs every process started from now on under `nice -n N` (N < 0 needs root): on a machine
 * shared with other work, the processes being measured then win the CPU from it more often.
 */
export function setNiceness(n) {
  niceness = n;
}

/**
 * Spawns `command args`. `cpus` ("0", "1", "0,1") pins it with taskset, which execs the command,
 * so the pid we get is the command's own pid (what /proc CPU accounting needs).
 */
export function start(name, command, args, { cpus, env, cwd, keepLines = 200 } = {}) {
  const pinned = cpus !== undefined && canPin();
  // taskset and nice both exec the command: the pid we get stays the command's own.
  const niced = niceness !== undefined ? ['nice', '-n', String(niceness), command, ...args] : [command, ...args];
  const [cmd, argv] = pinned ? ['taskset', ['-c', String(cpus), ...niced]] : [niced[0], niced.slice(1)];
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env }, cwd });
  const lines = [];
  const keep = (chunk) => {
    for (const line of chunk.toString().split('\n')) {
      if (line.length === 0) continue;
      lines.push(line);
      if (lines.length > keepLines) lines.shift();
    }
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exitInfo;
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      live.delete(proc);
      resolve(exitInfo);
    });
    child.once('error', (err) => {
      lines.push(`spawn error: ${err.message}`);
      exitInfo = { code: -1, signal: null };
      live.delete(proc);
      resolve(exitInfo);
    });
  });
  const proc = {
    name,
    child,
    pid: child.pid,
    pinned: pinned ? String(cpus) : undefined,
    lines,
    exited,
    get running() {
      return exitInfo === undefined;
    },
    tail(n = 20) {
      return lines.slice(-n).join('\n');
    },
    /** SIGTERM (or `signal`), SIGKILL after `timeoutMs`; also kills descendants left behind. */
    async stop({ signal = 'SIGTERM', timeoutMs = 5000 } = {}) {
      const family = descendants(child.pid);
      if (exitInfo === undefined) {
        child.kill(signal);
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        await exited;
        clearTimeout(timer);
      }
      for (const pid of family) killQuietly(pid, 'SIGKILL');
    },
  };
  live.add(proc);
  return proc;
}

/** Runs a command to completion; resolves with { code, stdout, stderr }. Bounded by timeoutMs. */
export function run(command, args, { cpus, timeoutMs = 120_000, env } = {}) {
  const proc = start(command, command, args, { cpus, env, keepLines: 100_000 });
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), timeoutMs);
  let stdout = '';
  let stderr = '';
  proc.child.stdout.on('data', (c) => (stdout += c));
  proc.child.stderr.on('data', (c) => (stderr += c));
  return proc.exited.then(({ code, signal }) => {
    clearTimeout(timer);
    return { code: code ?? (signal ? 128 : -1), signal, stdout, stderr, pid: proc.pid };
  });
}

/** Every pid whose parent chain leads to `pid` (nginx workers, router workers), from /proc. */
export function descendants(pid) {
  if (pid === undefined) return [];
  const parentOf = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Field 2 (comm) may contain spaces and parentheses: parse after the last ')'.
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parentOf.set(Number(entry), Number(rest[1]));
    } catch {
      // gone meanwhile
    }
  }
  const out = [];
  const frontier = [pid];
  while (frontier.length > 0) {
    const p = frontier.pop();
    for (const [child, parent] of parentOf) {
      if (parent === p) {
        out.push(child);
        frontier.push(child);
      }
    }
  }
  return out;
}

function killQuietly(pid, signal) {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** Registers async clean-up (temp dirs...) run by stopAll(), after the processes are stopped. */
export function onCleanup(fn) {
  cleanupHooks.push(fn);
}

/** Stops every process still running, then runs the clean-up hooks (last registered first). */
export async function stopAll() {
  await Promise.all([...live].map((p) => p.stop({ timeoutMs: 3000 }).catch(() => {})));
  const hooks = cleanupHooks.reverse();
  cleanupHooks = [];
  for (const hook of hooks) await Promise.resolve().then(hook).catch(() => {});
}

/**
 * Ctrl-C / SIGTERM: stop everything, then exit 130/143. The 'exit' handler SIGKILLs anything
 * still alive synchronously (e.g. when the run crashes with an uncaught exception).
 */
export function installSignalHandlers() {
  let stopping = false;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      if (stopping) return;
      stopping = true;
      console.error(`\n${sig}: stopping every process the bench started...`);
      const hard = setTimeout(() => process.exit(sig === 'SIGINT' ? 130 : 143), 8000);
      hard.unref();
      stopAll().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
    });
  }
  process.once('exit', () => {
    for (const p of live) {
      for (const pid of descendants(p.pid)) killQuietly(pid, 'SIGKILL');
      killQuietly(p.pid, 'SIGKILL');
    }
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
