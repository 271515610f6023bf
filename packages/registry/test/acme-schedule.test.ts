/** When the fleet renews an ACME certificate, and how long a failing host waits. */
import { describe, expect, it } from 'vitest';
import { backoffMs, renewalAt } from '../src/acme-schedule.js';

const DAY = 86_400_000;

describe('renewalAt', () => {
  it('is a third of the lifetime before notAfter, moved earlier by at most a twelfth of it', () => {
    for (const days of [6, 47, 90, 200]) {
      const notBefore = Date.UTC(2026, 0, 1);
      const notAfter = notBefore + days * DAY;
      const lifetime = notAfter - notBefore;
      for (const fp of ['00', 'ab', 'ff', 'a'.repeat(64), 'b'.repeat(64)]) {
        const at = renewalAt(notBefore, notAfter, fp);
        expect(at).toBeLessThanOrEqual(notAfter - lifetime / 3);
        expect(at).toBeGreaterThan(notAfter - lifetime / 3 - lifetime / 12);
      }
    }
  });

  it('is the same for the same certificate (every router agrees) and spreads different ones', () => {
    const nb = Date.UTC(2026, 0, 1);
    const na = nb + 90 * DAY;
    expect(renewalAt(nb, na, 'abc')).toBe(renewalAt(nb, na, 'abc'));
    const spread = new Set(Array.from({ length: 50 }, (_, i) => renewalAt(nb, na, `fp-${i}`)));
    expect(spread.size).toBe(50);
  });
});

describe('backoffMs', () => {
  it('doubles from the base with each failure in a row, up to 64 times it', () => {
    expect([1, 2, 3, 4, 7, 8, 20].map((n) => backoffMs(n, 1000))).toEqual([1000, 2000, 4000, 8000, 64_000, 64_000, 64_000]);
    expect(backoffMs(0, 60_000)).toBe(60_000);
  });
});
