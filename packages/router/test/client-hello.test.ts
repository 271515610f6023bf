/** Reading a ClientHello for the server_name extension, with real ClientHellos from Node's TLS client. */
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { connect } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { firstRecordLength, namesServer } from '../src/listeners/client-hello.js';

/** The first TLS record a client sends with `servername` ('' sends none). */
async function clientHello(servername: string): Promise<Buffer> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const got = new Promise<Buffer>((resolve) => {
    server.once('connection', (socket) => {
      let seen = Buffer.alloc(0);
      socket.on('data', (d: Buffer) => {
        seen = Buffer.concat([seen, d]);
        if (seen.length >= 5 && seen.length >= firstRecordLength(seen)) {
          resolve(seen);
          socket.destroy();
        }
      });
    });
  });
  const client = connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, servername, rejectUnauthorized: false });
  client.on('error', () => undefined);
  const hello = await got;
  client.destroy();
  server.close();
  return hello;
}

describe('ClientHello', () => {
  it('finds the server name when the client sends one, and not when it does not', async () => {
    const named = await clientHello('www.mango.com');
    expect(firstRecordLength(named)).toBe(named.length);
    expect(namesServer(named)).toBe(true);
    expect(namesServer(await clientHello(''))).toBe(false);
  });

  it('counts what it cannot read as naming a server, and bytes that are not TLS as no record', async () => {
    const named = await clientHello('');
    expect(namesServer(named.subarray(0, 40))).toBe(true);
    expect(firstRecordLength(Buffer.from('GET / HTTP/1.1\r\n'))).toBe(0);
    expect(firstRecordLength(Buffer.from([22, 3]))).toBe(5);
  });
});
