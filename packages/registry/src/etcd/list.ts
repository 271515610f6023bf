/**
 * Reading a whole key range at one revision, in pages: one response for any number of keys would
 * have no size bound (grpc-js refuses messages over its receive limit), and paging without a
 * fixed revision would mix two states.
 *
 * Page size: etcd counts every key left in [from, end) to fill in `count` on each limited range
 * request, so a page costs time in proportion to the rest of the range: 300k keys in pages of
 * 1,000 took 18.6 s here, in pages of 10,000 about 2.5 s (a page of ~10k records is ~2 MB).
 * Boundaries cut the range into segments, so that cost is in proportion to the rest of the
 * segment instead. Splits cut a segment further, but only one that holds more than two pages:
 * every range request is a round trip, and most of the finer segments are small or empty.
 *
 * The parts are read side by side, each at etcd's pace, so a list holds the wire bytes of the
 * pages not yet handled (at most the range's, ~8 MB per 100k records) while the caller catches up.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { CallOptions } from './etcd3-client.js';
import { isCompactedError } from './errors.js';
import type { RangePage, RangeRequest } from './range-wire.js';
import type { KvEntry } from './types.js';

/**
 * 100k keys (~8 MB) per page: the cost of a page in etcd 3.4 grows with the keys left in its
 * segment (see above), and since pages are decoded without etcd3's generated code (range-wire.ts),
 * larger pages cost the client nothing extra. 300k keys sharing one first character listed in
 * 2.2 s with pages of 10k, 1.3 s with one page.
 */
export const DEFAULT_PAGE_SIZE = 100_000;

/**
 * The first page is small and each next one of its segment twice as large, up to the page size:
 * etcd takes time in proportion to a page's size to send it, and the caller can do nothing until
 * the first page arrives, while later pages are read during the handling of those before.
 */
export const FIRST_PAGE_SIZE = 2_000;
const PAGE_GROWTH = 2;

/**
 * onPage receives at most this many entries at a time, with a turn of the event loop between
 * slices: a re-list happens while the old table serves traffic, and one large page handled in
 * one go would hold every request for its whole parse and build.
 */
const SLICE = 5_000;

const ZERO = Buffer.from([0]);

export type RangeCall = (req: RangeRequest, options: CallOptions) => Promise<RangePage>;
export type { CallOptions };
export interface ListOptions {
  pageSize?: number;
  /** Read at this revision instead of the current one. */
  revision?: bigint;
  /**
   * Receive the entries as they arrive, in slices of a page, instead of one array at the end (the
   * result's `entries` is then empty). Every part of the range (boundaries, splits) is read page
   * after page at once, each next page asked for as soon as the one before arrives, and pages are
   * handed over in the order they arrive: a part's own pages in key order, the parts
   * interleaved. So handling overlaps reading, and a caller that is faster than etcd on one part
   * handles another's pages meanwhile instead of waiting. A throw fails the list.
   */
  onPage?: (entries: KvEntry[], revision: bigint) => void;
  /** The read starts over (compaction between two pages): pages delivered so far are void. */
  onRestart?: () => void;
  /**
   * Keys inside (start, end) at which to cut the range into segments, each paged on its own (all
   * at the same revision). Every key of [start, end) is still read, in order.
   */
  boundaries?: string[];
  /**
   * Finer cut points: the rest of a segment is cut at those inside it when its first page shows
   * more than another page left. Every key is still read, in order.
   */
  splits?: string[];
}

/**
 * Every key in [start, end) at one revision R: the first page is read at the current revision
 * (its header says which: R), every following page at R, starting just after the last key seen.
 * If R is compacted between two pages, the whole read starts over at the then current revision.
 */
export async function listRange(
  range: RangeCall,
  callOptions: () => CallOptions,
  start: Buffer,
  end: Buffer,
  opts: ListOptions = {},
): Promise<{ entries: KvEntry[]; revision: bigint }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await listPages(range, callOptions, start, end, opts);
    } catch (err) {
      const mayStartOver = opts.revision === undefined && isCompactedError(err) && attempt < 3;
      if (!mayStartOver) throw err;
      opts.onRestart?.();
    }
  }
}

async function listPages(
  range: RangeCall,
  callOptions: () => CallOptions,
  start: Buffer,
  end: Buffer,
  opts: ListOptions,
): Promise<{ entries: KvEntry[]; revision: bigint }> {
  const pageSize = opts.pageSize ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(pageSize) || pageSize < 1) throw new RangeError(`pageSize must be a positive integer, got ${pageSize}`);
  const onPage = opts.onPage;
  const inside = (keys: string[] | undefined, from: Buffer, to: Buffer): Buffer[] =>
    (keys ?? []).map((b) => Buffer.from(b)).filter((b) => Buffer.compare(b, from) > 0 && Buffer.compare(b, to) < 0).sort(Buffer.compare);
  const splits = inside(opts.splits, start, end);
  const read = (from: Buffer, to: Buffer, at: bigint, limit: number): Promise<RangePage> => {
    const page = range({ key: from, rangeEnd: to, limit, revision: Number(at) }, callOptions());
    page.catch(() => undefined); // a failure is taken from the chain that awaits it; this keeps it from going unhandled meanwhile
    return page;
  };
  // Segment i is [ends[i - 1] (start for i = 0), ends[i]).
  const ends = [...inside(opts.boundaries, start, end), end];
  const first = await read(start, ends[0]!, opts.revision ?? 0n, Math.min(pageSize, FIRST_PAGE_SIZE));
  const revision = opts.revision ?? first.revision;

  // Parts in key order; a part split later is followed by its pieces.
  const parts: Part[] = [];
  /** Pages read and not yet handed to onPage, in the order they arrived. */
  const arrived: RangePage[] = [];
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  let running = 0;
  let failure: { err: unknown } | undefined;
  /** The list ended (done, failed, or the caller's onPage threw): no chain asks for more. */
  let over = false;

  /** Reads one part page by page, each next page asked for as soon as the one before arrives. */
  const chain = async (part: Part, next: Promise<RangePage>, ramp: boolean): Promise<void> => {
    let limit = Math.min(pageSize, FIRST_PAGE_SIZE);
    let pending: Promise<RangePage> | undefined = next;
    while (pending !== undefined && !over) {
      const page: RangePage = await pending;
      pending = undefined;
      const last = page.lastKey;
      if (page.more && last !== undefined && !over) {
        const after = Buffer.concat([last, ZERO]); // the smallest key after `last`
        // etcd's count is every key left in the part: more than one page left is cut at the
        // split points inside it, and each piece is read by a chain of its own at once.
        if (page.total - page.count > pageSize) {
          const cuts = splits.filter((b) => Buffer.compare(b, after) > 0 && Buffer.compare(b, part.end) < 0);
          if (cuts.length > 0) {
            const pieces = [...cuts, part.end].slice(1).map((to, i) => ({ from: cuts[i]!, part: { end: to, pages: [] } as Part }));
            part.end = cuts[0]!;
            parts.splice(parts.indexOf(part) + 1, 0, ...pieces.map((x) => x.part));
            for (const x of pieces) begin(x.part, read(x.from, x.part.end, revision, pageSize), false);
          }
        }
        if (ramp) limit = Math.min(pageSize, limit * PAGE_GROWTH);
        pending = read(after, part.end, revision, ramp ? limit : pageSize);
      }
      if (onPage === undefined) part.pages.push(page);
      else arrived.push(page);
      notify();
    }
  };
  const begin = (part: Part, next: Promise<RangePage>, ramp: boolean) => {
    running++;
    chain(part, next, ramp).then(
      () => running--,
      (err: unknown) => {
        running--;
        failure ??= { err };
        over = true;
      },
    ).finally(notify);
  };
  ends.forEach((to, i) => {
    const part: Part = { end: to, pages: [] };
    parts.push(part);
    // Every other segment's first page is asked for now, at the first page's revision.
    begin(part, i === 0 ? Promise.resolve(first) : read(ends[i - 1]!, to, revision, pageSize), i === 0);
  });

  // Pages are handed over as they arrive, whichever part they belong to (a part's own pages in
  // order): the caller never waits for one part's next page while another part's is here.
  try {
    for (;;) {
      if (failure !== undefined) throw failure.err;
      const page = arrived.shift();
      if (page !== undefined) {
        for (let i = 0; i < page.count; i += SLICE) {
          if (i > 0) await nextTurn();
          onPage!(page.entries(i, i + SLICE), revision);
        }
        continue;
      }
      if (running === 0) break;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    over = true;
  }
  const entries: KvEntry[] = [];
  if (onPage === undefined) for (const part of parts) for (const page of part.pages) for (const e of page.entries(0, page.count)) entries.push(e);
  return { entries, revision };
}

/** A part of the range, read page by page by one chain; `pages`: what it read, when no onPage takes them. */
interface Part {
  end: Buffer;
  pages: RangePage[];
}
