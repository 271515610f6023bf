/** The decision module's pure parts: reading a request head (validation, target forms) and dot-segments. */
import { describe, expect, it } from 'vitest';
import { BAD_REQUEST, NOT_FOUND, NOT_IMPLEMENTED, UNAVAILABLE } from '../src/decision/answers.js';
import { decide } from '../src/decision/decide.js';
import { removeDotSegments } from '../src/decision/dot-segments.js';
import { addForwardedHeaders } from '../src/decision/forwarded.js';
import { readRequestHead, RequestHead } from '../src/decision/request-head.js';
import { RoutingTable } from '../src/table/routing-table.js';

function read(target: string, raw: string[], method = 'GET', version = '1.1'): RequestHead {
  const head = new RequestHead();
  readRequestHead(head, method, target, version, raw);
  return head;
}

describe('removeDotSegments (RFC 3986 §5.2.4, %2e as a dot)', () => {
  it.each([
    ['/', '/'],
    ['/a/b/c', '/a/b/c'],
    ['/a//b/', '/a//b/'],
    ['/a/b/c/./../../g', '/a/g'],
    ['/files/../admin', '/admin'],
    ['/files/%2e%2e/admin', '/admin'],
    ['/files/%2E%2e/admin', '/admin'],
    ['/files/.%2e/admin', '/admin'],
    ['/files/./admin', '/files/admin'],
    ['/files/%2e/admin', '/files/admin'],
    ['/a/.', '/a/'],
    ['/a/..', '/'],
    ['/a/b/..', '/a/'],
    ['/..', '/'],
    ['/../../x', '/x'],
    ['/a/../', '/'],
    ['/.../x', '/.../x'],
    ['/a.b/c..d/.e', '/a.b/c..d/.e'],
    ['/%2e%2e%2e/x', '/%2e%2e%2e/x'],
    ['/a%2fb/../c', '/c'],
  ])('%s → %s', (path, out) => {
    expect(removeDotSegments(path, path.length)).toBe(out);
  });

  it('returns the very string when there is nothing to remove', () => {
    const path = '/api/v1/users.json';
    expect(removeDotSegments(path, path.length)).toBe(path);
  });
});

describe('readRequestHead', () => {
  it('keeps the query and resolves only the path', () => {
    const head = read('/files/../admin?x=/../y', ['Host', 'cloud.example.com']);
    expect(head.path).toBe('/admin?x=/../y');
    expect(head.error).toBeNull();
  });

  it('refuses more than one Host header with 400, and none in HTTP/1.1', () => {
    expect(read('/', ['Host', 'a.example.com', 'Host', 'b.example.com']).error).toBe(BAD_REQUEST);
    expect(read('/', []).error).toBe(BAD_REQUEST);
    expect(read('/', [], 'GET', '1.0').error).toBeNull();
    expect(read('http://a.example.com/', []).error).toBeNull();
  });

  it('refuses a Transfer-Encoding other than chunked with 501, and any in HTTP/1.0 with 400', () => {
    expect(read('/', ['Host', 'a', 'Transfer-Encoding', 'gzip, chunked'], 'POST').error).toBe(NOT_IMPLEMENTED);
    expect(read('/', ['Host', 'a', 'Transfer-Encoding', 'chunked', 'Transfer-Encoding', 'chunked'], 'POST').error).toBe(NOT_IMPLEMENTED);
    expect(read('/', ['Host', 'a', 'Transfer-Encoding', 'chunked'], 'POST', '1.0').error).toBe(BAD_REQUEST);
    const ok = read('/', ['Host', 'a', 'Transfer-Encoding', 'Chunked'], 'POST');
    expect(ok.error).toBeNull();
    expect(ok.hasBody).toBe(true);
  });

  it('routes an absolute-form target by its authority and sends origin-form with that Host', () => {
    const head = read('http://WWW.Mango.com:8080/a/./b/../c?q', ['Host', 'other.example.com', 'Accept', '*/*']);
    expect(head.error).toBeNull();
    expect(head.host).toBe('www.mango.com');
    expect(head.path).toBe('/a/c?q');
    expect(head.hostHeader).toBe('WWW.Mango.com:8080');
    expect(head.headers).toEqual(['Accept', '*/*', 'host', 'WWW.Mango.com:8080']);
    expect(read('HTTPS://a.example.com', []).path).toBe('/');
    expect(read('http://a.example.com?x', []).path).toBe('/?x');
  });

  it('refuses other target forms and odd authorities with 400', () => {
    expect(read('*', ['Host', 'a'], 'OPTIONS').error).toBe(BAD_REQUEST);
    expect(read('ftp://a.example.com/', ['Host', 'a']).error).toBe(BAD_REQUEST);
    expect(read('http:///x', ['Host', 'a']).error).toBe(BAD_REQUEST);
    expect(read('http://user@a.example.com/', ['Host', 'a']).error).toBe(BAD_REQUEST);
    expect(read('a.example.com:80', ['Host', 'a']).error).toBe(BAD_REQUEST);
  });

  it('builds the forwarded header list: hop-by-hop and Connection-listed out, X-Forwarded-* in', () => {
    const head = read('/x', ['Host', 'a.example.com', 'Connection', 'keep-alive, X-Private', 'X-Private', 's', 'Keep-Alive', '5', 'TE', 'trailers', 'Upgrade', 'h2c', 'X-Forwarded-For', '203.0.113.9', 'X-Request-Id', 'abc', 'Cookie', 'c=1'], 'POST');
    addForwardedHeaders(head, '127.0.0.1', 'http');
    expect(head.headers).toEqual(['Host', 'a.example.com', 'Cookie', 'c=1', 'x-forwarded-for', '203.0.113.9, 127.0.0.1', 'x-forwarded-proto', 'http', 'x-request-id', 'abc', 'x-forwarded-host', 'a.example.com', 'content-length', '0']);
  });
});

describe('decide', () => {
  const table = new RoutingTable();
  table.setApp('files', { routes: [{ host: 'cloud.example.com', path: '/files' }] }, 1n);
  table.setApp('admin', { routes: [{ host: 'cloud.example.com', path: '/admin' }] }, 2n);
  table.setInstance('files', 'f1', { url: 'http://127.0.0.1:7001', state: 'ready' });
  table.setOverride('down.example.com', { maintenance: { status: 503, message: 'Back at 14:00' } });

  it('gives the app and instance, or the answer', () => {
    const files = read('/files/a', ['Host', 'cloud.example.com']);
    expect(decide(table, files, 0)).toBeNull();
    expect(files.pool?.name).toBe('files');
    expect(files.backend?.id).toBe('f1');
    expect(decide(table, read('/files/../admin', ['Host', 'cloud.example.com']), 0)).toBe(UNAVAILABLE);
    expect(decide(table, read('/nothing', ['Host', 'cloud.example.com']), 0)).toBe(NOT_FOUND);
    expect(decide(table, read('/', ['Host', 'down.example.com']), 0)).toMatchObject({ status: 503, message: 'Back at 14:00' });
    expect(decide(table, read('/files/a', ['Host', 'cloud.example.com', 'Host', 'x']), 0)).toBe(BAD_REQUEST);
  });
});
