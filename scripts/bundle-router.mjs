/**
 * Bundles what the router loads at start into packages/router/bundle/ (rolldown; run after
 * `tsc -b`, as `pnpm build` and `make build` do). Node resolves, reads and links ~400 modules
 * for a router start one by one; the bundle is a few files, which halves the loading that comes
 * before the first request to etcd (README, Performance). Modules the start does not need stay
 * behind dynamic imports (their own chunks), and `createRequire` loads (undici) still come from
 * node_modules.
 *
 * bin/paas-router.js uses the bundle only while it is newer than both packages' tsbuildinfo
 * (`tsc -b` rewrites it on every build that emits), so a build without this step runs dist/.
 */
import { cp, mkdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rolldown } from 'rolldown';

const root = fileURLToPath(new URL('..', import.meta.url));
const router = join(root, 'packages/router');
const out = join(router, 'bundle');
const fromRegistry = createRequire(join(root, 'packages/registry/package.json'));
const etcd3Dir = dirname(fromRegistry.resolve('etcd3/package.json'));

await stat(join(router, 'dist/main.js')).catch(() => {
  console.error('bundle-router: packages/router/dist/main.js is missing: run `pnpm exec tsc -b` first');
  process.exit(1);
});

/** etcd3 reads its .proto files next to its own lib/ at import: point it at the copy made below. */
const etcd3Protos = {
  name: 'etcd3-protos',
  transform(code, id) {
    if (!id.endsWith('/etcd3/lib/connection-pool.js')) return null;
    const from = '`${__dirname}/../proto/rpc.proto`';
    if (!code.includes(from)) throw new Error(`bundle-router: ${id} no longer loads ${from}: check how etcd3 finds its protos`);
    return code.replace(from, "require('node:url').fileURLToPath(new URL('./proto/rpc.proto', import.meta.url))");
  },
};

await rm(out, { recursive: true, force: true });
const build = await rolldown({
  input: { main: join(router, 'dist/main.js') },
  platform: 'node',
  external: [/^node:/, 'undici'],
  plugins: [etcd3Protos],
  logLevel: 'warn',
});
await build.write({ dir: out, format: 'esm', entryFileNames: '[name].js', chunkFileNames: '[name]-[hash].js' });
await build.close();
await mkdir(join(out, 'proto'), { recursive: true });
await cp(join(etcd3Dir, 'proto'), join(out, 'proto'), { recursive: true });
// The package.json next to the chunks makes them ES modules whatever the surrounding package says.
await writeFile(join(out, 'package.json'), '{ "type": "module" }\n');
const names = JSON.parse(await readFile(join(router, 'package.json'), 'utf8'));
const now = new Date();
await utimes(join(out, 'main.js'), now, now);
console.log(`bundle-router: ${names.name} start bundled into packages/router/bundle/`);
