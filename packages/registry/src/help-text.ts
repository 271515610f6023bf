/** Help text of both commands: lines that fit a 100-column terminal. */

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
