/**
 * What records/table-sync keeps on a table object about the record it was built from: the
 * record's hash (its term in the digest, and how a re-list recognises an unchanged record
 * without parsing it) and the number of the last full list that contained it (whatever a
 * re-list did not see is deleted). The table itself never reads these.
 */
export interface RecordStamp {
  hashHi: number;
  hashLo: number;
  listed: number;
}
