/** How the etcd3 client is configured: deadlines, gRPC keepalive and reconnect pacing, fault handling. */
import type { IOptions } from 'etcd3';
import { faultHandling } from './fault-handling.js';
import type { EtcdSecurity } from './security.js';

export const DEFAULT_CALL_TIMEOUT_MS = 5_000;

export function clientOptions(endpoints: string[], callTimeoutMs: number, security: EtcdSecurity = {}): IOptions {
  const { tls, auth } = security;
  return {
    hosts: endpoints,
    // etcd3 turns these into grpc-js SSL channel credentials; a missing CA means Node's default roots.
    ...(tls && { credentials: { rootCertificate: tls.ca as Buffer, ...(tls.cert && { certChain: tls.cert, privateKey: tls.key! }) } }),
    // etcd3 exchanges them for a token (etcd's Authenticate) and sends it on every call.
    ...(auth && { auth: { username: auth.username, password: auth.password } }),
    // etcd3 passes no deadline by default, so a unary call waits forever while etcd is down. Streams
    // (watch, lease keep-alive) live as long as they are needed and must not get one. This deadline
    // is per attempt; our own calls also pass one for the whole call (see EtcdClient.callOptions).
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
    grpcOptions: {
      // Find a dead connection (etcd host gone, network cut without a reset) within ~15 s instead
      // of the kernel's TCP timeouts. etcd 3.4 answers pings more frequent than 5 s
      // (--grpc-keepalive-min-time) with GOAWAY "too_many_pings". It also counts every ping on a
      // connection without an open stream as abuse (PermitWithoutStream=false): with
      // permit_without_calls an idle client got that GOAWAY after 30 s. Routers always have a
      // watch and a lease keep-alive open, so their connection is pinged anyway.
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 0,
      // grpc-js spaces reconnect attempts 1 s, 1.6 s, 2.6 s... up to 120 s; at most 1 s instead,
      // so a restarted etcd is found again within a second.
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1_000,
      // A catching-up watch response holds up to 1000 revisions of events; list() pages, but a
      // watch response cannot be paged. grpc-js refuses messages over 4 MiB by default.
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      // HTTP/2's default receive window, 64 KiB per stream and per connection, lets etcd send a
      // list page (~8 MB per 100k records) only 64 KiB per turn of our event loop, and a starting
      // router's loop is busy for tens of milliseconds at a time building its table: a page asked
      // for at once arrived a second later. With 16 MiB etcd sends it while the table is built.
      'grpc-node.flow_control_window': 16 * 1024 * 1024,
    },
    faultHandling: faultHandling(endpoints),
  };
}
