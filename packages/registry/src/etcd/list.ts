/**
 * Reading a whole key range at one revision, in pages: a single range response over 4 MiB
 * (~40k records) fails in grpc-js, and paging without a fixed revision would mix two states.
 */
import type { KVClient, IRangeResponse } from 'etcd3';
import { toKvEntry } from './convert.js';
import { isCompactedError } from './errors.js';
import type { KvEntry } from './types.js';

export const DEFAULT_PAGE_SIZE = 1_000;

export type CallOptions = NonNullable<Parameters<KVClient['range']>[1]>;

export interface ListOptions {
  pageSize?: number;
  /** Read at this revision instead of the current one. */
  revision?: bigint;
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
  let revision = opts.revision;
  let from = start;
  const entries: KvEntry[] = [];
  for (;;) {
    const page: IRangeResponse = await kv.range(
      { key: from, range_end: end, limit: pageSize, ...(revision !== undefined && { revision: revision.toString() }) },
      callOptions(),
    );
    revision ??= BigInt(page.header.revision);
    for (const item of page.kvs) entries.push(toKvEntry(item));
    const last = page.kvs.at(-1);
    if (!page.more || !last) return { entries, revision };
    from = Buffer.concat([last.key, Buffer.from([0])]); // the smallest key after `last`
  }
}
