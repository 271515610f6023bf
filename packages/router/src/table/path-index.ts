import { HASH_SEED, forwardKey, mix, toKey } from './hash.js';
import type { RouteSlot } from './route-slot.js';

const SLASH = 0x2f;
const QUESTION = 0x3f;

/**
 * The path prefixes routed for one host (or one wildcard suffix, or host-less routes).
 *
 * Matching hashes the request target left to right and, at every segment boundary ('/', '?' or
 * the end), looks up the prefix read so far by its hash, so a lookup costs one pass over the
 * path plus one Map probe per segment, whatever the number of routes, and cuts no substring.
 */
export class PathIndex {
  /** The slot for path '/', which matches every request target. */
  private root: RouteSlot | undefined = undefined;
  /** Every other slot, chained on hash collisions; created with the second such slot (most hosts have none or one). */
  private byKey: Map<number, RouteSlot> | undefined = undefined;
  /** The only slot other than '/', while there is just one: a Map per host costs ~150 bytes, 100k hosts add up. */
  private single: RouteSlot | undefined = undefined;
  /** Longest path added since the index last had none: no boundary past it can match, so scanning stops there. */
  private maxLength = 0;
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(path: string): RouteSlot | undefined {
    if (path === '/') return this.root;
    for (let s = this.first(forwardKey(path)); s !== undefined; s = s.next) {
      if (s.path === path) return s;
    }
    return undefined;
  }

  /** The slot's path must not be in the index yet. */
  add(slot: RouteSlot): void {
    this.count++;
    if (slot.path === '/') {
      this.root = slot;
      return;
    }
    if (slot.path.length > this.maxLength) this.maxLength = slot.path.length;
    if (this.byKey === undefined) {
      const single = this.single;
      if (single === undefined) {
        slot.next = undefined;
        this.single = slot;
        return;
      }
      this.single = undefined;
      this.byKey = new Map([[single.key, single]]);
    }
    slot.next = this.byKey.get(slot.key);
    this.byKey.set(slot.key, slot);
  }

  remove(slot: RouteSlot): void {
    if (slot.path === '/') {
      if (this.root !== slot) return;
      this.root = undefined;
      this.count--;
      return;
    }
    if (this.single === slot) {
      this.single = undefined;
      this.count--;
      this.maxLength = 0;
      return;
    }
    const byKey = this.byKey;
    if (byKey === undefined) return;
    let prev: RouteSlot | undefined;
    for (let s = byKey.get(slot.key); s !== undefined; prev = s, s = s.next) {
      if (s !== slot) continue;
      if (prev !== undefined) prev.next = s.next;
      else if (s.next !== undefined) byKey.set(slot.key, s.next);
      else byKey.delete(slot.key);
      slot.next = undefined;
      this.count--;
      if (byKey.size === 0) {
        this.byKey = undefined;
        this.maxLength = 0;
      }
      return;
    }
  }

  /** Every slot, '/' first, then in no particular order (the admin's route listing). */
  *slots(): IterableIterator<RouteSlot> {
    if (this.root !== undefined) yield this.root;
    if (this.single !== undefined) yield this.single;
    if (this.byKey !== undefined) for (const head of this.byKey.values()) for (let s: RouteSlot | undefined = head; s !== undefined; s = s.next) yield s;
  }

  /**
   * The slot with the longest path that prefixes `url` on a segment boundary. `url` is the raw
   * request target; only the part before '?' is compared.
   */
  match(url: string): RouteSlot | undefined {
    if (this.byKey === undefined && this.single === undefined) return this.root;
    const n = url.length;
    const limit = n < this.maxLength ? n : this.maxLength;
    let best = this.root;
    let h = HASH_SEED;
    let i = 0;
    for (; i < limit; i++) {
      const c = url.charCodeAt(i);
      if (c === QUESTION) break;
      if (c === SLASH && i > 1) best = this.find(h, url, i) ?? best;
      h = mix(h, c);
    }
    // Paths other than '/' are at least 2 characters long; the prefix of length i ends on a
    // boundary if the path part ends there or the next character starts a segment.
    if (i > 1) {
      const c = i === n ? QUESTION : url.charCodeAt(i);
      if (c === QUESTION || c === SLASH) best = this.find(h, url, i) ?? best;
    }
    return best;
  }

  /** The first slot chained under a hash key. */
  private first(key: number): RouteSlot | undefined {
    const byKey = this.byKey;
    if (byKey !== undefined) return byKey.get(key);
    const single = this.single;
    return single !== undefined && single.key === key ? single : undefined;
  }

  private find(hash: number, url: string, length: number): RouteSlot | undefined {
    for (let s = this.first(toKey(hash)); s !== undefined; s = s.next) {
      if (s.path.length === length && url.startsWith(s.path)) return s;
    }
    return undefined;
  }
}
