import { describe, expect, it } from 'vitest';
import { classifyUpstreamError, mayRetry } from '../src/decision/failure.js';
import { normalizeHost } from '../src/decision/host.js';
import { readRequestHead, RequestHead } from '../src/decision/request-head.js';

describe('normalizeHost', () => {
  it.each([
    ['www.mango.com', 'www.mango.com'],
    ['WWW.Mango.COM', 'www.mango.com'],
    ['www.mango.com:8080', 'www.mango.com'],
    ['www.mango.com.', 'www.mango.com'],
    ['www.mango.com.:80', 'www.mango.com'],
    ['[::1]:8080', '[::1]'],
    ['', ''],
    [undefined, ''],
  ])('%s → %s', (input, out) => {
    expect(normalizeHost(input)).toBe(out);
  });
});

describe('request ids', () => {
  const idOf = (id?: string) => {
    const head = new RequestHead();
    readRequestHead(head, 'GET', '/', '1.1', id === undefined ? ['Host', 'a'] : ['Host', 'a', 'X-Request-Id', id]);
    return head.id;
  };
  it('keeps a sane client id and replaces others', () => {
    expect(idOf('abc-123_x.y')).toBe('abc-123_x.y');
    expect(idOf('has space')).toMatch(/^[0-9a-f-]{36}$/);
    expect(idOf('x'.repeat(200))).toMatch(/^[0-9a-f-]{36}$/);
    expect(idOf()).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('upstream failures', () => {
  const wrapped = (code: string) => Object.assign(new Error('wrapped'), { code: 'FST_REPLY_FROM_INTERNAL_SERVER_ERROR', cause: Object.assign(new Error(code), { code }) });
  it('maps to the contract answers', () => {
    expect(classifyUpstreamError(wrapped('ECONNREFUSED'))).toMatchObject({ status: 502, nothingSent: true, connectionFailure: true });
    expect(classifyUpstreamError(wrapped('ECONNRESET'))).toMatchObject({ status: 502, nothingSent: false, connectionFailure: true });
    expect(classifyUpstreamError(wrapped('UND_ERR_HEADERS_TIMEOUT'))).toMatchObject({ status: 504, connectionFailure: false });
    expect(classifyUpstreamError(wrapped('UND_ERR_CONNECT_TIMEOUT'))).toMatchObject({ status: 504, nothingSent: true });
    expect(classifyUpstreamError(new Error('odd'))).toMatchObject({ status: 502, reason: 'UNKNOWN' });
  });
  it('retries only what is safe to send again', () => {
    const refused = classifyUpstreamError(wrapped('ECONNREFUSED'));
    const reset = classifyUpstreamError(wrapped('ECONNRESET'));
    const timeout = classifyUpstreamError(wrapped('UND_ERR_HEADERS_TIMEOUT'));
    expect(mayRetry(refused, 'POST', true, false)).toBe(true);
    expect(mayRetry(refused, 'POST', true, true)).toBe(false);
    expect(mayRetry(reset, 'GET', false, false)).toBe(true);
    expect(mayRetry(reset, 'POST', false, false)).toBe(false);
    expect(mayRetry(reset, 'PUT', true, false)).toBe(false);
    expect(mayRetry(timeout, 'GET', false, false)).toBe(false);
  });
});
