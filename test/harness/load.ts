/**
 * A request loop for tests that count failures while something happens (a redeploy, a drain):
 * `concurrency` loops each call `one(i)` again and again until stop(); `one` resolves
 * undefined for a success and a text saying why for a failure (a throw counts as one too).
 * Pairs with served() (wait.ts), which waits on `ok()`.
 */
export interface RequestLoad {
  ok(): number;
  stop(): Promise<{ ok: number; failed: string[] }>;
}

export function startLoad(one: (i: number) => Promise<string | undefined>, concurrency = 6): RequestLoad {
  let running = true;
  let ok = 0;
  const failed: string[] = [];
  const loops = Array.from({ length: concurrency }, async (_, k) => {
    for (let i = k; running; i++) {
      let failure: string | undefined;
      try {
        failure = await one(i);
      } catch (err) {
        failure = (err as Error).message;
      }
      if (failure === undefined) {
        ok++;
      } else {
        failed.push(failure);
        // A request that fails without I/O must not spin this loop on microtasks alone.
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
  });
  return {
    ok: () => ok,
    async stop() {
      running = false;
      await Promise.all(loops);
      return { ok, failed };
    },
  };
}
