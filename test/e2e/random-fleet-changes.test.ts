/**
 * Random sequences of instance changes under load (fast-check, fixed seed), through a real
 * router process on a real etcd: instances put ready, draining or starting, and deleted, in any
 * order, with at least one ready at every step. Requests run throughout; every one must be
 * answered 200, and none that started after the router applied a change may go to an instance
 * that change made unroutable (draining, starting or deleted): such a request could only have
 * been routed by a stale table.
 */
import fc from 'fast-check';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connectEtcd, KeyLayout, type Etcd } from '@paas/registry';
import { uniquePrefix } from '../harness/etcd.js';
import { startRouter, startSampleApp, type RouterProcess, type SampleApp } from '../harness/processes.js';
import { waitFor } from '../harness/wait.js';

const endpoints = inject('etcdEndpoints');
const prefix = uniquePrefix('fleet-changes');
const layout = new KeyLayout(prefix);
const HOST = 'flux.example.com';
const IDS = ['i0', 'i1', 'i2'] as const;
type Id = (typeof IDS)[number];
type State = 'ready' | 'draining' | 'starting';

let etcd: Etcd;
let router: RouterProcess;
const apps: Partial<Record<Id, SampleApp>> = {};
const dispatcher = new Agent({ connections: 8 });

async function applied(rev: bigint): Promise<void> {
  let last = '';
  try {
    await waitFor(async () => {
      const st = (await (await request(`${router.adminUrl}/status`)).body.json()) as { revision: string };
      last = JSON.stringify(st).slice(0, 600);
      return BigInt(st.revision) >= rev;
    }, { timeoutMs: 10_000, intervalMs: 5, message: `the router to apply ${rev}` });
  } catch (err) {
    throw new Error(`${(err as Error).message}\nstatus: ${last}\n${router.proc.tail(20)}`);
  }
}

beforeAll(async () => {
  etcd = connectEtcd({ endpoints });
  for (const id of IDS) apps[id] = await startSampleApp({ app: 'flux', name: id });
  await etcd.put(layout.app('flux'), JSON.stringify({ routes: [{ host: HOST }] }));
  router = await startRouter({ etcdEndpoints: endpoints, prefix, id: 'fleet-changes' });
});

afterAll(async () => {
  await dispatcher.close();
  await etcd?.close();
});

/** A change: an instance's record put with a state, or deleted. */
type Op = { id: Id; state: State | 'deleted' };
const op: fc.Arbitrary<Op> = fc.record({ id: fc.constantFrom(...IDS), state: fc.constantFrom<State | 'deleted'>('ready', 'ready', 'draining', 'starting', 'deleted') });

describe('instance changes in any order under load', () => {
  it('answer every request, and never route one to an instance a change the router applied made unroutable', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 3, maxLength: 8 }), async (ops) => {
        // Start: i0 ready alone.
        for (const id of IDS) await etcd.delete(layout.instance('flux', id));
        let rev = await etcd.put(layout.instance('flux', 'i0'), JSON.stringify({ url: apps.i0!.url, state: 'ready' }));
        await applied(rev);
        const states = new Map<Id, State>([['i0', 'ready']]);
        const routable = () => new Set([...states].filter(([, s]) => s === 'ready').map(([id]) => id));
        // Per change: when it was written, when the router had applied it, and what it left routable.
        const changes: { writtenAt: number; appliedAt: number; routable: Set<string> }[] = [{ writtenAt: 0, appliedAt: performance.now(), routable: routable() }];
        const answers: { startedAt: number; endedAt: number; status: number; instance: string }[] = [];
        let stop = false;
        const loop = async () => {
          while (!stop) {
            const startedAt = performance.now();
            const res = await request(`${router.url}/slow?ms=${answers.length % 20}`, { headers: { host: HOST }, dispatcher });
            await res.body.dump();
            answers.push({ startedAt, endedAt: performance.now(), status: res.statusCode, instance: String(res.headers['x-instance']) });
          }
        };
        const loops = [loop(), loop(), loop(), loop()];
        try {
          for (const { id, state } of ops) {
            // Deleting an absent key writes no revision: not a change.
            if (state === 'deleted' && !states.has(id)) continue;
            const next = new Map(states);
            if (state === 'deleted') next.delete(id);
            else next.set(id, state);
            // At least one ready instance at every step, as a deployer keeps it.
            if (![...next.values()].includes('ready')) continue;
            const writtenAt = performance.now();
            rev = state === 'deleted' ? await etcd.delete(layout.instance('flux', id)) : await etcd.put(layout.instance('flux', id), JSON.stringify({ url: apps[id]!.url, state }));
            await applied(rev);
            states.clear();
            for (const [k, v] of next) states.set(k, v);
            changes.push({ writtenAt, appliedAt: performance.now(), routable: routable() });
            // Some requests between two changes.
            const before = answers.length;
            await waitFor(() => answers.length >= before + 8, { timeoutMs: 10_000, intervalMs: 2, message: 'requests after the change' });
          }
        } finally {
          stop = true;
          await Promise.all(loops);
        }
        const wrong: string[] = [];
        for (const a of answers) {
          if (a.status !== 200) wrong.push(`${a.status} from ${a.instance}`);
          // Routed some time between its start and its answer: by the table of the last change
          // applied before it started, or of any change written before its answer came.
          let k = 0;
          while (k + 1 < changes.length && changes[k + 1]!.appliedAt <= a.startedAt) k++;
          const allowed = new Set(changes[k]!.routable);
          for (let j = k + 1; j < changes.length && changes[j]!.writtenAt <= a.endedAt; j++) for (const id of changes[j]!.routable) allowed.add(id);
          if (a.status === 200 && !allowed.has(a.instance)) wrong.push(`${a.instance} answered a request of ${a.startedAt.toFixed(1)}-${a.endedAt.toFixed(1)} ms; the changes then left only ${[...allowed].join(',')}`);
        }
        expect(wrong).toEqual([]);
      }),
      { numRuns: 12, seed: 20261130, endOnFailure: true },
    );
  }, 180_000);
});
