/**
 * One tunnel stream: the router opened it (CONNECT) for one upstream connection; it is joined to
 * a new TCP connection to the local app. 200 once that connection is up, so the router counts
 * the connect as made only when the app took it; 502 when the app refuses (the router then tries
 * another instance). Bytes are copied both ways with backpressure (relay); either side's end or
 * reset ends the other.
 */
import { constants, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { connect, type Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';

export interface LocalApp {
  host: string;
  port: number;
}

/**
 * How much may wait in a writer's buffer before its reader is paused. `pipe` pauses at the
 * writer's highWaterMark (16 KiB for both an HTTP/2 stream and a socket), which stopped the
 * reader after every 64 KiB read; with 256 KiB a 1 GiB download through a tunnel went from
 * 0.17-0.20x to 0.35-0.43x of direct (README, "Agent tunnels"). Per stream, for the router's
 * bytes to the app (the app's to the router: PAUSE_AT below), so the agent's memory is bounded
 * by it times the streams open.
 */
const RELAY_BUFFER = 256 * 1024;

/**
 * Writes to `to` for one direction of a stream. A loop turn's chunks are corked into one write at
 * its end (setImmediate, the same turn's check phase: no timer delay): an HTTP/2 stream hands
 * over a chunk per piece of a DATA frame in a TLS record, which cost the app's socket a write
 * each, and writing a turn's first chunk at once cost it a second write per turn. After a write
 * that leaves `limit` or more waiting, `pause` stops the reader until `to` drains.
 */
function turnWriter(to: Writable, limit: number, pause: () => void, resume: () => void): (chunk: Uint8Array, written?: () => void) => void {
  let batching = false;
  const endBatch = () => {
    batching = false;
    if (to.writableCorked > 0) to.uncork();
  };
  return (chunk, written) => {
    if (!batching) {
      batching = true;
      to.cork();
      setImmediate(endBatch);
    }
    // Paused only after a write that returned false: its 'drain' is sure to come.
    if (!to.write(chunk, written) && to.writableLength >= limit) {
      pause();
      to.once('drain', resume);
    }
  };
}

/** Copies `from` to `to`, pausing `from` while `to` holds RELAY_BUFFER or more; ends `to` at the end. */
function relay(from: Readable, to: Writable): void {
  from.on('data', turnWriter(to, RELAY_BUFFER, () => from.pause(), () => from.resume()));
  from.once('end', () => to.end());
}

/**
 * The app's socket is read into buffers of the agent's own (`onread`), each handed to the stream
 * as it is and reused once the stream has sent it, instead of Node's new 64 KiB Buffer per read:
 * a quarter of the reads and no allocation per read (README, "Agent tunnels"). A read that filled
 * its buffer is followed by a READ_SIZE one, any other by a FIRST_READ_SIZE one, so a connection
 * between answers holds a small buffer, not a large one. Per stream at most PAUSE_AT is sent and
 * not yet written, beside the buffer of the next read.
 */
const READ_SIZE = 256 * 1024;
const FIRST_READ_SIZE = 4 * 1024;
/** READ_SIZE buffers kept for reuse across the agent's streams (4 MiB). */
const POOL_MAX = 16;
const pool: Buffer[] = [];
/**
 * The app's socket is paused while the stream holds this much: two reads, so one is read while
 * the other is sent. Pausing at one read (RELAY_BUFFER) left the agent idle between them.
 */
const PAUSE_AT = 2 * READ_SIZE;

function recycle(buf: Buffer): void {
  if (buf.length === READ_SIZE && pool.length < POOL_MAX) pool.push(buf);
}

/** A TCP connection to the app whose reads are written to `to` (turnWriter, PAUSE_AT); its end ends `to`. */
function connectApp(app: LocalApp, to: Writable): Socket {
  let filled = false;
  const write = turnWriter(to, PAUSE_AT, () => socket.pause(), () => socket.resume());
  const socket: Socket = connect({
    host: app.host,
    port: app.port,
    noDelay: true,
    onread: {
      buffer: () => (filled ? (pool.pop() ?? Buffer.allocUnsafeSlow(READ_SIZE)) : Buffer.allocUnsafeSlow(FIRST_READ_SIZE)),
      callback: (n: number, buf: Uint8Array) => {
        filled = n === buf.length;
        // Reused only once the stream calls this write back: sent, or dropped with the stream.
        write(filled ? buf : buf.subarray(0, n), () => recycle(buf as Buffer));
        return true;
      },
    },
  });
  socket.once('end', () => to.end());
  return socket;
}

export function serveStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, app: LocalApp): void {
  stream.on('error', () => undefined); // 'close' follows
  if (headers[constants.HTTP2_HEADER_METHOD] !== 'CONNECT') {
    stream.respond({ [constants.HTTP2_HEADER_STATUS]: 405 }, { endStream: true });
    return;
  }
  const socket = connectApp(app, stream);
  let connected = false;
  socket.once('connect', () => {
    connected = true;
    if (stream.destroyed) return socket.destroy();
    stream.respond({ [constants.HTTP2_HEADER_STATUS]: 200 });
    relay(stream, socket);
  });
  socket.on('error', () => {
    if (!connected) {
      if (!stream.destroyed && !stream.headersSent) stream.respond({ [constants.HTTP2_HEADER_STATUS]: 502 }, { endStream: true });
    } else if (!stream.destroyed) {
      // The app dropped the connection: the router sees a reset, never a clean end.
      stream.close(constants.NGHTTP2_CONNECT_ERROR);
    }
  });
  // The router reset the stream (it gave up on the answer): drop the app's connection too.
  stream.once('close', () => {
    if (stream.rstCode !== constants.NGHTTP2_NO_ERROR || !connected) socket.destroy();
  });
}
