/**
 * The rule every router applies to a key whose current value is rejected, so that routers agree
 * whenever they started: the table holds the newest valid version of the key within its current
 * incarnation (since its create revision; a delete ends an incarnation), read from etcd's own
 * history, or nothing. Walking back from the rejected version v (mod revision M) means reading the
 * key at M - 1, which gives version v - 1, and so on, until a valid version, the first version of
 * the incarnation, or a compacted revision. The kept value is therefore "the key as of
 * firstBad - 1", where firstBad is the first rejected version after it; once etcd has compacted
 * past firstBad - 1 the key has no value, on a router that walks and on one that already held the
 * value alike (see TableSync.checkKeptHistory).
 */
import type { KeyAtRevision, KvEntry, ParsedRecord } from '@paas/registry';

/** The reads the rule needs; the Etcd client provides them. */
export interface KeyHistory {
  getAt(key: string, revision: bigint): Promise<KeyAtRevision>;
  servesRevision(revision: bigint): Promise<boolean>;
}

/** A rejected version: where the walk starts. */
export interface RejectedVersion {
  key: string;
  createRevision: bigint;
  modRevision: bigint;
  /** etcd's version number; undefined when not known (the walk then reads once more to find the incarnation's start). */
  version: bigint | undefined;
}

/** What the router already knew about a rejected version it met before (see `held` below). */
export interface KnownLapse {
  /** The mod revision of the rejected version it judged. */
  revision: bigint;
  createRevision: bigint;
  firstBad: bigint;
  kept: boolean;
}

export type LastGood =
  /** A valid earlier version, found in etcd's history. */
  | { found: 'entry'; entry: KvEntry; record: ParsedRecord; firstBad: bigint }
  /** The walk reached a version this router had already judged: its answer then stands. */
  | { found: 'known'; known: KnownLapse }
  /** No valid version in this incarnation, or its history is compacted. */
  | { found: 'none'; firstBad: bigint; compacted: boolean };

/**
 * Walks back from `current`. `parse` says whether a value is valid (and what it is). When `known`
 * is given and the walk reaches the version it describes, the walk stops there: nothing between
 * that version and `current` was valid, so the answer is the one the router already holds.
 */
export async function findLastGood(
  history: KeyHistory,
  current: RejectedVersion,
  parse: (value: Buffer) => ParsedRecord | undefined,
  known?: KnownLapse,
): Promise<LastGood> {
  let bad: { modRevision: bigint; version: bigint | undefined } = current;
  for (;;) {
    if (known !== undefined && known.revision === bad.modRevision && known.createRevision === current.createRevision) return { found: 'known', known };
    if (bad.version !== undefined && bad.version <= 1n) return { found: 'none', firstBad: bad.modRevision, compacted: false };
    const read = await history.getAt(current.key, bad.modRevision - 1n);
    if (read.compacted) return { found: 'none', firstBad: bad.modRevision, compacted: true };
    const entry = read.entry;
    // Version > 1 means the previous version is in the same incarnation; a differing answer means
    // etcd's history is not what the version numbers say, and nothing can be kept.
    if (entry === undefined || entry.createRevision !== current.createRevision || entry.modRevision >= bad.modRevision) {
      return { found: 'none', firstBad: bad.modRevision, compacted: false };
    }
    const record = parse(entry.value);
    if (record !== undefined) return { found: 'entry', entry, record, firstBad: bad.modRevision };
    bad = entry;
  }
}

/**
 * Of `revisions` (ascending), the highest one etcd no longer serves, or undefined when it serves
 * them all. Compaction removes every revision below one point, so the answer is found by
 * bisection: usually the first read (at the lowest revision) answers for all.
 */
export async function highestCompacted(history: KeyHistory, revisions: readonly bigint[]): Promise<bigint | undefined> {
  if (revisions.length === 0 || (await history.servesRevision(revisions[0]!))) return undefined;
  // revisions[lo - 1] is compacted; the first served one is in [lo, hi] (hi = length: none is).
  let lo = 1;
  let hi = revisions.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (await history.servesRevision(revisions[mid]!)) hi = mid;
    else lo = mid + 1;
  }
  return revisions[lo - 1];
}
