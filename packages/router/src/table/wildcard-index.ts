import { HASH_SEED, backwardKey, mix, toKey } from './hash.js';
import { PathIndex } from './path-index.js';
import type { RouteSlot } from './route-slot.js';

const DOT = 0x2e;

/** The paths of one suffix; a PathIndex itself so a lookup follows one pointer less. */
class SuffixEntry extends PathIndex {
  /** Next entry with the same hash key. */
  next: SuffixEntry | undefined = undefined;
  constructor(
    readonly suffix: string,
    readonly key: number,
  ) {
    super();
  }
}

// Where each candidate suffix starts and its hash key, filled by match() right to left. Shared by
// every index: lookups run one at a time on the event loop and never re-enter.
let starts = new Int32Array(8);
let keys = new Int32Array(8);

/**
 * Wildcard routes (`*.suffix`), keyed by suffix. Matching hashes the host from its last character
 * to its first; at each dot the hash covers exactly the suffix to the right of it, so every
 * candidate suffix is found in one pass, without cutting the host into substrings.
 */
export class WildcardIndex {
  private readonly byKey = new Map<number, SuffixEntry>();
  /** High-water mark of labels in a suffix: a host's longer suffixes cannot match. */
  private maxLabels = 0;

  paths(suffix: string): PathIndex | undefined {
    return this.entry(suffix);
  }

  pathsOrCreate(suffix: string): PathIndex {
    const found = this.entry(suffix);
    if (found !== undefined) return found;
    const key = backwardKey(suffix);
    const entry = new SuffixEntry(suffix, key);
    entry.next = this.byKey.get(key);
    this.byKey.set(key, entry);
    const labels = countLabels(suffix);
    if (labels > this.maxLabels) this.maxLabels = labels;
    if (labels > starts.length) {
      starts = new Int32Array(labels);
      keys = new Int32Array(labels);
    }
    return entry;
  }

  /** The path index of every suffix (the admin's route listing). */
  *all(): IterableIterator<PathIndex> {
    for (const head of this.byKey.values()) for (let e: SuffixEntry | undefined = head; e !== undefined; e = e.next) yield e;
  }

  /** Forgets the suffix once no route uses it. */
  dropIfEmpty(suffix: string): void {
    const key = backwardKey(suffix);
    let prev: SuffixEntry | undefined;
    for (let e = this.byKey.get(key); e !== undefined; prev = e, e = e.next) {
      if (e.suffix !== suffix) continue;
      if (e.size > 0) return;
      if (prev !== undefined) prev.next = e.next;
      else if (e.next !== undefined) this.byKey.set(key, e.next);
      else this.byKey.delete(key);
      if (this.byKey.size === 0) this.maxLabels = 0;
      return;
    }
  }

  /** The best slot among wildcard routes: longest matching suffix first, then its longest path. */
  match(host: string, url: string): RouteSlot | undefined {
    const byKey = this.byKey;
    if (byKey.size === 0) return undefined;
    const n = host.length;
    const maxLabels = this.maxLabels;
    let found = 0;
    let h = HASH_SEED;
    // i > 0: the subdomain part must not be empty.
    for (let i = n - 1; i > 0 && found < maxLabels; i--) {
      const c = host.charCodeAt(i);
      if (c === DOT) {
        starts[found] = i + 1;
        keys[found] = toKey(h);
        found++;
      }
      h = mix(h, c);
    }
    for (let k = found - 1; k >= 0; k--) {
      const start = starts[k]!;
      for (let e = byKey.get(keys[k]!); e !== undefined; e = e.next) {
        if (e.suffix.length === n - start && host.endsWith(e.suffix)) {
          const slot = e.match(url);
          if (slot !== undefined) return slot;
          break;
        }
      }
    }
    return undefined;
  }

  private entry(suffix: string): SuffixEntry | undefined {
    for (let e = this.byKey.get(backwardKey(suffix)); e !== undefined; e = e.next) {
      if (e.suffix === suffix) return e;
    }
    return undefined;
  }
}

function countLabels(suffix: string): number {
  let labels = 1;
  for (let i = 0; i < suffix.length; i++) if (suffix.charCodeAt(i) === DOT) labels++;
  return labels;
}
