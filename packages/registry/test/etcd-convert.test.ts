import { describe, expect, it } from 'vitest';
import type { IEvent, IKeyValue } from 'etcd3';
import { groupByRevision, prefixRangeEnd, toKvEntry } from '../src/etcd/convert.js';
import { toCompare, toRequestOp } from '../src/etcd/txn.js';

const kv = (key: string, mod: number, value = 'v'): IKeyValue => ({
  key: Buffer.from(key),
  value: Buffer.from(value),
  create_revision: '3',
  mod_revision: String(mod),
  version: '1',
  lease: '0',
});

describe('convert', () => {
  it('turns decimal-string revisions into bigint', () => {
    expect(toKvEntry({ ...kv('/a', 9), create_revision: '9007199254740993' })).toEqual({
      key: '/a',
      value: Buffer.from('v'),
      createRevision: 9007199254740993n,
      modRevision: 9n,
      version: 1n,
      lease: '0',
    });
  });

  it('groups a watch response by revision, in order', () => {
    const events: IEvent[] = [
      { type: 'Put', kv: kv('/a', 5), prev_kv: kv('/a', 4) },
      { type: 'Put', kv: kv('/b', 5), prev_kv: kv('/b', 4) },
      { type: 'Delete', kv: kv('/c', 6, ''), prev_kv: kv('/c', 4) },
      { type: 'Put', kv: kv('/a', 7), prev_kv: kv('/a', 5) },
    ];
    expect(groupByRevision(events).map((g) => [g.revision, g.events.map((e) => `${e.type} ${e.key}`)])).toEqual([
      [5n, ['put /a', 'put /b']],
      [6n, ['delete /c']],
      [7n, ['put /a']],
    ]);
  });

  it('computes a prefix range end on bytes', () => {
    expect(prefixRangeEnd('/paas/')).toEqual(Buffer.from('/paas0'));
    expect(prefixRangeEnd('a\xff')).toEqual(Buffer.from('a\xc3\xc0', 'latin1')); // "ÿ" is 2 bytes in UTF-8
    expect(prefixRangeEnd('')).toEqual(Buffer.from([0]));
  });
});

describe('txn mapping', () => {
  it('maps compares', () => {
    expect(toCompare({ key: 'k', target: 'create', op: '=', value: 0n })).toEqual({
      key: Buffer.from('k'),
      result: 'Equal',
      target: 'Create',
      create_revision: '0',
    });
    expect(toCompare({ key: 'k', target: 'mod', op: '<', value: 12n })).toMatchObject({ result: 'Less', target: 'Mod', mod_revision: '12' });
    expect(toCompare({ key: 'k', target: 'version', op: '>', value: 1n })).toMatchObject({ result: 'Greater', target: 'Version', version: '1' });
    expect(toCompare({ key: 'k', target: 'value', op: '!=', value: 'x' })).toMatchObject({ result: 'NotEqual', target: 'Value', value: Buffer.from('x') });
  });

  it('maps ops', () => {
    expect(toRequestOp({ put: 'k', value: 'v', lease: '7' })).toEqual({
      request_put: { key: Buffer.from('k'), value: Buffer.from('v'), lease: '7' },
    });
    expect(toRequestOp({ put: 'k', value: 'v' })).toEqual({ request_put: { key: Buffer.from('k'), value: Buffer.from('v') } });
    expect(toRequestOp({ delete: 'k' })).toEqual({ request_delete_range: { key: Buffer.from('k') } });
  });
});
