/** Help text of the paas commands: lines that fit a 100-column terminal. */

export const HELP_WIDTH = 100;

/**
 * `text` cut at spaces into lines of at most `width` columns, each starting with `indent` (the
 * first with `first` when given, e.g. a flag name). A word longer than a line stands alone.
 */
export function wrapText(text: string, indent: string, width = HELP_WIDTH, first = indent): string[] {
  const lines: string[] = [];
  let line = first;
  let empty = true;
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (!empty && line.length + 1 + word.length > width) {
      lines.push(line);
      line = indent;
      empty = true;
    }
    line += (empty ? '' : ' ') + word;
    empty = false;
  }
  lines.push(line);
  return lines;
}

const FLAG_INDENT = '        ';

/**
 * The flag part of paas-router's and paas-agent's help: each flag and its environment variable
 * on one line, what it does (and its default) wrapped below; then variables read from the
 * environment only (a secret on the command line would show in `ps`), -h and --version.
 */
export function flagHelpLines(flags: Record<string, { env: string; help: string; default?: string }>, envOnly: { env: string; help: string }[]): string[] {
  const lines: string[] = [];
  for (const [name, spec] of Object.entries(flags)) {
    const def = spec.default !== undefined ? ` (default ${spec.default})` : '';
    lines.push(`  --${name.padEnd(26)} ${spec.env}`, ...wrapText(`${spec.help}${def}`, FLAG_INDENT));
  }
  for (const e of envOnly) lines.push(`  ${''.padEnd(28)} ${e.env}`, ...wrapText(`${e.help} (environment only: a flag would show in ps)`, FLAG_INDENT));
  lines.push('  -h, --help', `${FLAG_INDENT}this text`, '  --version', `${FLAG_INDENT}the version, and exit`);
  return lines;
}
