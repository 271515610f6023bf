/**
 * FNV-1a over UTF-16 code units, computed one character at a time so the lookup code can hash
 * every prefix of a path (or suffix of a host) in a single pass without cutting substrings.
 * Keys are folded into V8's small-integer range so using them as Map keys never boxes a number.
 */
export const HASH_SEED = 0x811c9dc5 | 0;

export function mix(hash: number, code: number): number {
  return Math.imul(hash ^ code, 0x01000193);
}

export function toKey(hash: number): number {
  return hash & 0x3fffffff;
}

/** Key of a whole string hashed from its first character to its last. */
export function forwardKey(s: string): number {
  let h = HASH_SEED;
  for (let i = 0; i < s.length; i++) h = mix(h, s.charCodeAt(i));
  return toKey(h);
}

/** Key of a whole string hashed from its last character to its first. */
export function backwardKey(s: string): number {
  let h = HASH_SEED;
  for (let i = s.length - 1; i >= 0; i--) h = mix(h, s.charCodeAt(i));
  return toKey(h);
}
