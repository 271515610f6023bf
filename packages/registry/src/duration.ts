/**
 * The one duration syntax of paas-router and paas-deploy: Go's time.ParseDuration (what etcd,
 * Prometheus, Traefik and Caddy take), e.g. `1m30s`, `500ms`, `2h`, `1.5h`: a sequence of
 * decimal numbers each with a unit (ns, us or µs, ms, s, m, h). A bare number is refused, since
 * readers disagree on its unit, except `0`. No sign: every duration here is a length of time.
 */

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;

export type DurationResult = { ok: true; ms: number } | { ok: false; error: string };

export const DURATION_EXAMPLES = 'e.g. 500ms, 30s, 1m30s, 2h';

/** Milliseconds (fractions kept: `1500us` is 1.5), or why the text is not a duration. */
export function parseDuration(text: string): DurationResult {
  const t = text.trim();
  if (t === '0') return { ok: true, ms: 0 };
  if (/^\d+(\.\d+)?$/.test(t)) return { ok: false, error: `${JSON.stringify(text)} has no unit (${DURATION_EXAMPLES})` };
  let ms = 0;
  PART.lastIndex = 0;
  let at = 0;
  while (at < t.length) {
    PART.lastIndex = at;
    const m = PART.exec(t);
    if (m === null) return { ok: false, error: `${JSON.stringify(text)} is not a duration (${DURATION_EXAMPLES})` };
    ms += Number(m[1]) * UNIT_MS[m[2]!]!;
    at = PART.lastIndex;
  }
  if (t === '' || !Number.isFinite(ms)) return { ok: false, error: `${JSON.stringify(text)} is not a duration (${DURATION_EXAMPLES})` };
  return { ok: true, ms };
}
