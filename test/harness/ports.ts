/**
 * Free loopback ports for test servers. Never assume a well-known port (2379, 8080...) is free:
 * other test files, other engineers' runs and real services share this machine.
 */
import net from 'node:net';

/**
 * `count` distinct TCP ports on 127.0.0.1 that were free a moment ago: the OS picks each one
 * (listen on port 0); the listeners are held open together so the ports differ, then closed so
 * the caller can bind them. Another process could take one in between; callers that spawn a
 * server retry on "address already in use".
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const server = net.createServer();
      servers.push(server);
      ports.push(await listenOnAnyPort(server));
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

/** One free TCP port on 127.0.0.1 (see freePorts). */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port!;
}

function listenOnAnyPort(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') reject(new Error(`unexpected listen address ${String(address)}`));
      else resolve(address.port);
    });
  });
}
