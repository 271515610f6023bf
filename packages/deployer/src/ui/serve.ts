/**
 * `paas-deploy ui`: the fleet page served until the signal aborts it. One FleetSource (one etcd
 * watch) feeds the one server, whatever the number of browsers.
 */
import type { Etcd, KeyLayout } from '@paas/registry';
import { FleetSource } from './fleet-source.js';
import { startFleetServer, type ListenAddress } from './server.js';

export interface ServeOptions {
  listen: ListenAddress;
  /** Told the page's address once it is served. */
  onListening: (url: string) => void;
  /** Problems the watch recovers from by itself (etcd lost, a failed read). */
  onError: (err: unknown) => void;
  signal: AbortSignal;
}

/** Serves the page until `signal` aborts, then closes and rejects with the signal's reason. */
export async function serveFleetPage(etcd: Etcd, layout: KeyLayout, opts: ServeOptions): Promise<never> {
  opts.signal.throwIfAborted();
  const source = await FleetSource.open(etcd, layout, { onError: opts.onError });
  try {
    const server = await startFleetServer(source, opts.listen).catch((err: unknown) => {
      const code = (err as NodeJS.ErrnoException).code;
      throw new Error(`cannot serve on ${opts.listen.host}:${opts.listen.port}: ${code ?? (err as Error).message}`, { cause: err });
    });
    try {
      opts.onListening(server.url);
      await new Promise<void>((resolve) => {
        if (opts.signal.aborted) resolve();
        else opts.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      throw opts.signal.reason;
    } finally {
      await server.close();
    }
  } finally {
    await source.close();
  }
}
