/**
 * A tunnel stream as the upstream clients read it: the pieces HTTP/2 hands over in one turn of
 * the event loop are joined into one chunk. Through HTTP/2 over TLS an answer arrives in pieces
 * of 8 KiB on average (TLS records are at most 16 KiB; nghttp2 passes on what each read
 * decrypted), 8 times as many as a TCP socket gives, and each piece cost a parser call and a
 * write to the client. Joining waits at most until the loop's check phase (setImmediate), so
 * it adds no timer delay.
 */
import type { ClientHttp2Stream } from 'node:http2';
import { Duplex } from 'node:stream';

/**
 * What the upstream client may write (a request body) before it is paused. An HTTP/2 stream's
 * write completes only once nghttp2 sent it, never within the call, so with the default 16 KiB
 * every 64 KiB read of the client's body paused and resumed it, and each DATA batch went out
 * alone; with 256 KiB the writes of a loop turn leave together (one writev, no join).
 */
const WRITE_BUFFER = 256 * 1024;

function flush(s: CoalescedStream): void {
  s.flush();
}

export class CoalescedStream extends Duplex {
  private pending: Buffer[] = [];
  private scheduled = false;
  private ended = false;

  constructor(readonly h2: ClientHttp2Stream) {
    super({ allowHalfOpen: true, readableHighWaterMark: 1024 * 1024, writableHighWaterMark: WRITE_BUFFER });
    h2.on('data', (chunk: Buffer) => {
      this.pending.push(chunk);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(flush, this);
      }
    });
    h2.once('end', () => {
      this.ended = true;
      if (!this.scheduled) this.flush();
    });
    h2.on('error', (err: Error) => this.destroy(err));
    h2.once('close', () => {
      if (!this.destroyed && !this.ended) this.destroy();
    });
  }

  flush(): void {
    this.scheduled = false;
    const pending = this.pending;
    if (pending.length > 0) {
      this.pending = [];
      const chunk = pending.length === 1 ? pending[0]! : Buffer.concat(pending);
      if (!this.push(chunk)) this.h2.pause();
    }
    if (this.ended) this.push(null);
  }

  override _read(): void {
    if (this.h2.isPaused()) this.h2.resume();
  }

  override _write(chunk: Buffer, encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.h2.write(chunk, encoding, callback);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (err?: Error | null) => void): void {
    const h2 = this.h2;
    const last = chunks.length - 1;
    h2.cork();
    for (let i = 0; i < last; i++) h2.write(chunks[i]!.chunk);
    h2.write(chunks[last]!.chunk, callback);
    h2.uncork();
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.h2.end(callback);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    if (!this.h2.destroyed) this.h2.destroy();
    callback(err);
  }
}
