/**
 * deploy/Dockerfile, deploy/compose/seed.Dockerfile and .dockerignore, without a Docker engine:
 * dockerfile-utils' linter (the Docker language server's, from npm: no hadolint is published there
 * as a maintained package) finds no error, and the checks the issue asks for are made on the
 * parsed instructions: Node 24 bookworm-slim stages, a non-root numeric user, a HEALTHCHECK that
 * runs the script tested against a real router in install-layout.test.ts, the same install
 * script, both commands on PATH, and a build context that .dockerignore keeps small (measured).
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, statSync } from 'node:fs';
import { join, matchesGlob } from 'node:path';
import { validate } from 'dockerfile-utils';
import { REPO, readRepoFile } from './files.js';

interface Instruction { keyword: string; args: string }

/** The instructions of a Dockerfile: continuation lines joined, comments dropped. */
function instructions(text: string): Instruction[] {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#'))
    .map((l) => {
      const [keyword, ...rest] = l.trim().split(/\s+/);
      return { keyword: keyword!.toUpperCase(), args: rest.join(' ') };
    });
}

/** .dockerignore's patterns, as Docker reads them: a path is excluded when it or a parent matches. */
function ignoredBy(patterns: string[]): (rel: string) => boolean {
  return (rel) => {
    const parts = rel.split('/');
    return parts.some((_, i) => patterns.some((p) => matchesGlob(parts.slice(0, i + 1).join('/'), p)));
  };
}

const patterns = readRepoFile('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
const ignored = ignoredBy(patterns);

/** Bytes and files of the build context: the checkout less what .dockerignore excludes. */
function contextSize(dir = ''): { bytes: number; files: number } {
  let bytes = 0;
  let files = 0;
  for (const e of readdirSync(join(REPO, dir), { withFileTypes: true })) {
    const rel = dir === '' ? e.name : `${dir}/${e.name}`;
    if (ignored(rel)) continue;
    if (e.isDirectory()) {
      const sub = contextSize(rel);
      bytes += sub.bytes;
      files += sub.files;
    } else if (e.isFile()) {
      bytes += statSync(join(REPO, rel)).size;
      files++;
    }
  }
  return { bytes, files };
}

describe('deploy/Dockerfile', () => {
  const text = readRepoFile('deploy/Dockerfile');
  const all = instructions(text);
  const stages = all.filter((i) => i.keyword === 'FROM');
  const last = all.slice(all.lastIndexOf(stages.at(-1)!));

  it('has no lint errors or warnings (dockerfile-utils)', () => {
    expect(validate(text)).toEqual([]);
    // The linter does find errors: an instruction without arguments, a duration without a unit.
    expect(validate('FROM node:24-bookworm-slim\nUSER\nHEALTHCHECK --interval=5 CMD true\n').map((d) => d.message)).toEqual(['Instruction has no arguments', 'time: missing unit in duration 5']);
  });

  it('builds in one stage and runs in another, both on node:24-bookworm-slim', () => {
    expect(stages.map((s) => s.args)).toEqual(['node:24-bookworm-slim AS build', 'node:24-bookworm-slim']);
    // pnpm pinned; the install is deploy/install.sh, the script install-layout.test.ts runs.
    expect(text).toMatch(/npm install -g [^\n]*pnpm@\d+\.\d+\.\d+/);
    expect(all.find((i) => i.keyword === 'RUN' && i.args.includes('install.sh'))?.args).toMatch(/pnpm install --frozen-lockfile .*&& pnpm build .*&& deploy\/install\.sh \/opt\/paas-routing/);
    expect(last.filter((i) => i.keyword === 'COPY').map((i) => i.args)).toEqual(['--from=build /opt/paas-routing /opt/paas-routing', 'deploy/docker/healthcheck.mjs /opt/paas-routing/healthcheck.mjs']);
  });

  it('runs as a non-root numeric user, with both commands on PATH and a HEALTHCHECK on /readyz', () => {
    const user = last.filter((i) => i.keyword === 'USER').at(-1)?.args;
    expect(user).toMatch(/^[1-9]\d*:[1-9]\d*$/);
    const links = last.find((i) => i.keyword === 'RUN')!.args;
    expect(links).toContain('ln -s /opt/paas-routing/router/bin/paas-router.js /usr/local/bin/paas-router');
    expect(links).toContain('ln -s /opt/paas-routing/deployer/bin/paas-deploy.js /usr/local/bin/paas-deploy');
    expect(last.find((i) => i.keyword === 'HEALTHCHECK')?.args).toMatch(/CMD \["node", "\/opt\/paas-routing\/healthcheck\.mjs"\]$/);
    expect(readRepoFile('deploy/docker/healthcheck.mjs')).toContain('/readyz');
    expect(last.find((i) => i.keyword === 'CMD')?.args).toBe('["paas-router"]');
    // Probes come from outside the container: both listeners on every interface.
    expect(last.find((i) => i.keyword === 'ENV' && i.args.includes('ROUTER_ADMIN'))?.args).toBe('ROUTER_LISTEN=0.0.0.0:8080 ROUTER_ADMIN=0.0.0.0:9090');
  });
});

describe('.dockerignore', () => {
  it('keeps what the Dockerfiles copy and drops the rest: a small build context', () => {
    const copied = [...instructions(readRepoFile('deploy/Dockerfile')), ...instructions(readRepoFile('deploy/compose/seed.Dockerfile'))]
      .filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from'))
      .flatMap((i) => i.args.split(' ').slice(0, -1));
    expect(copied.length).toBeGreaterThan(5);
    for (const src of copied) {
      expect(statSync(join(REPO, src), { throwIfNoEntry: false }), `${src} exists`).toBeDefined();
      expect(ignored(src), `${src} is in the context`).toBe(false);
    }
    for (const kept of ['packages/router/src/main.ts', 'packages/registry/package.json', 'packages/deployer/tsconfig.json']) expect(ignored(kept), kept).toBe(false);
    for (const dropped of ['node_modules/vitest', 'packages/router/node_modules/fastify', 'packages/router/dist/main.js', '.git/HEAD', 'test/apps/sample-app.mjs', '.tools/node']) expect(ignored(dropped), dropped).toBe(true);
    const { bytes, files } = contextSize();
    console.log(`[dockerfile] build context: ${(bytes / 1e6).toFixed(2)} MB in ${files} files`);
    expect(bytes).toBeLessThan(5e6);
  });
});

describe('deploy/compose/seed.Dockerfile', () => {
  it('has no lint errors and runs the seed script as nobody, with etcdctl of the etcd image the stack runs', () => {
    const text = readRepoFile('deploy/compose/seed.Dockerfile');
    expect(validate(text)).toEqual([]);
    const all = instructions(text);
    expect(all.filter((i) => i.keyword === 'FROM').map((i) => i.args)).toEqual(['quay.io/coreos/etcd:v3.5.17 AS etcd', 'busybox:1.37.0']);
    expect(readRepoFile('docker-compose.yml')).toContain('image: quay.io/coreos/etcd:v3.5.17');
    expect(all.find((i) => i.keyword === 'USER')?.args).toBe('65534:65534');
    expect(all.find((i) => i.keyword === 'ENTRYPOINT')?.args).toBe('["/usr/local/bin/seed.sh"]');
  });
});
