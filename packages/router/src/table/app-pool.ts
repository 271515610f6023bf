import type { AppRecord, BalanceStrategy } from '@paas/registry';
import type { Balancer } from '../balance/balancer.js';
import { createBalancer } from '../balance/create-balancer.js';
import type { Backend } from './backend.js';
import type { RecordStamp } from './record-stamp.js';
import type { RouteSlot } from './route-slot.js';

const NONE: readonly Backend[] = Object.freeze([]);

/** Array.prototype.filter without spare capacity (and NONE when empty). */
function exactFilter(list: readonly Backend[], keep: (b: Backend) => boolean): readonly Backend[] {
  let n = 0;
  for (const b of list) if (keep(b)) n++;
  if (n === 0) return NONE;
  if (n === list.length) return list;
  const out = new Array<Backend>(n);
  let i = 0;
  for (const b of list) if (keep(b)) out[i++] = b;
  return out;
}

/**
 * An app as the proxy sees it: its record (if any), its instances and the balancer that picks
 * among them. Exists while a record, an instance or an override names the app. Only the
 * RoutingTable calls the mutating methods.
 */
export class AppPool implements RecordStamp {
  readonly kind = 'app';
  readonly name: string;
  /** Undefined when only instances (or an override) name the app. */
  record: AppRecord | undefined = undefined;
  /** Every instance of the app, ordered by id. Replaced on change, never mutated, so an iteration in progress is safe. */
  backends: readonly Backend[] = NONE;
  /** etcd create revision of the record: ranks the app's route claims against other apps'. */
  createRevision = 0n;
  /** The route slots this app's record claims, won or not. */
  claims: RouteSlot[] = [];
  /** How many overrides send a host to this app. */
  overrideRefs = 0;
  /** The app record's stamp (see RecordStamp); meaningless while `record` is undefined. */
  hashHi = 0;
  hashLo = 0;
  listed = 0;
  private ready: readonly Backend[] = NONE;
  /**
   * Made at the app's first pick after a change of strategy: most apps of a large table get no
   * request for a while, and a balancer per app was 100k more objects for a starting router to
   * build and for V8's young collections to copy.
   */
  private balancer: Balancer | undefined = undefined;

  constructor(name: string) {
    this.name = name;
  }

  /** A backend for a new request, or undefined when no `ready` backend other than `exclude` exists. */
  pick(now: number, exclude?: Backend): Backend | undefined {
    return (this.balancer ?? this.startBalancer()).pick(now, exclude);
  }

  private get strategy(): BalanceStrategy {
    return this.record?.balance ?? 'round-robin';
  }

  private startBalancer(): Balancer {
    const balancer = createBalancer(this.strategy);
    balancer.reset(this.ready);
    this.balancer = balancer;
    return balancer;
  }

  hasReady(): boolean {
    return this.ready.length > 0;
  }

  /** Nothing names the app any more. */
  get unused(): boolean {
    return this.record === undefined && this.backends.length === 0 && this.overrideRefs === 0;
  }

  setRecord(record: AppRecord | undefined, createRevision: bigint): void {
    this.record = record;
    this.createRevision = createRevision;
    if (this.balancer !== undefined && this.strategy !== this.balancer.strategy) this.balancer = undefined;
  }

  /** The instance with this id (a binary search: `backends` is in id order). */
  backend(id: string): Backend | undefined {
    const list = this.backends;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const b = list[mid]!;
      if (b.id === id) return b;
      if (b.id < id) lo = mid + 1;
      else hi = mid;
    }
    return undefined;
  }

  /** Keeps id order, so routers with the same records list and rotate instances alike. */
  addBackend(backend: Backend): void {
    const old = this.backends;
    let i = old.length;
    while (i > 0 && old[i - 1]!.id > backend.id) i--;
    // Built at its final length: arrays grown by push/splice keep spare capacity, which adds up
    // over 100k apps.
    const next = new Array<Backend>(old.length + 1);
    for (let j = 0; j < i; j++) next[j] = old[j]!;
    next[i] = backend;
    for (let j = i; j < old.length; j++) next[j + 1] = old[j]!;
    this.backends = next;
  }

  removeBackend(backend: Backend): void {
    this.backends = exactFilter(this.backends, (b) => b !== backend);
  }

  /** After backends were added, removed or changed state or weight: new ready list, fresh balancer state. */
  instancesChanged(): void {
    this.ready = exactFilter(this.backends, (b) => b.state === 'ready');
    this.balancer?.reset(this.ready);
  }

  /** Route slots claimed, set by the table; stored at exact length. */
  setClaims(claims: RouteSlot[]): void {
    this.claims = claims.length === 0 ? [] : claims.slice();
  }
}
