/**
 * The README's walkthrough as data: the fenced blocks whose info string carries the word
 * `walkthrough`, in README order. A ```sh walkthrough block is split into the commands a reader
 * types one after another; a ```text walkthrough block starting with `$ COMMAND` shows the output
 * of that command as the walkthrough ran it last.
 */
import { spawnSync } from 'node:child_process';

export interface Command {
  /** 1-based README line of the command's first line. */
  readonly line: number;
  /** The command exactly as the README writes it (continuation lines included). */
  readonly text: string;
  /** Words after `# →` on its last line: its stdout holds them, in this order. */
  readonly expect?: readonly string[];
}

export interface RunBlock {
  readonly kind: 'run';
  readonly line: number;
  readonly commands: readonly Command[];
}

export interface OutputBlock {
  readonly kind: 'output';
  readonly line: number;
  /** The command after `$ `, as written. */
  readonly command: string;
  /** The output lines the README shows. */
  readonly lines: readonly string[];
}

export type Block = RunBlock | OutputBlock;

const FENCE = /^```(.*)$/;
const EXPECT = /\s#\s→\s(.+)$/;

/** Every walkthrough block of `markdown`, in order; throws on a marked block it cannot read. */
export function walkthroughBlocks(markdown: string): Block[] {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]!);
    if (!open) continue;
    const info = open[1]!.trim().split(/\s+/);
    const start = i;
    let end = i + 1;
    while (end < lines.length && lines[end] !== '```') end++;
    if (end === lines.length) throw new Error(`README line ${start + 1}: a fenced block that is never closed`);
    i = end;
    if (!info.includes('walkthrough')) continue;
    const body = lines.slice(start + 1, end);
    if (info[0] === 'sh') blocks.push({ kind: 'run', line: start + 1, commands: splitCommands(body, start + 2) });
    else if (info[0] === 'text' && body[0]?.startsWith('$ ')) {
      blocks.push({ kind: 'output', line: start + 1, command: body[0].slice(2), lines: body.slice(1) });
    } else {
      throw new Error(`README line ${start + 1}: a walkthrough block is \`\`\`sh walkthrough, or \`\`\`text walkthrough starting with "$ command"`);
    }
  }
  return blocks;
}

/** A command's text without its trailing comment and extra blanks, to pair output blocks with runs. */
export function commandKey(text: string): string {
  return text.replace(/\s#\s.*$/, '').replace(/\s+/g, ' ').trim();
}

/**
 * Splits a block into commands the way a shell reads them: lines are joined until bash parses
 * them as complete (continuations, quotes, loops, here-documents); blank and comment-only
 * lines are dropped.
 */
function splitCommands(body: readonly string[], firstLine: number): Command[] {
  const commands: Command[] = [];
  let pending: string[] = [];
  let pendingLine = firstLine;
  body.forEach((text, k) => {
    if (pending.length === 0) {
      if (text.trim() === '' || text.trim().startsWith('#')) return;
      pendingLine = firstLine + k;
    }
    pending.push(text);
    const chunk = pending.join('\n');
    // bash takes a backslash at the very end of its input as a plain character, not a continuation.
    if (text.endsWith('\\') || !parsesComplete(chunk)) return;
    const expect = EXPECT.exec(pending.at(-1)!)?.[1]?.trim().split(/\s+/);
    commands.push({ line: pendingLine, text: chunk, ...(expect ? { expect } : {}) });
    pending = [];
  });
  if (pending.length > 0) throw new Error(`README line ${pendingLine}: the command never ends (bash cannot parse it)`);
  return commands;
}

function parsesComplete(script: string): boolean {
  return spawnSync('bash', ['-n', '-c', script], { stdio: 'ignore' }).status === 0;
}
