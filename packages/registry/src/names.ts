/**
 * The name shapes of the contract: app names, instance ids and router ids are DNS labels, hosts
 * lower-case DNS names. Shared by the key layout (kinds.ts) and the record schema (schema.ts).
 */
/** App names, instance ids, router ids: a DNS label. NAME_SHAPE is the unanchored form, for messages. */
export const NAME_SHAPE = '[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?';
export const NAME_PATTERN = `^${NAME_SHAPE}$`;

export const DASH = 45;
export const DOT = 46;
const STAR = 42;

/** [a-z0-9], by character code. */
export function isLowerAlnum(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 48 && c <= 57);
}

/**
 * Whether s[from, to) has NAME_SHAPE. A loop over the characters rather than the pattern's
 * regex: a full list checks every app name, instance id and host, and the loop costs a fraction
 * of a regex match (README, Performance: cold start). test/names.test.ts holds it to the regex.
 */
function isLabel(s: string, from: number, to: number): boolean {
  if (to - from < 1 || to - from > 63 || s.charCodeAt(from) === DASH || s.charCodeAt(to - 1) === DASH) return false;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (!(isLowerAlnum(c) || c === DASH)) return false;
  }
  return true;
}

export function isName(s: string): boolean {
  return isLabel(s, 0, s.length);
}

/** Labels joined by dots, after an optional `*.` (hostError's rules, but for the wildcard's label count and the length). */
function isHostShape(host: string): boolean {
  let from = 0;
  if (host.charCodeAt(0) === STAR) {
    if (host.charCodeAt(1) !== DOT) return false;
    from = 2;
  }
  for (;;) {
    const dot = host.indexOf('.', from);
    if (!isLabel(host, from, dot < 0 ? host.length : dot)) return false;
    if (dot < 0) return true;
    from = dot + 1;
  }
}

/**
 * Why a host is not a lower-case DNS name (IDNs in punycode), or undefined when it is one.
 * `wildcard` allows a leading `*.` label.
 */
export function hostError(host: string, wildcard: boolean): string | undefined {
  // Nearly every host is valid: one pass over it, no label split.
  if (host.length <= 253 && isHostShape(host) && (host.charCodeAt(0) !== STAR || (wildcard && host.indexOf('.', 2) > 0))) return undefined;
  if (host.length === 0) return 'host is empty';
  if (host.length > 253) return 'host is longer than 253 characters';
  let name = host;
  if (host.startsWith('*.')) {
    if (!wildcard) return `host ${JSON.stringify(host)}: a wildcard is not allowed here`;
    name = host.slice(2);
  }
  if (name !== name.toLowerCase()) return `host ${JSON.stringify(host)} must be lower-case`;
  const labels = name.split('.');
  if (wildcard && host.startsWith('*.') && labels.length < 2) {
    return `host ${JSON.stringify(host)}: a wildcard needs a suffix of at least two labels`;
  }
  for (const label of labels) {
    if (!isName(label)) {
      return `host ${JSON.stringify(host)} is not a lower-case DNS name (label ${JSON.stringify(label)}; IDNs go in punycode)`;
    }
  }
  return undefined;
}

/** A certificate's `<name>` (certs/<name>): lower-case letters, digits, `-` and `.`, 1-253 characters. */
export const CERT_NAME_PATTERN = '^[a-z0-9.-]{1,253}$';
const CERT_NAME_RE = new RegExp(CERT_NAME_PATTERN);

export function isCertName(s: string): boolean {
  return CERT_NAME_RE.test(s);
}
