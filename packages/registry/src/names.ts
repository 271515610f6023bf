/**
 * The name shapes of the contract: app names, instance ids and router ids are DNS labels, hosts
 * lower-case DNS names. Shared by the key layout (kinds.ts) and the record schema (schema.ts).
 */
/** App names, instance ids, router ids: a DNS label. NAME_SHAPE is the unanchored form, for messages. */
export const NAME_SHAPE = '[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?';
export const NAME_PATTERN = `^${NAME_SHAPE}$`;
const NAME_RE = new RegExp(NAME_PATTERN);

export function isName(s: string): boolean {
  return NAME_RE.test(s);
}

/** A valid host in one test (hostError's rules, but for the wildcard's label count). */
const HOST_RE = /^(?:\*\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Why a host is not a lower-case DNS name (IDNs in punycode), or undefined when it is one.
 * `wildcard` allows a leading `*.` label.
 */
export function hostError(host: string, wildcard: boolean): string | undefined {
  // Nearly every host is valid: one regex test, no label split.
  if (host.length <= 253 && HOST_RE.test(host) && (host.charCodeAt(0) !== 42 /* '*' */ || (wildcard && host.indexOf('.', 2) > 0))) return undefined;
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
