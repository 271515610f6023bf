/**
 * A TCP forwarder on a free loopback port, to cut one client off its server while the server
 * keeps running: e.g. a router loses its etcd watch stream, the test writes and compacts past
 * the router's revision directly, then restores the link.
 */
import net from 'node:net';

export interface TcpProxy {
  /** The port clients connect to (127.0.0.1). */
  readonly port: number;
  /** "http://127.0.0.1:<port>": an etcd endpoint through the proxy. */
  readonly url: string;
  /** Connections currently forwarded. */
  readonly openConnections: number;
  /** Destroys every open connection (both sides) and drops new ones until restore(). */
  cut(): void;
  /** Forwards new connections again. */
  restore(): void;
  close(): Promise<void>;
}

/** Forwards 127.0.0.1:<free port> to `target` ("127.0.0.1:2379" or "http://127.0.0.1:2379"). */
export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const { hostname, port: targetPort } = new URL(target.includes('://') ? target : `tcp://${target}`);
  const links = new Set<{ client: net.Socket; upstream: net.Socket }>();
  let refusing = false;
  const cutAll = () => {
    for (const { client, upstream } of links) {
      client.destroy();
      upstream.destroy();
    }
    links.clear();
  };

  const server = net.createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect({ host: hostname, port: Number(targetPort) });
    const link = { client, upstream };
    links.add(link);
    client.pipe(upstream);
    upstream.pipe(client);
    // Either side failing ends both, like a broken network path.
    const end = () => {
      links.delete(link);
      client.destroy();
      upstream.destroy();
    };
    client.once('error', end).once('close', end);
    upstream.once('error', end).once('close', end);
  });

  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    get openConnections() {
      return links.size;
    },
    cut() {
      refusing = true;
      cutAll();
    },
    restore() {
      refusing = false;
    },
    close() {
      refusing = true;
      cutAll();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
