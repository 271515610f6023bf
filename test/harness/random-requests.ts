/**
 * Random request sequences for property tests through the router (fast-check): downloads whose
 * every byte is checked against the sample app's /bytes?pattern generator, and uploads to
 * /count of any size, with a length or chunked, to an instance that may pause before reading
 * (`pause`) or close its connection after answering (`close`), of the sizes bodySize gives.
 *
 *   await fc.assert(fc.asyncProperty(fc.array(requestStep(2)), async (steps) => {
 *     for (const s of steps) expect(await runStep(s, (i) => routers[i].url, HOST, dispatcher)).toBeUndefined();
 *   }), { numRuns: 30, seed: 20261130 });
 */
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { request, type Dispatcher } from 'undici';

/** The sample app's /bytes?pattern generator (test/apps/sample-app.mjs): byte i is PATTERN[i % L]. */
const L = 65537;
const PATTERN = Buffer.allocUnsafe(2 * L);
for (let i = 0, x = 1; i < L; i++) {
  x = (Math.imul(x, 1103515245) + 12345) >>> 0;
  PATTERN[i] = PATTERN[i + L] = x >>> 24;
}

/** Reads a /bytes?pattern body: how many bytes came, and the offset of the first wrong one (-1: none). */
export async function checkPattern(body: AsyncIterable<Buffer>): Promise<{ got: number; firstWrong: number }> {
  let got = 0;
  let firstWrong = -1;
  for await (const chunk of body) {
    for (let k = 0; k < chunk.length && firstWrong < 0;) {
      const at = (got + k) % L;
      const n = Math.min(chunk.length - k, L);
      if (!chunk.subarray(k, k + n).equals(PATTERN.subarray(at, at + n))) firstWrong = got + k;
      k += n;
    }
    got += chunk.length;
  }
  return { got, firstWrong };
}

/**
 * Body sizes up to `max` that cross the router's 64 KiB buffers: the edges, any size, and more
 * often between one and two buffers (a body sent while the router opens its connection to the
 * instance once left a keep-alive connection unread).
 */
export function bodySize(max: number): fc.Arbitrary<number> {
  return fc.oneof(fc.constantFrom(0, 1, 65_535, 65_536, 65_537), fc.integer({ min: 0, max }), fc.integer({ min: 65_536, max: 140_000 }));
}

const size = bodySize(300_000);

/** One request, sent through router number `router` (below `routers`). */
export type RequestStep =
  | { kind: 'bytes'; n: number; router: number }
  | { kind: 'count'; n: number; chunked: boolean; pauseMs: number; close: boolean; router: number };

export function requestStep(routers: number): fc.Arbitrary<RequestStep> {
  const router = fc.nat(routers - 1);
  return fc.oneof(
    { arbitrary: fc.record({ kind: fc.constant('bytes' as const), n: size, router }), weight: 1 },
    { arbitrary: fc.record({ kind: fc.constant('count' as const), n: size, chunked: fc.boolean(), pauseMs: fc.constantFrom(0, 0, 20, 150), close: fc.boolean(), router }), weight: 3 },
  );
}

/** Sends one step; undefined when its answer is whole and right, else what was wrong. */
export async function runStep(x: RequestStep, urlOf: (router: number) => string, host: string, dispatcher: Dispatcher): Promise<string | undefined> {
  const url = urlOf(x.router);
  if (x.kind === 'bytes') {
    const res = await request(`${url}/bytes?n=${x.n}&pattern`, { headers: { host }, dispatcher });
    const read = await checkPattern(res.body as AsyncIterable<Buffer>);
    return res.statusCode === 200 && read.got === x.n && read.firstWrong < 0 ? undefined : `bytes ${x.n}: ${res.statusCode} ${JSON.stringify(read)}`;
  }
  const payload = Buffer.alloc(x.n, 98);
  // Chunked: no length, in pieces of up to 50,000 bytes.
  const body = x.chunked
    ? Readable.from((function* () {
        for (let at = 0; at < x.n; at += 50_000) yield payload.subarray(at, at + 50_000);
      })())
    : payload;
  const res = await request(`${url}/count?pause=${x.pauseMs}${x.close ? '&close' : ''}`, { method: 'POST', headers: { host }, body, dispatcher });
  const text = await res.body.text();
  return res.statusCode === 200 && (JSON.parse(text) as { bytes: number }).bytes === x.n ? undefined : `count ${x.n}: ${res.statusCode} ${text.slice(0, 200)}`;
}

/** Runs up to three sequences at once, each one request after another; every wrong answer. */
export async function runLanes(lanes: RequestStep[][], urlOf: (router: number) => string, host: string, dispatcher: Dispatcher): Promise<string[]> {
  const wrong = await Promise.all(lanes.map(async (lane) => {
    const out: string[] = [];
    for (const x of lane) {
      const w = await runStep(x, urlOf, host, dispatcher);
      if (w !== undefined) out.push(w);
    }
    return out;
  }));
  return wrong.flat();
}

/** Lanes of steps: 1 to 3 sequences of 1 to 5 requests. */
export function requestLanes(routers: number): fc.Arbitrary<RequestStep[][]> {
  return fc.array(fc.array(requestStep(routers), { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 3 });
}
