/**
 * etcd3's client plus the one call it does not make well enough: Range through our own wire
 * codec (range-wire.ts). The call goes through etcd3's connection pool (a subclass may use it),
 * so it picks hosts, sends auth metadata and counts failures exactly as etcd3's own calls do.
 */
import { castGrpcError, Etcd3, type KVClient } from 'etcd3';
import { decodeRangeResponse, encodeRangeRequest, RANGE_METHOD, type RangePage, type RangeRequest } from './range-wire.js';

export type CallOptions = NonNullable<Parameters<KVClient['range']>[1]>;

const asIs = (b: Buffer): Buffer => b;

export class RegistryEtcd3 extends Etcd3 {
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
}
