/**
 * The paas-router command turns on V8's compile cache before it loads the router, so starts after
 * the first skip most compiling: one start leaves a code cache for its modules in the OS temp
 * directory (a directory per Node version). NODE_COMPILE_CACHE is not set here: it alone would turn
 * the cache on in any Node process, and the test would pass without the command's own call.
 */
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const BIN = new URL('../bin/paas-router.js', import.meta.url).pathname;
const run = promisify(execFile);

describe('paas-router start-up', () => {
  it('writes a code cache for the modules it loaded', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'paas-compile-cache-'));
    try {
      // --help loads the same modules as a start (main.js imports them all) and returns at once.
      const env = { ...process.env, TMPDIR: dir, NODE_COMPILE_CACHE: undefined };
      const { stdout } = await run(process.execPath, [BIN, '--help'], { env });
      expect(stdout).toMatch(/--etcd/);
      const cache = path.join(dir, 'node-compile-cache');
      const [version, ...others] = await readdir(cache);
      expect(others).toEqual([]);
      expect(version).toContain(process.version);
      // One entry per compiled module: the bundled start's chunks (a build with `pnpm build`;
      // dist/'s hundreds of modules otherwise), each holding code for the whole chunk.
      const entries = await readdir(path.join(cache, version!));
      expect(entries.length).toBeGreaterThan(1);
      const sizes = await Promise.all(entries.map(async (e) => (await stat(path.join(cache, version!, e))).size));
      expect(sizes.reduce((a, b) => a + b, 0)).toBeGreaterThan(200_000);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 20_000);
});
