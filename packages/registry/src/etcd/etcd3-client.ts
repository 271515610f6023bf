/**
 * etcd3's client plus the calls it does not make well enough: Range through our own wire codec
 * (range-wire.ts) and a Watch stream of our own (watch-stream.ts). Both go through etcd3's
 * connection pool (a subclass may use it), so they pick hosts, send auth metadata and count
 * failures exactly as etcd3's own calls do. etcd3 authenticates again when one of its own unary
 * calls meets a stale token (ConnectionPool.exec); withConnection does not, so both do it here.
 */
import { castGrpcError, Etcd3, GRPCUnavailableError, type IOptions, type KVClient } from 'etcd3';
import { isStaleTokenMessage } from './security.js';
import { HostBreaker, NextEndpointRetry } from './fault-handling.js';
import { decodeRangeResponse, encodeRangeRequest, RANGE_METHOD, type RangePage, type RangeRequest } from './range-wire.js';
import type { OpenedWatch, WatchDuplex } from './watch-stream.js';

export type CallOptions = NonNullable<Parameters<KVClient['range']>[1]>;

const asIs = (b: Buffer): Buffer => b;

/**
 * How long a member whose watch stream failed (no leader, stalled, connection lost) is skipped
 * by every call of this client when there are other endpoints; then it is probed again.
 */
export const AVOID_MEMBER_MS = 3_000;

export class RegistryEtcd3 extends Etcd3 {
  private readonly endpointCount: number;
  /** The same retry etcd3's own unary calls get (see faultHandling in client-options.ts). */
  private readonly retry: NextEndpointRetry;

  constructor(options: IOptions) {
    super(options);
    this.endpointCount = typeof options.hosts === 'string' ? 1 : (options.hosts?.length ?? 1);
    this.retry = new NextEndpointRetry(this.endpointCount);
    if (options.auth) this.renewOldTokens();
  }

  /**
   * etcd3 authenticates again when one of its own calls meets an expired token, but not when a
   * JWT token predates a change of users or roles ("revision of auth store is old"): every call
   * would then fail until the token's ttl ends. clientv3 authenticates again on both; so do we,
   * once per call. etcd checked the token before applying anything, so a write is not doubled.
   */
  private renewOldTokens(): void {
    const pool = this.pool;
    const exec = pool.exec.bind(pool);
    pool.exec = async <T>(...args: Parameters<typeof exec>): Promise<T> => {
      try {
        return await exec<T>(...args);
      } catch (err) {
        if (!(err instanceof Error && isStaleTokenMessage(err.message))) throw err;
        this.staleToken();
        return exec<T>(...args);
      }
    };
  }

  /**
   * One Range page. etcd3 moves its own unary calls to another member when one is UNAVAILABLE
   * (its global policy: NextEndpointRetry); withConnection alone does not, so a member that has
   * just died would fail the whole list. Here too each member is tried once, and one that was
   * UNAVAILABLE is kept off the next tries (and this client's other calls) for AVOID_MEMBER_MS.
   */
  rangePage(req: RangeRequest, options: CallOptions): Promise<RangePage> {
    const payload = encodeRangeRequest(req);
    return this.rangeOnce(payload, options).catch((err: unknown) => {
      // Once: a token fresh from Authenticate that is refused again is etcd's final word.
      if (!(err instanceof Error && isStaleTokenMessage(err.message))) throw err;
      this.staleToken();
      return this.rangeOnce(payload, options);
    });
  }

  private rangeOnce(payload: Buffer, options: CallOptions): Promise<RangePage> {
    return this.retry.execute(() =>
      this.pool.withConnection(
        'KV',
        ({ resource, client, metadata }) =>
          new Promise<RangePage>((resolve, reject) => {
            client.makeUnaryRequest(RANGE_METHOD, asIs, decodeRangeResponse, payload, metadata, options, (err, page) => {
              if (!err) return resolve(page!);
              const cast = castGrpcError(err);
              if (cast instanceof GRPCUnavailableError) this.avoid(resource.faultHandling);
              reject(cast);
            });
          }),
      ),
    );
  }

  /**
   * A Watch stream that etcd serves only while its member has a leader (`hasleader`, etcd's
   * rpctypes.MetadataRequireLeaderKey, as clientv3.WithRequireLeader sets it). `failed` marks the
   * member failed in the pool (its channels are reset, as etcd3 does for its own watch stream)
   * and, if there is another endpoint, keeps the next calls off it for AVOID_MEMBER_MS: the next
   * watch goes to another member. `staleToken` drops the auth token the stream was opened with
   * (etcd cancelled the watch over it), so the next stream authenticates again.
   */
  openWatchStream(): Promise<OpenedWatch> {
    return this.pool.withConnection('Watch', ({ resource, client, metadata }) => {
      const withLeader = metadata.clone();
      withLeader.set('hasleader', 'true');
      // Streams get no deadline (see client-options.ts).
      const stream = (client as unknown as { watch(md: typeof metadata, opts: object): WatchDuplex }).watch(withLeader, {});
      return {
        stream,
        failed: (err: Error) => {
          this.avoid(resource.faultHandling);
          this.pool.markFailed(resource, err);
        },
        staleToken: () => this.staleToken(),
      };
    });
  }

  /** The next call authenticates again (etcd3's ConnectionPool.exec does the same for its calls). */
  private staleToken(): void {
    (this.pool as unknown as { authenticator: { invalidateMetadata(): void } }).authenticator.invalidateMetadata();
  }

  /** Keeps a failed member off this client's calls for AVOID_MEMBER_MS, when there is another. */
  private avoid(faultHandling: unknown): void {
    if (this.endpointCount > 1 && faultHandling instanceof HostBreaker) faultHandling.avoidFor(AVOID_MEMBER_MS);
  }
}
