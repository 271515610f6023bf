/**
 * The etcd key layout of the contract. Every key lives under one prefix (default `/paas`), in
 * one of the directories declared in kinds.ts. Routers watch the single range from the first to
 * the end of the last record directory, [apps/, overrides/ + '\xff'), which covers apps/,
 * certs/, instances/ and overrides/ but never routers/ or rollouts/ (lexical order: apps < certs <
 * instances < overrides < rollouts < routers), so one watch stream delivers every watched revision whole and
 * status writes wake no router. Loading this module fails if a declared directory that routers
 * do not apply sorts inside that range.
 */
import { KEY_KINDS, RECORD_KINDS, type KeyRef } from './kinds.js';

export { CERT_NAME_PATTERN, hostError, isCertName, isName, NAME_PATTERN, NAME_SHAPE } from './names.js';
export type { KeyRef } from './kinds.js';

export type KeyParse = { ok: true; ref: KeyRef } | { ok: false; error: string };

export function normalizePrefix(prefix: string): string {
  if (!prefix.startsWith('/')) throw new Error(`prefix must start with "/": ${JSON.stringify(prefix)}`);
  const p = prefix.replace(/\/+$/, '');
  if (p === '') throw new Error('prefix must not be "/" alone');
  return p;
}

const recordDirs = Object.values(RECORD_KINDS).map((k) => k.dir).sort();
/** The watched range below the prefix: `<first record dir>/` up to `<last record dir>0` ('0' follows '/'). */
const WATCHED_START = `${recordDirs[0]}/`;
const WATCHED_END = `${recordDirs[recordDirs.length - 1]}0`;

/** Whether keys of directory `dir` sort inside the watched range (for any prefix). */
export function sortsInsideWatchedRange(dir: string): boolean {
  const k = `${dir}/x`;
  return k >= WATCHED_START && k < WATCHED_END;
}

for (const k of KEY_KINDS) {
  if (!(k.kind in RECORD_KINDS) && sortsInsideWatchedRange(k.dir)) {
    throw new Error(`${k.dir}/ sorts inside the routers' watched range but holds no records they apply`);
  }
}

const SLASH = 0x2f;

export class KeyLayout {
  readonly prefix: string;
  constructor(prefix = '/paas') {
    this.prefix = normalizePrefix(prefix);
  }

  get appsDir(): string { return `${this.prefix}/apps/`; }
  get instancesDir(): string { return `${this.prefix}/instances/`; }
  get overridesDir(): string { return `${this.prefix}/overrides/`; }
  get routersDir(): string { return `${this.prefix}/routers/`; }
  get rolloutsDir(): string { return `${this.prefix}/rollouts/`; }
  get certsDir(): string { return `${this.prefix}/certs/`; }

  app(app: string): string { return `${this.prefix}/apps/${app}`; }
  instancesOf(app: string): string { return `${this.prefix}/instances/${app}/`; }
  instance(app: string, id: string): string { return `${this.prefix}/instances/${app}/${id}`; }
  override(host: string): string { return `${this.prefix}/overrides/${host}`; }
  router(id: string): string { return `${this.prefix}/routers/${id}`; }
  lock(app: string): string { return `${this.prefix}/rollouts/${app}`; }
  cert(name: string): string { return `${this.prefix}/certs/${name}`; }
  /** ACME state (`acme/` sorts before `apps/`: outside the watched range, it wakes no router). */
  get acmeDir(): string { return `${this.prefix}/acme/`; }
  acmeAccount(directoryId: string): string { return `${this.prefix}/acme/accounts/${directoryId}`; }
  acmeLock(host: string): string { return `${this.prefix}/acme/locks/${host}`; }
  acmeChallenge(token: string): string { return `${this.prefix}/acme/challenges/${token}`; }
  acmeState(host: string): string { return `${this.prefix}/acme/state/${host}`; }
  get acmeStatesDir(): string { return `${this.prefix}/acme/state/`; }
  acmeOrderSlot(n: number): string { return `${this.prefix}/acme/order-slots/${n}`; }
  get tunnelTokensDir(): string { return `${this.prefix}/tunnel-tokens/`; }
  tunnelTokensOf(app: string): string { return `${this.prefix}/tunnel-tokens/${app}/`; }
  tunnelToken(app: string, tokenId: string): string { return `${this.prefix}/tunnel-tokens/${app}/${tokenId}`; }
  get tunnelsDir(): string { return `${this.prefix}/tunnels/`; }
  tunnelsOf(app: string): string { return `${this.prefix}/tunnels/${app}/`; }
  tunnelPresence(app: string, id: string, router: string): string { return `${this.prefix}/tunnels/${app}/${id}/${router}`; }

  /** The half-open key range a router watches: every record directory, nothing else. */
  watchedRange(): { start: string; end: string } {
    return { start: `${this.prefix}/${WATCHED_START}`, end: `${this.prefix}/${WATCHED_END}` };
  }

  /** Keys that cut the watched range into one segment per directory (see etcd/list.ts). */
  watchedBoundaries(): string[] {
    return recordDirs.map((d) => `${this.prefix}/${d}/`);
  }

  /**
   * Keys that cut a directory holding more than two pages into segments of one first character
   * of a name each (names and hosts start with [a-z0-9]), so that a paged list costs time in
   * proportion to the keys read, not to the square of them (see etcd/list.ts).
   */
  watchedSplits(): string[] {
    const out: string[] = [];
    for (const d of recordDirs) {
      const dir = `${this.prefix}/${d}/`;
      out.push(dir + '0');
      for (const c of '123456789abcdefghijklmnopqrstuvwxyz') out.push(dir + c);
      out.push(dir + '{');
    }
    return out;
  }

  /**
   * Classifies a key under the prefix; an unrecognised or ill-named key is an error to report.
   * Cuts the key with indexOf rather than split: a full list parses every key.
   */
  parse(key: string): KeyParse {
    const start = this.prefix.length + 1;
    if (!key.startsWith(this.prefix) || key.charCodeAt(start - 1) !== SLASH) return { ok: false, error: 'key is outside the prefix' };
    // Compared in place rather than sliced out and looked up: a fresh slice would be hashed.
    for (const kind of KEY_KINDS) {
      const dirEnd = start + kind.dir.length;
      if (!key.startsWith(kind.dir, start) || (dirEnd !== key.length && key.charCodeAt(dirEnd) !== SLASH)) continue;
      const ref = kind.ref(key.slice(dirEnd + 1));
      return typeof ref === 'string' ? { ok: false, error: ref } : { ok: true, ref };
    }
    const dirEnd = key.indexOf('/', start);
    return { ok: false, error: `unknown directory ${JSON.stringify(dirEnd < 0 ? key.slice(start) : key.slice(start, dirEnd))}` };
  }
}
