import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { parseDuration } from '../src/duration.js';

describe('parseDuration: Go syntax, shared by paas-router and paas-deploy', () => {
  test.each([
    ['30s', 30_000],
    ['500ms', 500],
    ['2m', 120_000],
    ['2h', 7_200_000],
    ['1m30s', 90_000],
    ['1h2m3s4ms', 3_723_004],
    ['1.5h', 5_400_000],
    ['.5s', 500],
    ['1500us', 1.5],
    ['2000000ns', 2],
    ['0', 0],
    ['0s', 0],
    [' 3s ', 3000],
  ])('%s is %d ms', (text, ms) => expect(parseDuration(text)).toEqual({ ok: true, ms }));

  test.each(['10', '1.5', '', 's', '-1s', '+1s', '1d', '1 s', 'abc', '1e3s', '1s ms', '1m30'])('refuses %j with the examples', (text) => {
    const r = parseDuration(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toContain('e.g. 500ms, 30s, 1m30s, 2h');
  });

  test('a bare number says it lacks a unit', () => {
    expect(parseDuration('30')).toEqual({ ok: false, error: '"30" has no unit (e.g. 500ms, 30s, 1m30s, 2h)' });
  });

  test('hours, minutes, seconds and milliseconds written out add up (property)', () => {
    fc.assert(
      fc.property(fc.nat(100), fc.nat(59), fc.nat(59), fc.nat(999), (h, m, s, ms) => {
        const text = `${h}h${m}m${s}s${ms}ms`;
        expect(parseDuration(text)).toEqual({ ok: true, ms: ((h * 60 + m) * 60 + s) * 1000 + ms });
      }),
    );
  });
});
