/**
 * How each kind of record (declared in @paas/registry's kinds.ts) enters the routing table: where
 * its stamp lives, how it is set and deleted, and how a re-list sweeps what it did not see.
 * TableSync reads only these, so a new kind of record is one adapter here and no switch there.
 */
import type { KeyRef, ParsedRecord, RecordKindName } from '@paas/registry';
import type { RecordStamp } from '../table/record-stamp.js';
import type { RoutingTable } from '../table/routing-table.js';

type RefOf<K extends RecordKindName> = Extract<KeyRef, { kind: K }>;
type RecordOf<K extends RecordKindName> = Extract<ParsedRecord, { ref: { kind: K } }>;

export interface TableAdapter<K extends RecordKindName = RecordKindName> {
  /** The stamp of the record the table holds for this key, if it holds one. */
  stamp(ref: RefOf<K>): RecordStamp | undefined;
  /** Whether a listed record with this create revision can keep `stamp`'s table object. */
  sameCreation(stamp: RecordStamp, createRevision: bigint): boolean;
  /** Puts the record into the table in place of the key's record (`old`: its stamp) and returns the new stamp. */
  set(record: RecordOf<K>, createRevision: bigint, old: RecordStamp | undefined, modRevision: bigint): RecordStamp;
  delete(ref: RefOf<K>): void;
  /** Deletes every record whose stamp is not marked `mark`, handing each stamp to `gone` first. */
  sweep(mark: number, gone: (stamp: RecordStamp) => void): void;
}

export type TableAdapters = { readonly [K in RecordKindName]: TableAdapter<K> };

/**
 * An adapter seen without its kind, for the syncer: it only ever hands an adapter the refs and
 * records of that adapter's own kind (looked up by `ref.kind`).
 */
export interface AnyTableAdapter {
  stamp(ref: KeyRef): RecordStamp | undefined;
  sameCreation(stamp: RecordStamp, createRevision: bigint): boolean;
  set(record: ParsedRecord, createRevision: bigint, old: RecordStamp | undefined, modRevision: bigint): RecordStamp;
  delete(ref: KeyRef): void;
  sweep(mark: number, gone: (stamp: RecordStamp) => void): void;
}

const always = () => true;

/** A certificate's stamp, with the revisions of the version served (an expiry reports them). */
export interface CertStamp extends RecordStamp {
  createRevision: bigint;
  modRevision: bigint;
}

export interface AdapterHooks {
  /** A certificate went into the table (its expiry is to be watched). */
  certServed?(notAfter: number): void;
}

export function tableAdapters(table: RoutingTable, hooks: AdapterHooks = {}): TableAdapters {
  /** Overrides map a host to a shared target, so their stamps live here. */
  const overrideStamps = new Map<string, RecordStamp>();
  /** Certificates are immutable objects in the table's CertIndex, so their stamps live here too. */
  const certStamps = new Map<string, CertStamp>();
  return {
    app: {
      stamp(ref) {
        const pool = table.pool(ref.app);
        return pool?.record !== undefined ? pool : undefined;
      },
      // An app deleted and put again with the same value has a new create revision, which ranks its routes.
      sameCreation: (stamp, createRevision) => (stamp as { createRevision?: bigint }).createRevision === createRevision,
      set: (rec, createRevision) => table.setApp(rec.ref.app, rec.value, createRevision),
      delete: (ref) => table.deleteApp(ref.app),
      sweep(mark, gone) {
        for (const pool of table.pools()) {
          if (pool.record !== undefined && pool.listed !== mark) {
            gone(pool);
            table.deleteApp(pool.name);
          }
        }
      },
    },
    instance: {
      stamp: (ref) => table.instance(ref.app, ref.id),
      sameCreation: always,
      set: (rec) => table.setInstance(rec.ref.app, rec.ref.id, rec.value),
      delete: (ref) => table.deleteInstance(ref.app, ref.id),
      sweep(mark, gone) {
        // Pool by pool: a deletion replaces a pool's list (the loop reads the old one) and may drop the pool.
        for (const pool of table.pools()) {
          for (const backend of pool.backends) {
            if (backend.listed !== mark) {
              gone(backend);
              table.deleteInstance(backend.app, backend.id);
            }
          }
        }
      },
    },
    override: {
      stamp: (ref) => overrideStamps.get(ref.host),
      sameCreation: always,
      set(rec, _createRevision, old) {
        table.setOverride(rec.ref.host, rec.value);
        const stamp = old ?? { hashHi: 0, hashLo: 0, listed: 0 };
        overrideStamps.set(rec.ref.host, stamp);
        return stamp;
      },
      delete(ref) {
        overrideStamps.delete(ref.host);
        table.deleteOverride(ref.host);
      },
      sweep(mark, gone) {
        for (const [host, stamp] of overrideStamps) {
          if (stamp.listed !== mark) {
            gone(stamp);
            overrideStamps.delete(host);
            table.deleteOverride(host);
          }
        }
      },
    },
    cert: {
      stamp: (ref) => certStamps.get(ref.name),
      // The create revision ranks equal certificates, as it ranks apps' routes.
      sameCreation: (stamp, createRevision) => (stamp as CertStamp).createRevision === createRevision,
      set(rec, createRevision, old, modRevision) {
        const v = rec.value;
        table.certs.set({ name: rec.ref.name, hosts: v.hosts, certPem: v.certPem, keyPem: v.keyPem, notAfter: v.notAfter, fingerprint: v.fingerprint, createRevision, source: v.source });
        hooks.certServed?.(v.notAfter);
        const stamp = (old as CertStamp | undefined) ?? { hashHi: 0, hashLo: 0, listed: 0, createRevision, modRevision };
        stamp.createRevision = createRevision;
        stamp.modRevision = modRevision;
        certStamps.set(rec.ref.name, stamp);
        return stamp;
      },
      delete(ref) {
        certStamps.delete(ref.name);
        table.certs.delete(ref.name);
      },
      sweep(mark, gone) {
        for (const [name, stamp] of certStamps) {
          if (stamp.listed !== mark) {
            gone(stamp);
            certStamps.delete(name);
            table.certs.delete(name);
          }
        }
      },
    },
  };
}
