/**
 * The Host header as the table knows hosts: lower-case, no port, no trailing dot.
 * Allocates only when the header needs changing (most clients already send a lower-case name).
 */
export function normalizeHost(header: string | undefined): string {
  if (header === undefined || header.length === 0) return '';
  let end = header.length;
  if (header.charCodeAt(0) === 91 /* [ */) {
    const close = header.indexOf(']');
    return close > 0 ? header.slice(0, close + 1).toLowerCase() : '';
  }
  const colon = header.lastIndexOf(':');
  if (colon >= 0) end = colon;
  if (end > 0 && header.charCodeAt(end - 1) === 46 /* . */) end--;
  let host = end === header.length ? header : header.slice(0, end);
  for (let i = 0; i < host.length; i++) {
    const c = host.charCodeAt(i);
    if (c >= 65 && c <= 90) {
      host = host.toLowerCase();
      break;
    }
  }
  return host;
}
