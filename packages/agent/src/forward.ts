/**
 * One tunnel stream: the router opened it (CONNECT) for one upstream connection; it is joined to
 * a new TCP connection to the local app. 200 once that connection is up, so the router counts
 * the connect as made only when the app took it; 502 when the app refuses (the router then tries
 * another instance). Bytes are copied both ways with backpressure (relay); either side's end or
 * reset ends the other.
 */
import { constants, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { connect } from 'node:net';
import type { Readable, Writable } from 'node:stream';

export interface LocalApp {
  host: string;
  port: number;
}

/**
 * How much may wait in a writer's buffer before its reader is paused. `pipe` pauses at the
 * writer's highWaterMark (16 KiB for both an HTTP/2 stream and a socket), which stopped the
 * reader after every 64 KiB read; with 256 KiB a 1 GiB download through a tunnel went from
 * 0.17-0.20x to 0.35-0.43x of direct (README, "Agent tunnels"). Per stream and direction, so
 * the agent's memory is bounded by it times the streams open.
 */
const RELAY_BUFFER = 256 * 1024;

/**
 * Copies `from` to `to`, pausing `from` while `to` holds RELAY_BUFFER or more; ends `to` at the
 * end. A loop turn's chunks are corked into one write at its end (setImmediate, the same turn's
 * check phase: no timer delay): an HTTP/2 stream hands over a chunk per piece of a DATA frame in
 * a TLS record, which cost the app's socket a write each, and writing a turn's first chunk at
 * once cost it a second write per turn.
 */
function relay(from: Readable, to: Writable): void {
  let batching = false;
  const endBatch = () => {
    batching = false;
    if (to.writableCorked > 0) to.uncork();
  };
  const resume = () => from.resume();
  from.on('data', (chunk: Buffer) => {
    if (!batching) {
      batching = true;
      to.cork();
      setImmediate(endBatch);
    }
    // Paused only after a write that returned false: its 'drain' is sure to come.
    if (!to.write(chunk) && to.writableLength >= RELAY_BUFFER) {
      from.pause();
      to.once('drain', resume);
    }
  });
  from.once('end', () => to.end());
}

export function serveStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, app: LocalApp): void {
  stream.on('error', () => undefined); // 'close' follows
  if (headers[constants.HTTP2_HEADER_METHOD] !== 'CONNECT') {
    stream.respond({ [constants.HTTP2_HEADER_STATUS]: 405 }, { endStream: true });
    return;
  }
  const socket = connect({ host: app.host, port: app.port, noDelay: true });
  let connected = false;
  socket.once('connect', () => {
    connected = true;
    if (stream.destroyed) return socket.destroy();
    stream.respond({ [constants.HTTP2_HEADER_STATUS]: 200 });
    relay(stream, socket);
    relay(socket, stream);
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
