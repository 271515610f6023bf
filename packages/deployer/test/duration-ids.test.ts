import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { isName } from '@paas/registry';
import { formatMs } from '../src/duration.js';
import { newInstanceId, normalizeUrl, slug, uniqueInstanceId } from '../src/ids.js';

describe('formatMs', () => {
  test.each([
    [0, '0ms'],
    [12.4, '12ms'],
    [999, '999ms'],
    [1234, '1.23s'],
    [12_345, '12.3s'],
    [125_000, '2m05s'],
  ])('%d', (ms, text) => expect(formatMs(ms)).toBe(text));
});

describe('instance ids', () => {
  test('<release>-<random>', () => {
    expect(newInstanceId({ app: 'mango', release: 'v2' }, () => 'abc123')).toBe('v2-abc123');
    expect(newInstanceId({ app: 'mango', release: 'v2' })).toMatch(/^v2-[a-z0-9]{6}$/);
  });

  test('without a release: <app>-<random>', () => {
    expect(newInstanceId({ app: 'mango' }, () => 'abc123')).toBe('mango-abc123');
  });

  test('slugs a release that is not a name, and cuts it to fit 63 characters', () => {
    expect(newInstanceId({ app: 'mango', release: 'Release 2.0/RC_1' }, () => 'abc123')).toBe('release-2-0-rc-1-abc123');
    const long = newInstanceId({ app: 'mango', release: 'x'.repeat(200) }, () => 'abc123');
    expect(long.length).toBe(63);
    expect(isName(long)).toBe(true);
    expect(newInstanceId({ app: 'mango', release: '---' }, () => 'abc123')).toBe('mango-abc123');
  });

  test('any release and app give a valid name', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/), (release, app) => {
        expect(isName(newInstanceId({ app, release }))).toBe(true);
      }),
    );
  });

  test('uniqueInstanceId avoids taken ids', () => {
    const seq = ['aaaaaa', 'aaaaaa', 'bbbbbb'];
    const id = uniqueInstanceId({ app: 'm', release: 'v1' }, new Set(['v1-aaaaaa']), () => seq.shift()!);
    expect(id).toBe('v1-bbbbbb');
  });

  test('slug', () => {
    expect(slug('  Hello, World!  ', 63)).toBe('hello-world');
    expect(slug('abc-', 3)).toBe('abc');
  });
});

describe('normalizeUrl', () => {
  test.each([
    ['http://127.0.0.1:8080/', 'http://127.0.0.1:8080'],
    ['HTTP://Host.Example:80', 'http://host.example:80'],
    ['https://a:1', 'https://a:1'],
  ])('%s', (url, norm) => expect(normalizeUrl(url)).toBe(norm));
});
