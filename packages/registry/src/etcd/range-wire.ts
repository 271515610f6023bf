/**
 * etcd's Range call on the wire: the request encoded and the response decoded by hand, straight
 * into KvEntry objects. Listing is the one call that moves hundreds of thousands of records; through
 * etcd3's generated client each record became a protobufjs message, then a plain object with
 * decimal-string revisions (via `long`), then our KvEntry: ~0.8 s of a 300k-key list on the client
 * and most of the start-up garbage. Here a key is decoded once into a string and a value stays a
 * view into the response buffer.
 *
 * Field numbers are etcd's api/etcdserverpb/rpc.proto and api/mvccpb/kv.proto (stable since v3.0).
 * Revisions, versions and limits stay below 2^53, so their varints decode into plain numbers;
 * lease ids use all 64 bits and are decoded exactly.
 */
import type { KvEntry } from './types.js';

export const RANGE_METHOD = '/etcdserverpb.KV/Range';

export interface RangeRequest {
  key: Buffer;
  rangeEnd: Buffer;
  limit: number;
  /** 0: the current revision. */
  revision: number;
}

export interface RangePage {
  /** The store revision the page was read at (header.revision). */
  revision: bigint;
  /** Records in the page. */
  count: number;
  /**
   * Records [from, to) decoded. A page is decoded a slice at a time as it is handled, so a large
   * page costs its wire bytes plus one slice of objects, not a whole page of them.
   */
  entries(from: number, to: number): KvEntry[];
  /** More keys in the range than `limit`. */
  more: boolean;
  /** Keys in the whole requested range, this page's included (etcd's `count`). */
  total: number;
  /** The last key's bytes as sent (the next page starts right after them). */
  lastKey: Buffer | undefined;
}

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    size++;
  }
  return size;
}

function writeVarint(buf: Buffer, pos: number, n: number): number {
  while (n >= 0x80) {
    buf[pos++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  buf[pos++] = n;
  return pos;
}

export function encodeRangeRequest(req: RangeRequest): Buffer {
  const { key, rangeEnd, limit, revision } = req;
  const size =
    1 + varintSize(key.length) + key.length +
    1 + varintSize(rangeEnd.length) + rangeEnd.length +
    (limit > 0 ? 1 + varintSize(limit) : 0) +
    (revision > 0 ? 1 + varintSize(revision) : 0);
  const buf = Buffer.allocUnsafe(size);
  let pos = 0;
  buf[pos++] = (1 << 3) | WIRE_LEN;
  pos = writeVarint(buf, pos, key.length);
  pos += key.copy(buf, pos);
  buf[pos++] = (2 << 3) | WIRE_LEN;
  pos = writeVarint(buf, pos, rangeEnd.length);
  pos += rangeEnd.copy(buf, pos);
  if (limit > 0) {
    buf[pos++] = (3 << 3) | WIRE_VARINT;
    pos = writeVarint(buf, pos, limit);
  }
  if (revision > 0) {
    buf[pos++] = (4 << 3) | WIRE_VARINT;
    pos = writeVarint(buf, pos, revision);
  }
  return buf;
}

/** A cursor over one message; `pos` moves as fields are read. */
class Reader {
  pos: number;

  constructor(
    readonly buf: Buffer,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  /** Varints up to 2^53 exactly; larger ones (ids we skip) lose precision but are consumed whole. */
  varint(): number {
    const buf = this.buf;
    let result = 0;
    let scale = 1;
    for (;;) {
      if (this.pos >= this.end) throw new Error('etcd range response: truncated varint');
      const b = buf[this.pos++]!;
      result += (b & 0x7f) * scale;
      if (b < 0x80) return result;
      scale *= 0x80;
    }
  }

  /** An int64 varint of any size as a decimal string (lease ids use all 64 bits). */
  int64String(): string {
    const start = this.pos;
    const n = this.varint();
    if (n <= Number.MAX_SAFE_INTEGER) return String(n);
    let v = 0n;
    for (let i = this.pos - 1; i >= start; i--) v = (v << 7n) | BigInt(this.buf[i]! & 0x7f);
    return BigInt.asIntN(64, v).toString();
  }

  /** A length-delimited field's [start, end); moves past it. */
  length(): number {
    const len = this.varint();
    const start = this.pos;
    this.pos += len;
    if (this.pos > this.end) throw new Error('etcd range response: field runs past its message');
    return start;
  }

  skip(wireType: number): void {
    switch (wireType) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_I64:
        this.pos += 8;
        return;
      case WIRE_LEN:
        this.length();
        return;
      case WIRE_I32:
        this.pos += 4;
        return;
      default:
        throw new Error(`etcd range response: unsupported wire type ${wireType}`);
    }
  }
}

function decodeKeyValue(r: Reader, end: number): KvEntry {
  const buf = r.buf;
  let key = '';
  let value: Buffer = EMPTY;
  let createRevision = 0;
  let modRevision = 0;
  let version = 0;
  let lease = '0';
  while (r.pos < end) {
    const tag = r.varint();
    switch (tag) {
      case (1 << 3) | WIRE_LEN: {
        const start = r.length();
        key = buf.toString('utf8', start, r.pos);
        break;
      }
      case (2 << 3) | WIRE_VARINT:
        createRevision = r.varint();
        break;
      case (3 << 3) | WIRE_VARINT:
        modRevision = r.varint();
        break;
      case (4 << 3) | WIRE_VARINT:
        version = r.varint();
        break;
      case (5 << 3) | WIRE_LEN: {
        const start = r.length();
        value = buf.subarray(start, r.pos);
        break;
      }
      case (6 << 3) | WIRE_VARINT:
        lease = r.int64String();
        break;
      default:
        r.skip(tag & 7);
    }
  }
  return { key, value, createRevision: revisions.of(createRevision), modRevision: revisions.of(modRevision), version: versions.of(version), lease };
}

/**
 * The BigInt of the number seen last. A BigInt is a heap object of its own, and in a list
 * neighbouring records mostly share their numbers: a record never changed has the same create and
 * mod revision, one transaction's puts share a revision, most versions are 1.
 */
class LastBigInt {
  private n = 0;
  private big = 0n;

  of(n: number): bigint {
    if (n !== this.n) {
      this.n = n;
      this.big = BigInt(n);
    }
    return this.big;
  }
}

const revisions = new LastBigInt();
const versions = new LastBigInt();

const EMPTY: Buffer = Buffer.alloc(0);

function decodeHeaderRevision(r: Reader, end: number): number {
  let revision = 0;
  while (r.pos < end) {
    const tag = r.varint();
    if (tag === ((3 << 3) | WIRE_VARINT)) revision = r.varint();
    else r.skip(tag & 7);
  }
  return revision;
}

/** Where the key field of the KeyValue message [start, end) is. */
function keyBytes(buf: Buffer, start: number, end: number): Buffer | undefined {
  const r = new Reader(buf, start, end);
  while (r.pos < end) {
    const tag = r.varint();
    if (tag === ((1 << 3) | WIRE_LEN)) {
      const at = r.length();
      return buf.subarray(at, r.pos);
    }
    r.skip(tag & 7);
  }
  return undefined;
}

class WirePage implements RangePage {
  constructor(
    readonly revision: bigint,
    readonly more: boolean,
    private readonly buf: Buffer,
    /** Start and end offset of each KeyValue message, in pairs. */
    private readonly spans: Int32Array,
    readonly count: number,
    readonly total: number,
  ) {}

  get lastKey(): Buffer | undefined {
    const n = this.count;
    return n === 0 ? undefined : keyBytes(this.buf, this.spans[2 * n - 2]!, this.spans[2 * n - 1]!);
  }

  entries(from: number, to: number): KvEntry[] {
    const end = Math.min(to, this.count);
    const out = new Array<KvEntry>(Math.max(0, end - from));
    const r = new Reader(this.buf, 0, this.buf.length);
    for (let i = from; i < end; i++) {
      r.pos = this.spans[2 * i]!;
      out[i - from] = decodeKeyValue(r, this.spans[2 * i + 1]!);
    }
    return out;
  }
}

/** Reads the header and finds the records; they are decoded by RangePage.entries. */
export function decodeRangeResponse(buf: Buffer): RangePage {
  const r = new Reader(buf, 0, buf.length);
  let revision = 0;
  let more = false;
  let spans = new Int32Array(64);
  let count = 0;
  let total = 0;
  while (r.pos < r.end) {
    const tag = r.varint();
    switch (tag) {
      case (1 << 3) | WIRE_LEN: {
        const start = r.length();
        const end = r.pos;
        r.pos = start;
        revision = decodeHeaderRevision(r, end);
        break;
      }
      case (2 << 3) | WIRE_LEN: {
        const start = r.length();
        if (2 * count + 2 > spans.length) {
          const grown = new Int32Array(spans.length * 2);
          grown.set(spans);
          spans = grown;
        }
        spans[2 * count] = start;
        spans[2 * count + 1] = r.pos;
        count++;
        break;
      }
      case (3 << 3) | WIRE_VARINT:
        more = r.varint() !== 0;
        break;
      case (4 << 3) | WIRE_VARINT:
        total = r.varint();
        break;
      default:
        r.skip(tag & 7);
    }
  }
  if (r.pos !== r.end) throw new Error('etcd range response: truncated message');
  return new WirePage(BigInt(revision), more, buf, spans, count, total);
}
