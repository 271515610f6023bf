import { connect } from 'node:tls';

/**
 * A TLS connection to 127.0.0.1:port naming `servername`: resolves ms from connect to handshake
 * end. `secureContext`: the client's own context, reused (else Node builds one per connection).
 */
export function handshakeMs(port, servername, secureContext) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const s = connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false, ALPNProtocols: ['h2', 'http/1.1'], secureContext });
    s.once('secureConnect', () => {
      const ms = performance.now() - t0;
      s.destroy();
      resolve(ms);
    });
    s.once('error', (err) => reject(new Error(`handshake for ${servername}: ${err.message}`)));
    s.setTimeout(10_000, () => s.destroy(new Error('timed out')));
  });
}
