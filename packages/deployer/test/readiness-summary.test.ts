import { describe, expect, it } from 'vitest';
import { readinessSummary } from '../src/health.js';

describe('readinessSummary', () => {
  it('says what the health step waited for: a GET for direct instances, the routers’ sessions for tunnel ones', () => {
    expect(readinessSummary([{ url: 'http://10.0.0.1:8080', ms: 120 }], '/healthz')).toBe('1 healthy on GET /healthz (slowest 120ms)');
    expect(readinessSummary([{ url: 'tunnel://a1', ms: 900 }], '/healthz')).toBe('1 with a tunnel session on every live router (slowest 900ms)');
    expect(readinessSummary([{ url: 'http://10.0.0.1:8080', ms: 50 }, { url: 'tunnel://a2', ms: 1500 }, { url: 'http://10.0.0.2:8080', ms: 70 }], '/up')).toBe(
      '2 healthy on GET /up, 1 with a tunnel session on every live router (slowest 1.50s)',
    );
  });
});
