/** etcd3's wire shapes (decimal-string revisions, Buffer keys) to ours (bigint, string keys). */
import type { IKeyValue, IEvent } from 'etcd3';
import type { KvEntry, WatchEvent } from './types.js';

export function toKvEntry(kv: IKeyValue): KvEntry {
  return {
    key: kv.key.toString(),
    value: kv.value,
    createRevision: BigInt(kv.create_revision),
    modRevision: BigInt(kv.mod_revision),
    version: BigInt(kv.version),
    lease: kv.lease,
  };
}

export function toWatchEvent(ev: IEvent): WatchEvent {
  const key = ev.kv.key.toString();
  const modRevision = BigInt(ev.kv.mod_revision);
  if (ev.type === 'Delete') return { type: 'delete', key, modRevision };
  return { type: 'put', key, value: ev.kv.value, createRevision: BigInt(ev.kv.create_revision), modRevision };
}

/** Splits a watch response's events (in revision order) into one group per revision. */
export function groupByRevision(events: readonly IEvent[]): Array<{ revision: bigint; events: WatchEvent[] }> {
  const groups: Array<{ revision: bigint; events: WatchEvent[] }> = [];
  for (const ev of events) {
    const event = toWatchEvent(ev);
    const last = groups.at(-1);
    if (last && last.revision === event.modRevision) last.events.push(event);
    else groups.push({ revision: event.modRevision, events: [event] });
  }
  return groups;
}

/** etcd's range_end for "every key starting with prefix", on bytes (not UTF-16 code units). */
export function prefixRangeEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // all keys from `prefix` on
}
