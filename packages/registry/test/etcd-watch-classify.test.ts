import { describe, expect, it } from 'vitest';
import { EtcdError, GRPCUnavailableError } from 'etcd3';
import { jitteredDelay } from '../src/etcd/backoff.js';
import { isCompactedError, isConnectivityError } from '../src/etcd/errors.js';
import { EtcdHostUnavailableError, HostBreaker } from '../src/etcd/fault-handling.js';
import { classifyCancel, EtcdWatchStalledError } from '../src/etcd/watch-stream.js';

/** A raw grpc-js error as a call or stream reports it: a plain Error with a numeric code. */
function grpcError(code: number, details: string): Error {
  return Object.assign(new Error(`${code} ${details}`), { code, details });
}

describe('jitteredDelay', () => {
  it('spreads delays over [0, max) and never reaches max', () => {
    expect(jitteredDelay(2_000, () => 0)).toBe(0);
    expect(jitteredDelay(2_000, () => 0.5)).toBe(1_000);
    expect(jitteredDelay(2_000, () => 0.999_999_9)).toBe(1_999);
    expect(jitteredDelay(2_000, () => 1)).toBe(1_999);
  });

  it('is 0 for a zero or negative maximum', () => {
    expect(jitteredDelay(0, () => 0.7)).toBe(0);
    expect(jitteredDelay(-5, () => 0.7)).toBe(0);
  });

  it('with Math.random, 1,000 delays cover the range', () => {
    const delays = Array.from({ length: 1_000 }, () => jitteredDelay(1_000));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...delays)).toBeLessThan(1_000);
    // Each tenth of the range gets some: spread, not clustered.
    const tenths = new Set(delays.map((d) => Math.floor(d / 100)));
    expect(tenths.size).toBe(10);
  });
});

describe('classifyCancel', () => {
  it('a cancel with compact_revision is a compaction, whatever the reason text (etcd 3.4 sends none)', () => {
    expect(classifyCancel({ compact_revision: '42', cancel_reason: '' })).toEqual({ kind: 'compacted', compactRevision: 42n });
    expect(classifyCancel({ compact_revision: '7', cancel_reason: 'anything' })).toEqual({ kind: 'compacted', compactRevision: 7n });
  });

  it('a cancel without compact_revision is a refusal that carries its reason', () => {
    expect(classifyCancel({ compact_revision: '0', cancel_reason: 'etcdserver: permission denied' })).toEqual({
      kind: 'canceled',
      reason: 'etcdserver: permission denied',
    });
    expect(classifyCancel({ compact_revision: '', cancel_reason: '' })).toEqual({ kind: 'canceled', reason: 'no reason given' });
  });
});

describe('isCompactedError', () => {
  it('recognises OUT_OF_RANGE (code 11) whatever the message says', () => {
    expect(isCompactedError(grpcError(11, 'etcdserver: mvcc: required revision has been compacted'))).toBe(true);
    expect(isCompactedError(grpcError(11, 'reworded in some later etcd'))).toBe(true);
  });

  it('does not take the message text alone for a compaction', () => {
    expect(isCompactedError(new EtcdError('etcdserver: mvcc: required revision has been compacted'))).toBe(false);
    expect(isCompactedError(grpcError(14, 'required revision has been compacted'))).toBe(false);
    expect(isCompactedError('compacted')).toBe(false);
  });
});

describe('watch errors', () => {
  it('a stalled watch and a member without leader are connectivity errors', () => {
    expect(isConnectivityError(new EtcdWatchStalledError(2_250))).toBe(true);
    expect(isConnectivityError(grpcError(14, 'etcdserver: no leader'))).toBe(true);
  });
});

describe('HostBreaker.avoidFor', () => {
  it('refuses calls at once for the given time, then lets a probe through', async () => {
    const breaker = new HostBreaker('127.0.0.1:2379');
    breaker.avoidFor(60);
    await expect(breaker.execute(async () => 'ok')).rejects.toBeInstanceOf(EtcdHostUnavailableError);
    await new Promise((resolve) => setTimeout(resolve, 80));
    await expect(breaker.execute(async () => 'ok')).resolves.toBe('ok');
    // The probe succeeded: closed again.
    await expect(breaker.execute(() => Promise.reject(new GRPCUnavailableError('x')))).rejects.toBeInstanceOf(GRPCUnavailableError);
    await expect(breaker.execute(async () => 'again')).resolves.toBe('again');
  });
});
