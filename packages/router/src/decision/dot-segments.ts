/**
 * RFC 3986 §5.2.4 remove_dot_segments on the path of an origin-form target, with `%2e` counted
 * as a dot (RFC 3986 §6.2.2.2: percent-encoded unreserved characters are the same character),
 * so `/files/../admin`, `/files/%2e%2e/admin` and `/files/./../admin` all route as `/admin` and
 * reach the instance as `/admin`: a path route cannot be escaped. Other characters stay raw.
 */

const DOT = 0x2e;
const PERCENT = 0x25;

/** 1 for a `.` segment, 2 for a `..` segment, 0 otherwise; `start`..`end` is the segment. */
function dots(s: string, start: number, end: number): number {
  let n = 0;
  let i = start;
  while (i < end) {
    const c = s.charCodeAt(i);
    if (c === DOT) {
      i++;
    } else if (c === PERCENT && i + 2 < end && s.charCodeAt(i + 1) === 0x32 /* 2 */ && (s.charCodeAt(i + 2) | 0x20) === 0x65 /* e */) {
      i += 3;
    } else {
      return 0;
    }
    if (++n > 2) return 0;
  }
  return n;
}

/**
 * The path (`target` up to `end`, starting with '/') with its dot-segments removed; the same
 * string when it has none (most requests: one scan, no allocation).
 */
export function removeDotSegments(target: string, end: number): string {
  let found = false;
  for (let start = 1; start <= end; ) {
    let slash = target.indexOf('/', start);
    if (slash < 0 || slash > end) slash = end;
    if (slash > start && dots(target, start, slash) !== 0) {
      found = true;
      break;
    }
    start = slash + 1;
  }
  if (!found) return end === target.length ? target : target.slice(0, end);
  const out: string[] = [];
  let trailingSlash = false;
  for (let start = 1; start <= end; ) {
    let slash = target.indexOf('/', start);
    if (slash < 0 || slash > end) slash = end;
    const n = slash > start ? dots(target, start, slash) : 0;
    if (n === 1) {
      trailingSlash = true;
    } else if (n === 2) {
      out.pop();
      trailingSlash = true;
    } else {
      out.push(target.slice(start, slash));
      trailingSlash = false;
    }
    start = slash + 1;
  }
  return `/${out.join('/')}${trailingSlash && out.length > 0 ? '/' : ''}`;
}
