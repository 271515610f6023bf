/**
 * wrk, haproxy, nginx and h2load (Debian's nghttp2-client) from Debian when missing (we are root
 * here). `apt-get update` once, then one install of the missing ones. The package scripts cannot start the system services in this
 * container (policy-rc.d denies it); we never use those services anyway: every proxy runs from
 * a config we generate, in a temp dir, on free ports.
 */
import { accessSync, constants } from 'node:fs';
import { run } from './procs.mjs';

export function which(cmd) {
  for (const dir of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin', ...(process.env.PATH ?? '').split(':')]) {
    try {
      accessSync(`${dir}/${cmd}`, constants.X_OK);
      return `${dir}/${cmd}`;
    } catch {
      // not there
    }
  }
  return undefined;
}

/** The Debian package of each tool. */
const PACKAGE = { wrk: 'wrk', haproxy: 'haproxy', nginx: 'nginx', h2load: 'nghttp2-client' };

/** Resolves { wrk, haproxy, nginx, h2load } paths, those in `need` (undefined when missing and not installable). */
export async function ensureTools({ install = true, log = console.log, need = ['wrk', 'haproxy', 'nginx'] } = {}) {
  const found = () => Object.fromEntries(need.map((t) => [t, which(t)]));
  let tools = found();
  const missing = need.filter((t) => !tools[t]);
  if (missing.length === 0 || !install) return tools;
  if (process.getuid?.() !== 0) {
    log(`missing ${missing.join(', ')} and not root: those configurations are skipped`);
    return tools;
  }
  const packages = missing.map((t) => PACKAGE[t] ?? t);
  log(`installing ${missing.join(', ')} from Debian (apt-get update, apt-get install -y ${packages.join(' ')})...`);
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  // Another apt may hold the dpkg lock (CI or a colleague installing): wait for it, bounded.
  const lock = ['-o', 'DPkg::Lock::Timeout=180'];
  const upd = await run('apt-get', [...lock, 'update', '-qq'], { env, timeoutMs: 300_000 });
  if (upd.code !== 0) log(`apt-get update failed (${upd.code}): ${upd.stderr.trim().slice(-500)}`);
  const inst = await run('apt-get', [...lock, 'install', '-y', '-qq', ...packages], { env, timeoutMs: 600_000 });
  if (inst.code !== 0) log(`apt-get install failed (${inst.code}): ${inst.stderr.trim().slice(-500)}`);
  tools = found();
  return tools;
}
