/** The decision module's pure parts: reading a request head (validation, target forms) and dot-segments. */
import { describe, expect, it } from 'vitest';
import { answerHeaders, BAD_REQUEST, MISDIRECTED, NOT_FOUND, NOT_IMPLEMENTED, UNAVAILABLE } from '../src/decision/answers.js';
import { decide } from '../src/decision/decide.js';
import { removeDotSegments } from '../src/decision/dot-segments.js';
import { addForwardedHeaders, forwardedResponseHeaders, hstsOf } from '../src/decision/forwarded.js';
import type { ServedCertificate } from '../src/table/cert-index.js';
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

describe('HTTP/2 request heads', () => {
  it('reads :authority as the authority (over any Host), drops pseudo-headers, joins split cookies', () => {
    const head = read('/a/../b?q', [':method', 'GET', ':path', '/a/../b?q', ':scheme', 'https', ':authority', 'www.mango.com:8443', 'host', 'evil.example', 'cookie', 'a=1', 'accept', '*/*', 'cookie', 'b=2'], 'GET', '2.0');
    expect(head.error).toBeNull();
    expect(head.host).toBe('www.mango.com');
    expect(head.hostHeader).toBe('www.mango.com:8443');
    expect(head.path).toBe('/b?q');
    expect(head.headers).toEqual(['cookie', 'a=1; b=2', 'accept', '*/*', 'host', 'www.mango.com:8443']);
  });

  it('takes a Host header when :authority is absent, and refuses neither, or a :path that is not origin-form', () => {
    expect(read('/', [':method', 'GET', ':path', '/', 'host', 'a.example.com'], 'GET', '2.0').host).toBe('a.example.com');
    expect(read('/', [':method', 'GET', ':path', '/'], 'GET', '2.0').error).toBe(BAD_REQUEST);
    expect(read('*', [':method', 'OPTIONS', ':path', '*', ':authority', 'a.example.com'], 'OPTIONS', '2.0').error).toBe(BAD_REQUEST);
  });

  it('leaves HTTP/1.1 cookies as they came', () => {
    expect(read('/', ['Host', 'a', 'Cookie', 'a=1', 'Cookie', 'b=2']).headers).toEqual(['Host', 'a', 'Cookie', 'a=1', 'Cookie', 'b=2']);
  });
});

describe('decide over TLS', () => {
  const table = new RoutingTable();
  table.setApp('mango', { routes: [{ host: 'www.mango.com' }, { host: 'other.mango.com' }], tls: { redirect: true, hsts: 'max-age=60' } }, 1n);
  table.setInstance('mango', 'm1', { url: 'http://127.0.0.1:7001', state: 'ready' });
  const cert: ServedCertificate = { name: 'www', hosts: ['www.mango.com', '*.apple.com'], certPem: '', keyPem: '', notAfter: 0, fingerprint: '', createRevision: 1n };
  const overTls = (target: string, host: string) => {
    const head = read(target, ['Host', host]);
    head.secure = true;
    head.cert = cert;
    return head;
  };

  it('answers 421 for a host the connection\'s certificate does not cover, before routing', () => {
    expect(decide(table, overTls('/', 'other.mango.com'), 0)).toBe(MISDIRECTED);
    expect(decide(table, overTls('/', 'nothing.example.com'), 0)).toBe(MISDIRECTED);
    expect(decide(table, overTls('/', 'x.apple.com'), 0)).toBe(NOT_FOUND);
    expect(decide(table, overTls('/', 'a.x.apple.com'), 0)).toBe(MISDIRECTED);
    const ok = overTls('/', 'WWW.mango.com:443');
    expect(decide(table, ok, 0)).toBeNull();
    expect(hstsOf(ok)).toBe('max-age=60');
  });

  it('redirects plain HTTP of a tls.redirect app with 308 to https, except ACME challenges', () => {
    expect(decide(table, read('/a/../b?x=1', ['Host', 'www.mango.com:8080']), 0, ':8443')).toEqual({ status: 308, message: 'Permanent Redirect', location: 'https://www.mango.com:8443/b?x=1' });
    expect(decide(table, read('/', ['Host', 'www.mango.com']), 0)).toMatchObject({ location: 'https://www.mango.com/' });
    expect(decide(table, read('/.well-known/acme-challenge/t', ['Host', 'www.mango.com']), 0)).toBeNull();
    const plain = read('/', ['Host', 'www.mango.com']);
    decide(table, plain, 0, '');
    expect(hstsOf(plain)).toBeUndefined();
  });

  it('puts HSTS and Location on answers, and no connection header on HTTP/2 ones', () => {
    const h1 = answerHeaders({ status: 308, message: 'Permanent Redirect', location: 'https://a/' }, 'id', '5', true, 'max-age=1');
    expect(h1).toEqual(['content-type', 'text/plain; charset=utf-8', 'content-length', '18', 'x-content-type-options', 'nosniff', 'x-request-id', 'id', 'location', 'https://a/', 'strict-transport-security', 'max-age=1', 'connection', 'close']);
    expect(answerHeaders(BAD_REQUEST, 'id', '5', true, undefined, true)).not.toContain('connection');
    expect(forwardedResponseHeaders(['Strict-Transport-Security', 'max-age=5', 'Connection', 'keep-alive', 'X-A', '1'], 'id', false, 'max-age=60')).toEqual(['X-A', '1', 'x-request-id', 'id', 'strict-transport-security', 'max-age=60']);
  });

  it('adds X-Forwarded-Port over TLS', () => {
    const head = overTls('/', 'www.mango.com');
    addForwardedHeaders(head, '127.0.0.1', 'https', '8443');
    expect(head.headers).toEqual(['Host', 'www.mango.com', 'x-forwarded-for', '127.0.0.1', 'x-forwarded-proto', 'https', 'x-request-id', head.id, 'x-forwarded-host', 'www.mango.com', 'x-forwarded-port', '8443']);
  });
});
