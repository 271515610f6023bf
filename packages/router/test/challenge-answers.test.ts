/**
 * ChallengeAnswers' bound on etcd reads for hosts no app routes: a flood of random tokens on
 * random hosts costs at most UNROUTED_READS_MAX reads at a time; a token already being read
 * still joins its read, and a freed place takes the next one.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { ChallengeAnswers } from '../src/acme/challenge-answers.js';
import { ACME_CHALLENGE_PATH } from '../src/decision/decide.js';
import { RoutingTable } from '../src/table/routing-table.js';

function harness() {
  const reads = new Map<string, (raw: Uint8Array | undefined) => void>();
  const answers = new ChallengeAnswers({
    read: (token) => new Promise((resolve) => reads.set(token, resolve)),
    getTable: () => new RoutingTable(),
    log: pino({ level: 'silent' }),
  });
  const outcomes: string[] = [];
  const ask = (token: string, host: string) =>
    answers.serve(
      { method: 'GET', url: `${ACME_CHALLENGE_PATH}${token}`, host },
      (status, _headers, body) => outcomes.push(`${token} ${status} ${body}`),
      () => outcomes.push(`${token} next`),
    );
  return { reads, ask, outcomes };
}

const record = (host: string, token: string) => new TextEncoder().encode(JSON.stringify({ host, keyAuthorization: `${token}.k` }));
const settled = () => new Promise((resolve) => setImmediate(resolve));

describe('challenge answers for hosts no app routes', () => {
  it('reads at most 16 tokens at a time; the 17th gets the no-route answer, a freed place reads again', async () => {
    const { reads, ask, outcomes } = harness();
    for (let i = 0; i < 16; i++) ask(`t${i}`, `h${i}.test`);
    expect(reads.size).toBe(16);
    ask('t16', 'h16.test');
    await settled();
    expect(reads.has('t16')).toBe(false);
    expect(outcomes).toEqual(['t16 next']);
    // A token already being read joins that read, over the bound.
    ask('t3', 'h3.test');
    reads.get('t3')!(record('h3.test', 't3'));
    await settled();
    expect(outcomes.slice(1)).toEqual(['t3 200 t3.k', 't3 200 t3.k']);
    ask('t17', 'h17.test');
    expect(reads.has('t17')).toBe(true);
  });

  it('answers a record only for its own host', async () => {
    const { reads, ask, outcomes } = harness();
    ask('tok', 'other.test');
    reads.get('tok')!(record('mine.test', 'tok'));
    await settled();
    ask('tok', 'mine.test');
    await settled();
    expect(outcomes).toEqual(['tok next', 'tok 200 tok.k']);
  });
});
