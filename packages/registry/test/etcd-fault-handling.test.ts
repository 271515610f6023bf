import { afterEach, describe, expect, it, vi } from 'vitest';
import { EtcdError, GRPCDeadlineExceededError, GRPCUnavailableError } from 'etcd3';
import { EtcdHostUnavailableError, HostBreaker, NextEndpointRetry } from '../src/etcd/fault-handling.js';
import { isConnectivityError } from '../src/etcd/errors.js';
import { Backoff } from '../src/etcd/backoff.js';

const unavailable = () => Promise.reject(new GRPCUnavailableError('14 UNAVAILABLE: connect ECONNREFUSED'));

describe('HostBreaker', () => {
  afterEach(() => vi.useRealTimers());

  it('opens after 3 consecutive recoverable failures and lets one probe through after 1 s', async () => {
    vi.useFakeTimers();
    const breaker = new HostBreaker('127.0.0.1:2379');
    for (let i = 0; i < 3; i++) await expect(breaker.execute(unavailable)).rejects.toBeInstanceOf(GRPCUnavailableError);
    const fn = vi.fn(async () => 'ok');
    await expect(breaker.execute(fn)).rejects.toBeInstanceOf(EtcdHostUnavailableError);
    expect(fn).not.toHaveBeenCalled();

    vi.advanceTimersByTime(1_000);
    let finishProbe!: (v: string) => void;
    const probe = breaker.execute(() => new Promise<string>((resolve) => (finishProbe = resolve)));
    // While the probe runs, other calls are still refused.
    await expect(breaker.execute(fn)).rejects.toBeInstanceOf(EtcdHostUnavailableError);
    finishProbe('probe ok');
    await expect(probe).resolves.toBe('probe ok');
    await expect(breaker.execute(fn)).resolves.toBe('ok');
  });

  it('a failed probe keeps it open for another second', async () => {
    vi.useFakeTimers();
    const breaker = new HostBreaker('h');
    for (let i = 0; i < 3; i++) await expect(breaker.execute(unavailable)).rejects.toThrow();
    vi.advanceTimersByTime(1_000);
    await expect(breaker.execute(unavailable)).rejects.toBeInstanceOf(GRPCUnavailableError);
    await expect(breaker.execute(async () => 1)).rejects.toBeInstanceOf(EtcdHostUnavailableError);
    vi.advanceTimersByTime(1_000);
    await expect(breaker.execute(async () => 1)).resolves.toBe(1);
  });

  it('an answer from etcd, even an error, counts as reachable', async () => {
    const breaker = new HostBreaker('h');
    for (let i = 0; i < 2; i++) await expect(breaker.execute(unavailable)).rejects.toThrow();
    await expect(breaker.execute(() => Promise.reject(new EtcdError('etcdserver: mvcc: required revision has been compacted')))).rejects.toThrow();
    for (let i = 0; i < 2; i++) await expect(breaker.execute(unavailable)).rejects.toThrow();
    await expect(breaker.execute(async () => 'still closed')).resolves.toBe('still closed');
  });
});

describe('NextEndpointRetry', () => {
  it('moves an UNAVAILABLE call to the next endpoint, once per endpoint', async () => {
    const fn = vi.fn(unavailable);
    await expect(new NextEndpointRetry(3).execute(fn)).rejects.toBeInstanceOf(GRPCUnavailableError);
    expect(fn).toHaveBeenCalledTimes(3);
  });

  it('never repeats a call that may have been applied (deadline) or that etcd refused', async () => {
    for (const err of [new GRPCDeadlineExceededError('4 DEADLINE_EXCEEDED'), new EtcdError('etcdserver: nope')]) {
      const fn = vi.fn(() => Promise.reject(err));
      await expect(new NextEndpointRetry(3).execute(fn)).rejects.toBe(err);
      expect(fn).toHaveBeenCalledTimes(1);
    }
  });
});

describe('isConnectivityError', () => {
  it('knows typed, raw grpc-js and our own errors', () => {
    expect(isConnectivityError(new GRPCUnavailableError('x'))).toBe(true);
    expect(isConnectivityError(Object.assign(new Error('14 UNAVAILABLE: Connection dropped'), { code: 14 }))).toBe(true);
    expect(isConnectivityError(new EtcdHostUnavailableError('h', 3, 100))).toBe(true);
    expect(isConnectivityError(new EtcdError('etcdserver: permission denied'))).toBe(false);
    expect(isConnectivityError('a string')).toBe(false);
  });
});

describe('Backoff', () => {
  it('starts near 100 ms, doubles, never exceeds 5 s, and resets', () => {
    const backoff = new Backoff();
    const delays = Array.from({ length: 12 }, () => backoff.next());
    expect(delays[0]).toBeGreaterThanOrEqual(80);
    expect(delays[0]).toBeLessThanOrEqual(120);
    expect(delays[3]).toBeGreaterThanOrEqual(640);
    expect(Math.max(...delays)).toBeLessThanOrEqual(5_000);
    expect(delays.at(-1)).toBeGreaterThanOrEqual(4_000);
    backoff.reset();
    expect(backoff.next()).toBeLessThanOrEqual(120);
  });
});
