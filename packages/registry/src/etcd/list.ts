/**
 * Reading a whole key range at one revision, in pages: a single range response over 4 MiB
 * (~40k records) fails in grpc-js by default, and paging without a fixed revision would mix two
 * states.
 *
 * Page size: etcd counts every key left in [from, end) to fill in `count` on each limited range
 * request, so a page costs time in proportion to the rest of the range: 300k keys in pages of
 * 1,000 took 18.6 s here, in pages of 10,000 about 2.5 s (a page of ~10k records is ~2 MB).
 * Boundaries cut the range into segments read one after another, so that cost is in proportion
 * to the rest of the segment instead.
 */
import type { KVClient, IRangeResponse } from 'etcd3';
import { toKvEntry } from './convert.js';
import { isCompactedError } from './errors.js';
import type { KvEntry } from './types.js';

export const DEFAULT_PAGE_SIZE = 10_000;

export type CallOptions = NonNullable<Parameters<KVClient['range']>[1]>;

export interface ListOptions {
  pageSize?: number;
  /** Read at this revision instead of the current one. */
  revision?: bigint;
  /**
   * Receive each page as it arrives instead of one array at the end (the result's `entries` is
   * then empty). The next page is requested before this is called, so handling a page overlaps
   * reading the next. A throw fails the list.
   */
  onPage?: (entries: KvEntry[], revision: bigint) => void;
  /** The read starts over (compaction between two pages): pages delivered so far are void. */
  onRestart?: () => void;
  /**
   * Keys inside (start, end) at which to cut the range into segments, each paged on its own (all
   * at the same revision). Every key of [start, end) is still read, in order.
   */
  boundaries?: string[];
}

/**
 * Every key in [start, end) at one revision R: the first page is read at the current revision
 * (its header says which: R), every following page at R, starting just after the last key seen.
 * If R is compacted between two pages, the whole read starts over at the then current revision.
 */
export async function listRange(
  kv: KVClient,
  callOptions: () => CallOptions,
  start: Buffer,
  end: Buffer,
  opts: ListOptions = {},
): Promise<{ entries: KvEntry[]; revision: bigint }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await listPages(kv, callOptions, start, end, opts);
    } catch (err) {
      const mayStartOver = opts.revision === undefined && isCompactedError(err) && attempt < 3;
      if (!mayStartOver) throw err;
      opts.onRestart?.();
    }
  }
}

async function listPages(
  kv: KVClient,
  callOptions: () => CallOptions,
  start: Buffer,
  end: Buffer,
  opts: ListOptions,
): Promise<{ entries: KvEntry[]; revision: bigint }> {
  const pageSize = opts.pageSize ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(pageSize) || pageSize < 1) throw new RangeError(`pageSize must be a positive integer, got ${pageSize}`);
  const onPage = opts.onPage;
  // Segment i is [ends[i - 1] (start for i = 0), ends[i]).
  const ends = [
    ...(opts.boundaries ?? []).map((b) => Buffer.from(b)).filter((b) => Buffer.compare(b, start) > 0 && Buffer.compare(b, end) < 0).sort(Buffer.compare),
    end,
  ];
  let segment = 0;
  const read = (from: Buffer, at: bigint | undefined): Promise<IRangeResponse> =>
    kv.range({ key: from, range_end: ends[segment]!, limit: pageSize, ...(at !== undefined && { revision: at.toString() }) }, callOptions());
  const entries: KvEntry[] = [];
  let page = await read(start, opts.revision);
  const revision = opts.revision ?? BigInt(page.header.revision);
  for (;;) {
    const last = page.kvs.at(-1);
    // Ask for the next page first, so etcd works on it while this one is converted and handled.
    let next: Promise<IRangeResponse> | undefined;
    if (page.more && last !== undefined) {
      next = read(Buffer.concat([last.key, Buffer.from([0])]), revision); // the smallest key after `last`
    } else if (segment + 1 < ends.length) {
      const from = ends[segment]!;
      segment++;
      next = read(from, revision);
    }
    next?.catch(() => undefined); // awaited below; a failure while this page is handled must not go unhandled
    const kvs = page.kvs;
    const out: KvEntry[] = onPage ? new Array<KvEntry>(kvs.length) : entries;
    const base = onPage ? 0 : entries.length;
    for (let i = 0; i < kvs.length; i++) out[base + i] = toKvEntry(kvs[i]!);
    if (onPage) onPage(out, revision);
    if (next === undefined) return { entries, revision };
    page = await next;
  }
}
