#!/usr/bin/env node
import { statSync } from 'node:fs';
// Checked before any import: an older Node fails inside a module with an error that names
// neither the command nor the Node it needs (engines in package.json).
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 12)) {
  process.stderr.write(`paas-router: Node ${process.versions.node} is too old: it needs Node 22.12.0 or newer (22, 24 or 26)\n`);
  process.exit(2);
}
// Two V8 heap settings, read only when V8 sets up the heap, so unless the operator chose them (a
// flag or NODE_OPTIONS) the router starts itself again in the same process (process.execve) with
// them; where execve is missing it runs as it is (README, Performance and "Agent tunnels"):
// - Node 24's V8 lets the young generation grow four times as large as Node 20 and 22 did, which
//   costs a router with a large table that much RSS for no measured gain: Node 20's limit.
// - A router with a small table keeps its old-generation limit a few MB above a small heap, and
//   every Buffer it passes on (bodies, tunnel streams) counts towards the next full collection:
//   it ran one every few MB proxied. A 64 MB floor under that limit (no effect on a heap above
//   it) makes them rarer.
const HEAP_FLAGS = ['--max-semi-space-size=16', '--initial-old-space-size=64'];
const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
const missing = HEAP_FLAGS.filter((f) => !given.some((a) => a.startsWith(f.slice(0, f.indexOf('=')))));
if (missing.length > 0 && typeof process.execve === 'function') {
  process.execve(process.execPath, [process.execPath, ...missing, ...process.execArgv, ...process.argv.slice(1)], process.env);
}

// Loading the router's modules is a fixed part of every cold start; V8's compile cache (a
// directory of code caches keyed by source hash: NODE_COMPILE_CACHE, default the OS temp dir)
// lets starts after the first skip most of the compiling. It must be on before the import.
const { enableCompileCache, flushCompileCache } = await import('node:module');
enableCompileCache();
const { main } = await import(bundleIsCurrent() ? '../bundle/main.js' : '../dist/main.js');
// Written once started, not only at exit: a router that is killed never exits cleanly.
main(process.argv.slice(2), process.env).then(() => flushCompileCache());

/**
 * The start bundled by scripts/bundle-router.mjs (`pnpm build`, `make build`) loads in about half
 * the time of dist/'s modules; it is used while it is newer than both packages' last `tsc -b`
 * (which rewrites their tsbuildinfo whenever it emits), so a build without the bundle step runs
 * what it built. An install carries the bundle and no tsbuildinfo.
 */
function bundleIsCurrent() {
  const mtime = (path) => statSync(new URL(path, import.meta.url), { throwIfNoEntry: false })?.mtimeMs;
  const bundled = mtime('../bundle/main.js');
  if (bundled === undefined) return false;
  return ['../tsconfig.tsbuildinfo', '../../registry/tsconfig.tsbuildinfo'].every((p) => (mtime(p) ?? 0) <= bundled);
}
