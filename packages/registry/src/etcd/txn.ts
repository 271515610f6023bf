/** Our Compare/TxnOp to etcd3's wire request shapes. */
import type { ICompare, IRequestOp } from 'etcd3';
import type { Compare, TxnOp } from './types.js';

const RESULT = { '=': 'Equal', '!=': 'NotEqual', '<': 'Less', '>': 'Greater' } as const;

export function toCompare(c: Compare): ICompare {
  const base = { key: Buffer.from(c.key), result: RESULT[c.op] };
  switch (c.target) {
    case 'version':
      return { ...base, target: 'Version', version: c.value.toString() };
    case 'create':
      return { ...base, target: 'Create', create_revision: c.value.toString() };
    case 'mod':
      return { ...base, target: 'Mod', mod_revision: c.value.toString() };
    case 'value':
      return { ...base, target: 'Value', value: Buffer.from(c.value) };
  }
}

export function toRequestOp(op: TxnOp): IRequestOp {
  if ('delete' in op) return { request_delete_range: { key: Buffer.from(op.delete) } };
  return {
    request_put: { key: Buffer.from(op.put), value: Buffer.from(op.value), ...(op.lease !== undefined && { lease: op.lease }) },
  };
}
