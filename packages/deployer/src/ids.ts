/** Instance ids and URLs: generated ids that match the contract's name pattern, URL normalisation. */
import { randomBytes } from 'node:crypto';
import { isName } from '@paas/registry';

const SUFFIX_LEN = 6;
const MAX_NAME = 63;

/** Lower-cases text and turns every run of characters a name cannot hold into one "-". */
export function slug(text: string, maxLength: number): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .slice(0, maxLength)
    .replace(/^-+|-+$/g, '');
}

export function randomSuffix(length = SUFFIX_LEN): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = randomBytes(length);
  let s = '';
  for (const b of bytes) s += alphabet[b % alphabet.length];
  return s;
}

/**
 * `<release>-<random>` (or `<app>-<random>` without a release), always a valid name:
 * the release is slugged and cut so the whole id fits in 63 characters.
 */
export function newInstanceId(opts: { app: string; release?: string | undefined }, random: () => string = randomSuffix): string {
  const base = slug(opts.release ?? '', MAX_NAME - SUFFIX_LEN - 1) || slug(opts.app, MAX_NAME - SUFFIX_LEN - 1) || 'i';
  const id = `${base}-${random()}`;
  if (!isName(id)) throw new Error(`generated instance id ${JSON.stringify(id)} is not a valid name`);
  return id;
}

/** Generates an id not in `taken` (a collision of 6 random characters is unlikely, not impossible). */
export function uniqueInstanceId(opts: { app: string; release?: string | undefined }, taken: ReadonlySet<string>, random?: () => string): string {
  for (let i = 0; i < 100; i++) {
    const id = newInstanceId(opts, random);
    if (!taken.has(id)) return id;
  }
  throw new Error('could not generate an unused instance id');
}

/** The form an instance URL is stored and compared in: lower-case scheme and host, no trailing slash. */
export function normalizeUrl(url: string): string {
  const trimmed = url.trim().replace(/\/+$/, '');
  const m = /^([a-z][a-z0-9+.-]*:\/\/)([^/]*)$/i.exec(trimmed);
  return m ? `${m[1]!.toLowerCase()}${m[2]!.toLowerCase()}` : trimmed;
}
