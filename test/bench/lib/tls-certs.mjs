/**
 * ECDSA P-256 certificates for the TLS suite, built in-process: 10 000 of them through the openssl
 * command would be 20 000 process spawns (minutes); here each is a key pair and one signature
 * (well under a millisecond). Each certificate is self-signed by its own key, with the DNS names
 * given as subjectAltNames: what the router indexes (by SAN) and HAProxy serves.
 */
import { createPrivateKey, generateKeyPairSync, sign, X509Certificate } from 'node:crypto';

/** DER: tag, length, content. */
function der(tag, ...parts) {
  const body = Buffer.concat(parts);
  const n = body.length;
  const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, body]);
}
const seq = (...p) => der(0x30, ...p);
const set = (...p) => der(0x31, ...p);
function oid(text) {
  const [a, b, ...rest] = text.split('.').map(Number);
  const bytes = [40 * a + b];
  for (const v of rest) {
    const groups = [];
    let x = v;
    do {
      groups.unshift(x & 0x7f);
      x = Math.floor(x / 128);
    } while (x > 0);
    for (let i = 0; i < groups.length - 1; i++) groups[i] |= 0x80;
    bytes.push(...groups);
  }
  return der(0x06, Buffer.from(bytes));
}
/** A non-negative INTEGER, minimal (DER forbids leading zero bytes). */
function integer(bytes) {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0 && !(bytes[i + 1] & 0x80)) i++;
  const buf = bytes.subarray(i);
  return der(0x02, buf[0] & 0x80 ? Buffer.concat([Buffer.from([0]), buf]) : buf);
}
/** UTCTime (years 1950-2049). */
function utcTime(d) {
  return der(0x17, Buffer.from(`${d.toISOString().slice(2, 19).replace(/[-:T]/g, '')}Z`));
}
const name = (cn) => seq(set(seq(oid('2.5.4.3'), der(0x0c, Buffer.from(cn)))));
const ECDSA_SHA256 = seq(oid('1.2.840.10045.4.3.2'));

function pem(label, derBytes) {
  const b64 = derBytes.toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END ${label}-----\n`;
}

let serial = 1;

/** A self-signed ECDSA P-256 leaf for `dns` names: { cert, key } as PEM (the `certs/` record shape). */
export function ecdsaCertificate(dns, { days = 30 } = {}) {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const now = Date.now();
  const sans = seq(...dns.map((d) => der(0x82, Buffer.from(d))));
  const extensions = der(
    0xa3,
    seq(
      seq(oid('2.5.29.19'), der(0x04, seq())), // basicConstraints: not a CA
      seq(oid('2.5.29.17'), der(0x04, sans)),
    ),
  );
  const serialBytes = Buffer.alloc(8);
  serialBytes.writeUInt32BE(process.pid, 0);
  serialBytes.writeUInt32BE(serial++, 4);
  const tbs = seq(
    der(0xa0, integer(Buffer.from([2]))), // v3
    integer(serialBytes),
    ECDSA_SHA256,
    name(dns[0]),
    seq(utcTime(new Date(now - 3_600_000)), utcTime(new Date(now + days * 86_400_000))),
    name(dns[0]),
    publicKey.export({ type: 'spki', format: 'der' }),
    extensions,
  );
  const signature = sign('sha256', tbs, { key: privateKey, dsaEncoding: 'der' });
  const certDer = seq(tbs, ECDSA_SHA256, der(0x03, Buffer.from([0]), signature));
  return { cert: pem('CERTIFICATE', certDer), key: privateKey.export({ type: 'pkcs8', format: 'pem' }) };
}

/** Throws unless Node parses `cert` and it matches `key` and covers `dns[0]` (a self-check of the builder). */
export function checkCertificate({ cert, key }, host) {
  const x = new X509Certificate(cert);
  if (!x.checkPrivateKey(createPrivateKey(key))) throw new Error('certificate and key do not match');
  if (x.checkHost(host) === undefined) throw new Error(`certificate does not cover ${host}`);
}
