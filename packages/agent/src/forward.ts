/**
 * One tunnel stream: the router opened it (CONNECT) for one upstream connection; it is joined to
 * a new TCP connection to the local app. 200 once that connection is up, so the router counts
 * the connect as made only when the app took it; 502 when the app refuses (the router then tries
 * another instance). Bytes are copied both ways with backpressure; either side's end or reset
 * ends the other.
 */
import { constants, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { connect } from 'node:net';

export interface LocalApp {
  host: string;
  port: number;
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
    stream.pipe(socket);
    socket.pipe(stream);
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
