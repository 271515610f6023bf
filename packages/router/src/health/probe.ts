/**
 * One health probe: a body-less GET of the check's path, sent through the upstream client as an
 * exchange like a forwarded request, and given up (connection closed) after timeoutMs.
 */
import type { Upstream, UpstreamClient, UpstreamExchange } from '../transport/upstream.js';

/** Called once: undefined when the instance answered 2xx in time, else why not. */
export type ProbeDone = (failure: string | undefined) => void;

export class Probe implements UpstreamExchange {
  readonly method = 'GET';
  readonly headers: string[] = [];
  readonly hasHost = false;
  readonly body = null;
  readonly chunked = false;
  upstream: Upstream | null = null;
  private status = 0;
  private finished = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly path: string,
    private readonly timeoutMs: number,
    private readonly done: ProbeDone,
  ) {}

  send(client: UpstreamClient, origin: string): void {
    this.timer = setTimeout(() => this.timedOut(), this.timeoutMs);
    this.timer.unref();
    client.request(origin, this);
  }

  /** Gives up without a verdict (the checker stopped). */
  cancel(): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timer);
    this.upstream?.abort(this);
  }

  onHeaders(statusCode: number): void {
    this.status = statusCode;
  }

  onData(): boolean {
    return true;
  }

  onComplete(): void {
    this.finish(this.status >= 200 && this.status < 300 ? undefined : `status ${this.status}`);
  }

  onError(err: Error): void {
    this.finish(err.message);
  }

  private timedOut(): void {
    if (this.finished) return;
    this.upstream?.abort(this);
    this.finish(`no answer within ${this.timeoutMs} ms`);
  }

  private finish(failure: string | undefined): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timer);
    this.done(failure);
  }
}
