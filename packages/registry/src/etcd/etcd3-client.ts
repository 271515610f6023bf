/**
 * etcd3's client plus the calls it does not make well enough: Range through our own wire codec
 * (range-wire.ts) and a Watch stream of our own (watch-stream.ts). Both go through etcd3's
 * connection pool (a subclass may use it), so they pick hosts, send auth metadata and count
 * failures exactly as etcd3's own calls do.
 */
import { castGrpcError, Etcd3, type IOptions, type KVClient } from 'etcd3';
import { HostBreaker } from './fault-handling.js';
import { decodeRangeResponse, encodeRangeRequest, RANGE_METHOD, type RangePage, type RangeRequest } from './range-wire.js';
import type { WatchDuplex } from './watch-stream.js';

export type CallOptions = NonNullable<Parameters<KVClient['range']>[1]>;

const asIs = (b: Buffer): Buffer => b;

/**
 * How long a member whose watch stream failed (no leader, stalled, connection lost) is skipped
 * by every call of this client when there are other endpoints; then it is probed again.
 */
export const AVOID_MEMBER_MS = 3_000;

export class RegistryEtcd3 extends Etcd3 {
  private readonly endpointCount: number;

  constructor(options: IOptions) {
    super(options);
    this.endpointCount = typeof options.hosts === 'string' ? 1 : (options.hosts?.length ?? 1);
  }

  rangePage(req: RangeRequest, options: CallOptions): Promise<RangePage> {
    const payload = encodeRangeRequest(req);
    return this.pool.withConnection(
      'KV',
      ({ client, metadata }) =>
        new Promise<RangePage>((resolve, reject) => {
          client.makeUnaryRequest(RANGE_METHOD, asIs, decodeRangeResponse, payload, metadata, options, (err, page) => {
            if (err) reject(castGrpcError(err));
            else resolve(page!);
          });
        }),
    );
  }

  /**
   * A Watch stream that etcd serves only while its member has a leader (`hasleader`, etcd's
   * rpctypes.MetadataRequireLeaderKey, as clientv3.WithRequireLeader sets it). `failed` marks the
   * member failed in the pool (its channels are reset, as etcd3 does for its own watch stream)
   * and, if there is another endpoint, keeps the next calls off it for AVOID_MEMBER_MS: the next
   * watch goes to another member.
   */
  openWatchStream(): Promise<{ stream: WatchDuplex; failed(err: Error): void }> {
    return this.pool.withConnection('Watch', ({ resource, client, metadata }) => {
      const withLeader = metadata.clone();
      withLeader.set('hasleader', 'true');
      // Streams get no deadline (see client-options.ts).
      const stream = (client as unknown as { watch(md: typeof metadata, opts: object): WatchDuplex }).watch(withLeader, {});
      return {
        stream,
        failed: (err: Error) => {
          if (this.endpointCount > 1 && resource.faultHandling instanceof HostBreaker) resource.faultHandling.avoidFor(AVOID_MEMBER_MS);
          this.pool.markFailed(resource, err);
        },
      };
    });
  }
}
