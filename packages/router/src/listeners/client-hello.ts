/**
 * Whether a TLS ClientHello names a server (the server_name extension, RFC 6066 §3), read from
 * the first bytes of a connection before TLS starts. Node calls SNICallback only when a client
 * sends a name; without one it serves the server's own certificate, and the SNI listener has
 * none (see tls-listener.ts), so a connection without a name is handed to a second server that
 * holds the --default-cert certificate.
 */

/** TLS record header: content type (22: handshake), version, length. */
export const RECORD_HEADER = 5;
const HANDSHAKE = 22;
/** The largest TLS record (2^14) plus expansion a ClientHello record could claim. */
export const MAX_RECORD = RECORD_HEADER + 16_384 + 2048;

/**
 * How many bytes the first record holds (header included), or 0 when the bytes are not a TLS
 * handshake record: then there is nothing to read a name from.
 */
export function firstRecordLength(bytes: Buffer): number {
  if (bytes.length < RECORD_HEADER) return RECORD_HEADER;
  if (bytes[0] !== HANDSHAKE) return 0;
  return RECORD_HEADER + bytes.readUInt16BE(3);
}

/**
 * False only when the record is a whole ClientHello without a server_name extension; a record
 * it cannot read to the end (cut, or not a ClientHello) counts as naming one, so that the SNI
 * listener, which knows every certificate, gets it.
 */
export function namesServer(record: Buffer): boolean {
  // handshake type (1), length (3), client version (2), random (32)
  let p = RECORD_HEADER;
  if (record.length < p + 38 || record[p] !== 1) return true;
  p += 38;
  p += 1 + record[p]!; // session id
  if (p + 2 > record.length) return true;
  p += 2 + record.readUInt16BE(p); // cipher suites
  if (p + 1 > record.length) return true;
  p += 1 + record[p]!; // compression methods
  if (p + 2 > record.length) return false; // no extensions at all
  const end = p + 2 + record.readUInt16BE(p);
  if (end > record.length) return true;
  p += 2;
  while (p + 4 <= end) {
    if (record.readUInt16BE(p) === 0) return true;
    p += 4 + record.readUInt16BE(p + 2);
  }
  return false;
}
