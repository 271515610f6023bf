/**
 * What the forwarder and the health checker see of an upstream client, whichever runs
 * (native-client.ts on Node's internal llhttp, portable-client.ts on undici's public Client):
 * the same exchange callbacks, the same error codes (undici's, which classifyUpstreamError in
 * decision/failure.ts and the metrics' reason labels read), the same keep-alive rule and
 * the same retry rule below.
 */
import type { Readable } from 'node:stream';
import type { Connectors } from './connector.js';
import { IDEMPOTENT } from '../decision/failure.js';

/** One request to an instance and the receiver of its answer (the forwarder's exchange). */
export interface UpstreamExchange {
  readonly method: string;
  readonly path: string;
  /** Header name/value pairs; no hop-by-hop or framing headers besides Content-Length. */
  readonly headers: string[];
  /** False: the client adds the origin's authority as Host. */
  readonly hasHost: boolean;
  /** The client's request body, when it has one; sent chunked unless headers carry its length. */
  readonly body: Readable | null;
  readonly chunked: boolean;
  /** Set by the client: the connection carrying the request (for abort and resume). */
  upstream: Upstream | null;
  /** The final answer's head; interim (1xx) answers are not passed on. */
  onHeaders(statusCode: number, statusText: string, headers: string[]): void;
  /** False: stop reading the answer until upstream.resume(). */
  onData(chunk: Buffer): boolean;
  onComplete(): void;
  onError(err: Error): void;
}

/** The connection a request went out on, as the exchange sees it. */
export interface Upstream {
  /** The exchange no longer wants its answer: the connection is closed, nothing else is called. */
  abort(ex: UpstreamExchange): void;
  /** Reads on after onData returned false; a no-op once the connection serves another exchange. */
  resume(ex: UpstreamExchange): void;
}

export type UpstreamClientKind = 'native' | 'portable';

/** --upstream-client: a kind, or auto (native when its start-up check passes). */
export const UPSTREAM_CLIENT_CHOICES = ['auto', 'native', 'portable'] as const;
export type UpstreamClientChoice = (typeof UPSTREAM_CLIENT_CHOICES)[number];

export interface UpstreamClient {
  readonly kind: UpstreamClientKind;
  /** Sends the exchange's request to `origin` (`http://host:port` or `https://…`). */
  request(origin: string, ex: UpstreamExchange): void;
  /** Closes idle connections now and the others as their answers end; resolves when all are. */
  close(): Promise<void>;
}

export interface UpstreamClientOptions {
  /** Where connections come from, by the origin's scheme (connect timeouts included). */
  connectors: Connectors;
  /** Silence allowed while waiting for the head or the next body bytes (then undici's timeout codes). */
  upstreamTimeoutMs: number;
  /** Idle time of a connection to an instance that announces no keep-alive timeout. */
  keepAliveTimeoutMs: number;
  /** The longest idle time an instance's own announcement may give a connection. */
  keepAliveMaxTimeoutMs: number;
}

/** undici's margin below an announced keep-alive timeout (its keepAliveTimeoutThreshold). */
export const ANNOUNCED_KEEPALIVE_MARGIN_MS = 2000;

export class UpstreamError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET']);

/**
 * A keep-alive connection the instance closes just as a request is written to it (its idle
 * timeout racing the reuse) fails that request with nothing received. A body-less idempotent
 * request is then written once more on a fresh connection: the instance cannot have acted on it.
 */
export function writeAgainOnFreshConnection(ex: UpstreamExchange, err: Error, reused: boolean, received: boolean): boolean {
  return reused && !received && ex.body === null && IDEMPOTENT.has(ex.method) && RESET_CODES.has((err as { code?: string }).code ?? '');
}

/** An origin whose scheme no connector serves. */
export function noTransportError(origin: string): UpstreamError {
  return new UpstreamError(`no transport for ${origin}`, 'UND_ERR_INVALID_ARG');
}
