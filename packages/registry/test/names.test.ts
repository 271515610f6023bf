/**
 * The name and origin checks read strings character by character (names.ts, parse.ts); the
 * contract states them as regular expressions. Each check is held here to its regex over the
 * edge cases and over many random strings of the characters that matter.
 */
import { describe, expect, it } from 'vitest';
import { hostError, isName, isPlainOrigin, NAME_PATTERN } from '../src/index.js';

const NAME_RE = new RegExp(NAME_PATTERN);
const HOST_RE = /^(?:\*\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const PLAIN_NAME_ORIGIN = /^https?:\/\/(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)*[a-z](?:[a-z0-9-]*[a-z0-9])?:(\d{1,5})\/?$/;
const PLAIN_IPV4_ORIGIN = /^https?:\/\/(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}:(\d{1,5})\/?$/;

function hostByRegex(host: string, wildcard: boolean): boolean {
  return host.length <= 253 && HOST_RE.test(host) && (!host.startsWith('*') || (wildcard && host.indexOf('.', 2) > 0));
}

function originByRegex(url: string): boolean {
  const m = PLAIN_NAME_ORIGIN.exec(url) ?? PLAIN_IPV4_ORIGIN.exec(url);
  return m !== null && Number(m[m.length - 1]) <= 65535;
}

/** A seeded generator: the same strings on every run. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function strings(alphabet: string[], count: number, maxLength: number, seed: number): string[] {
  const next = random(seed);
  const out: string[] = [];
  for (let k = 0; k < count; k++) {
    let s = '';
    const n = Math.floor(next() * (maxLength + 1));
    for (let i = 0; i < n; i++) s += alphabet[Math.floor(next() * alphabet.length)];
    out.push(s);
  }
  return out;
}

/** Both checks give the same verdict on every input, and the inputs hold enough of each verdict to tell. */
function expectAgreement(inputs: string[], check: (s: string) => boolean, byRegex: (s: string) => boolean): void {
  const disagree = inputs.filter((s) => check(s) !== byRegex(s));
  expect(disagree.slice(0, 5)).toEqual([]);
  const valid = inputs.filter(byRegex).length;
  expect(Math.min(valid, inputs.length - valid)).toBeGreaterThan(inputs.length / 200);
}

const label63 = 'a'.repeat(63);

describe('isName', () => {
  const edge = ['', 'a', '0', '-', 'a-', '-a', 'a-b', 'a--b', label63, label63 + 'a', 'A', 'a_b', 'a.b', 'é', 'a b', 'app0', 'i1'];
  it.each(edge)('%j as the pattern says', (s) => {
    expect(isName(s)).toBe(NAME_RE.test(s));
  });

  it('agrees with the pattern on 50,000 random strings', () => {
    expectAgreement(strings(['a', 'z', '0', '9', '-', 'A', '.', '_'], 50_000, 66, 1), isName, (s) => NAME_RE.test(s));
  });
});

describe('hostError on valid and invalid hosts', () => {
  const edge = ['', 'a', 'a.b', 'a..b', '.a', 'a.', '*.a', '*.a.b', '*', '*.', '**.a', 'a.*.b', '-a.b', 'a-.b', `${label63}.com`, `${label63}a.com`, `${'a.'.repeat(126)}a`, `${'a.'.repeat(127)}a`, 'A.b', 'x_y.z', 'app0.bench.local'];
  it.each(edge)('%j as the regex says', (h) => {
    for (const wildcard of [false, true]) expect(hostError(h, wildcard) === undefined).toBe(hostByRegex(h, wildcard));
  });

  it('agrees with the regex on 50,000 random strings', () => {
    const hosts = strings(['a', '0', '-', '.', '*', 'B'], 50_000, 20, 2);
    for (const wildcard of [false, true]) expectAgreement(hosts, (h) => hostError(h, wildcard) === undefined, (h) => hostByRegex(h, wildcard));
  });
});

describe('isPlainOrigin', () => {
  const edge = [
    'http://127.0.0.1:9', 'https://127.0.0.1:8443/', 'http://10.0.0.1:65535', 'http://10.0.0.1:65536', 'http://10.0.0.1:0', 'http://10.0.0.1:00080',
    'http://256.0.0.1:80', 'http://01.2.3.4:80', 'http://1.2.3:80', 'http://1.2.3.4.5:80', 'http://1.2.3.4:', 'http://1.2.3.4:123456', 'http://1.2.3.4:80//',
    'http://app.internal:8080', 'http://a-b.c-d:1', 'http://a:1', 'http://1a:1', 'http://a.1b:1', 'http://-a:1', 'http://a-:1', 'http://a..b:1', 'http://.a:1',
    'http://A:1', 'ftp://a:1', 'http:/a:1', 'http://a:1?x', 'http://a:1/x', 'http://user@a:1', 'http://[::1]:80', 'http://:80', 'tunnel://i0', 'http://a',
  ];
  it.each(edge)('%j as the regexes say', (u) => {
    expect(isPlainOrigin(u)).toBe(originByRegex(u));
  });

  it('agrees with the regexes on 100,000 random hosts and ports', () => {
    const next = random(3);
    const urls: string[] = [];
    // Half of names and addresses, half of digits and dots only (dotted quads, some of them valid).
    const hosts = [...strings(['a', 'z', '0', '1', '2', '5', '9', '-', '.', 'X'], 50_000, 16, 4), ...strings(['0', '1', '2', '5', '9', '.'], 50_000, 15, 6)];
    const ports = strings(['0', '5', '6', '9', '/', 'x'], 100_000, 7, 5);
    for (let i = 0; i < hosts.length; i++) {
      urls.push(`${next() < 0.5 ? 'http' : 'https'}://${hosts[i]}:${ports[i]}`);
    }
    expectAgreement(urls, isPlainOrigin, originByRegex);
  });
});
