/**
 * --upstream-client: which upstream client runs. `auto` (the default) runs the native one when
 * its start-up check passes on this Node and the portable one otherwise, saying why in one
 * warning line; `native` refuses to start without it; `portable` never loads Node's internals.
 */
import { defaultConnectors, type Connectors } from './connector.js';
import { checkNativeParser } from './native-check.js';
import { NativeUpstreamClient } from './native-client.js';
import { PortableUpstreamClient } from './portable-client.js';
import type { UpstreamClient, UpstreamClientChoice, UpstreamClientOptions } from './upstream.js';

export type { UpstreamClientChoice } from './upstream.js';

export interface UpstreamClientSettings {
  connectTimeoutMs: number;
  upstreamTimeoutMs: number;
  keepAliveTimeoutMs: number;
  keepAliveMaxTimeoutMs: number;
  /** Default: TCP and verified TLS with connectTimeoutMs. */
  connectors?: Connectors;
}

export interface SelectLogger {
  warn(obj: object, msg: string): void;
}

/** The native client's start-up check: undefined when it may run, else why not. */
export type NativeCheck = () => string | undefined;

export function createUpstreamClient(choice: UpstreamClientChoice, settings: UpstreamClientSettings, log: SelectLogger, check: NativeCheck = checkNativeParser): UpstreamClient {
  const opts: UpstreamClientOptions = {
    connectors: settings.connectors ?? defaultConnectors(settings.connectTimeoutMs),
    upstreamTimeoutMs: settings.upstreamTimeoutMs,
    keepAliveTimeoutMs: settings.keepAliveTimeoutMs,
    keepAliveMaxTimeoutMs: settings.keepAliveMaxTimeoutMs,
  };
  if (choice === 'portable') return new PortableUpstreamClient(opts);
  const reason = check();
  if (reason === undefined) return new NativeUpstreamClient(opts);
  if (choice === 'native') throw new Error(`--upstream-client native: Node's HTTP parser internals are not usable here (${reason})`);
  log.warn({ reason, node: process.version }, 'native upstream client unavailable on this Node: running the portable one');
  return new PortableUpstreamClient(opts);
}
