/**
 * The README's walkthrough, run as written (issue #13, item 10), so the documentation cannot rot.
 *
 * The convention, in README.md:
 * - A fenced block opened with ```sh walkthrough is part of the walkthrough: its commands run in
 *   README order, all blocks in one bash (`set -euo pipefail`), from the checkout's root, with
 *   none of the suite's PATH additions (node_modules/.bin) and no ETCD_/ETCDCTL_/PAAS_/ROUTER_
 *   variables: only what the README sets. Every command must exit 0. Other blocks are not run
 *   (```sh, ```text or a bare ``` without the word).
 * - `# → WORDS` at the end of a command: its stdout holds those words, in that order.
 * - A ```text walkthrough block starting with `$ COMMAND` shows that command's output as the
 *   walkthrough last ran it: each line shown is found, in order, among the lines printed, any
 *   number matching any number (revisions, counts and ports differ from run to run).
 *
 * What the test changes is in ./readme-walkthrough/rewrite.ts: the steps the suite has done
 * (make build, starting etcd: the harness's etcd stands at the README's address), free ports for
 * the README's fixed ones (2379 -> the test etcd), and a key prefix of its own for /paas.
 *
 * Between two commands the test waits for what a reader waits for before typing the next one,
 * on conditions: a command sent to the background (`&`) listening on the loopback ports it names
 * (and a paas-router's /readyz answering 200); an `etcdctl put|del|txn` applied by every live
 * router (its status record past the write). The paas-deploy commands wait for routers themselves.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runEtcdctl, uniquePrefix } from '../harness/etcd.js';
import { waitFor, waitForHttp, waitForPort } from '../harness/wait.js';
import { commandKey, walkthroughBlocks, type Block, type Command } from './readme-walkthrough/blocks.js';
import { STEPS_DONE, Substitutions } from './readme-walkthrough/rewrite.js';
import { ShellSession } from './readme-walkthrough/shell.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const README = path.join(REPO_ROOT, 'README.md');
/** A paas-deploy redeploy health-checks, confirms and drains: generous on a loaded machine. */
const COMMAND_TIMEOUT_MS = 30_000;
const BLOCK_TIMEOUT_MS = 120_000;
const READY_TIMEOUT_MS = 20_000;

const endpoints = inject('etcdEndpoints');
const prefix = uniquePrefix('readme-walkthrough');
// Read when the file is collected, so each README block is a test of its own, named by its line.
const blocks: Block[] = walkthroughBlocks(readFileSync(README, 'utf8'));
const commands = blocks.flatMap((b) => (b.kind === 'run' ? b.commands : []));

let subs: Substitutions;
let shell: ShellSession;
let outDir: string;
/** Stdout of each command the walkthrough ran, as the README would show it, by commandKey. */
const printed = new Map<string, string>();
let firstFailure: string | undefined;

beforeAll(async () => {
  subs = await Substitutions.create(commands.map((c) => c.text), endpoints[0]!, prefix);
  outDir = await mkdtemp(path.join(os.tmpdir(), 'readme-walkthrough-'));
  shell = ShellSession.start({ cwd: REPO_ROOT, env: readerEnv(), outDir });
});

afterAll(async () => {
  await shell?.kill();
  if (outDir) await rm(outDir, { recursive: true, force: true });
});

describe('the README walkthrough', () => {
  it('has run blocks, and each step the suite does for it is still in the README once', () => {
    expect(blocks.filter((b) => b.kind === 'run').length).toBeGreaterThan(0);
    for (const step of STEPS_DONE) {
      expect(commands.filter((c) => step.readme.test(c.text)).map((c) => c.line), `${step.readme} (${step.why})`).toHaveLength(1);
    }
  });

  for (const block of blocks) {
    const title = block.kind === 'run' ? `README line ${block.line}: the commands run as written` : `README line ${block.line}: \`${block.command}\` prints what the README shows`;
    it(title, async () => {
      if (firstFailure) throw new Error(`not run: ${firstFailure} failed before`);
      try {
        if (block.kind === 'run') for (const command of block.commands) await runCommand(command);
        else checkShownOutput(block.command, block.lines);
      } catch (err) {
        firstFailure = `README line ${block.line}`;
        throw err;
      }
    }, BLOCK_TIMEOUT_MS);
  }
});

async function runCommand(command: Command): Promise<void> {
  if (STEPS_DONE.some((step) => step.readme.test(command.text))) return;
  const text = subs.apply(command.text);
  const etcdWrite = /^etcdctl\s+(put|del|txn)\b/.test(text) ? await etcdRevision() : undefined;
  let stdout: string;
  try {
    ({ stdout } = await shell.run(text, COMMAND_TIMEOUT_MS));
  } catch (err) {
    throw new Error(`README line ${command.line} failed: ${command.text}\n(run as: ${text})\n${(err as Error).message}`);
  }
  const shown = subs.reverse(stdout);
  printed.set(commandKey(command.text), shown);
  if (command.expect) {
    expect(wordsInOrder(shown, command.expect), `README line ${command.line}: \`${command.text}\` printed:\n${shown}\nexpected, in order: ${command.expect.join(' ')}`).toBe(true);
  }
  if (commandKey(text).endsWith('&')) {
    try {
      await startedInBackground(text);
    } catch (err) {
      const { stderr } = await shell.lastOutput();
      throw new Error(`README line ${command.line} started in the background did not come up: ${command.text}\n${(err as Error).message}\n--- its stderr ---\n${stderr}`);
    }
  }
  if (etcdWrite !== undefined) await routersApplied(etcdWrite, await etcdRevision());
}

/** A reader waits until what they started answers: every loopback port named, a router ready. */
async function startedInBackground(text: string): Promise<void> {
  const ports = [...text.matchAll(/127\.0\.0\.1:(\d+)/g), ...text.matchAll(/--port (\d+)/g)].map((m) => Number(m[1]));
  for (const port of ports) await waitForPort(port, { timeoutMs: READY_TIMEOUT_MS });
  const admin = /\bpaas-router\b[\s\S]*--admin (\S+)/.exec(text)?.[1];
  if (admin) await waitForHttp(`http://${admin}/readyz`, (a) => a.status === 200, { timeoutMs: READY_TIMEOUT_MS });
}

/**
 * A reader's next command sees an etcdctl write applied: every live router's status record
 * shows a routing change after `before` (the write itself: nothing else writes routing keys
 * meanwhile) or that it is current at `after`, the revision once the write returned.
 */
async function routersApplied(before: number, after: number): Promise<void> {
  await waitFor(
    async () => {
      const out = await runEtcdctl(endpoints, ['get', '--prefix', `${prefix}/routers/`, '--print-value-only']);
      const records = out.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as { revision: string; currentRevision?: string });
      return records.every((r) => Number(r.revision) > before || Number(r.currentRevision ?? 0) >= after);
    },
    { timeoutMs: READY_TIMEOUT_MS, message: `every router to apply the etcdctl write after revision ${before}` },
  );
}

async function etcdRevision(): Promise<number> {
  const out = await runEtcdctl(endpoints, ['get', `${prefix}/`, '--limit', '1', '-w', 'json']);
  return (JSON.parse(out) as { header: { revision: number } }).header.revision;
}

function checkShownOutput(command: string, shownLines: readonly string[]): void {
  const actual = printed.get(commandKey(command));
  if (actual === undefined) throw new Error(`\`${command}\` is shown with its output, but no walkthrough block before runs it`);
  const lines = actual.split('\n');
  let at = 0;
  for (const shown of shownLines.filter((l) => l.trim() !== '')) {
    const pattern = linePattern(shown);
    while (at < lines.length && !pattern.test(lines[at]!)) at++;
    if (at === lines.length) throw new Error(`\`${command}\` printed no line like "${shown}" (after the lines matched before it); it printed:\n${actual}`);
    at++;
  }
}

/**
 * A shown line as a pattern: any number for a number standing alone (`revision 50`, not the 1 of
 * `m1` or the ports of a URL, which are mapped back), any run of blanks for a run of blanks.
 */
function linePattern(shown: string): RegExp {
  const source = shown
    .trim()
    .split(/((?<![\w.:-])\d+(?![\w.:-])|\s+)/)
    .map((part) => (/^\d+$/.test(part) ? '\\d+' : /^\s+$/.test(part) ? '\\s+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^\\s*${source}\\s*$`);
}

function wordsInOrder(text: string, words: readonly string[]): boolean {
  let at = 0;
  for (const word of words) {
    const found = text.indexOf(word, at);
    if (found < 0) return false;
    at = found + word.length;
  }
  return true;
}

/** The environment of a reader's fresh shell: no test endpoints, and node_modules/.bin not on PATH. */
function readerEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!/^(ETCD|ETCDCTL|PAAS|ROUTER)_/.test(key)) env[key] = value;
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter((dir) => !dir.includes(`node_modules${path.sep}.bin`));
  // The README's `node` is the suite's (the pinned Node 24 under make test).
  env.PATH = [path.dirname(process.execPath), ...dirs].join(path.delimiter);
  return env;
}
