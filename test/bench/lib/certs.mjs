/**
 * Many real certificates, fast: ECDSA P-256 leaves signed by one CA, each with its own key pair,
 * encoded as DER here and signed with node:crypto (openssl's command line takes ~20 ms per
 * certificate, 200 s for 10k; this takes ~0.2 ms). The first one is checked against OpenSSL's
 * X509Certificate so a broken encoding fails the bench instead of measuring rejections.
 */
import { createHash, generateKeyPairSync, sign, X509Certificate } from 'node:crypto';

function len(n) {
  if (n < 0x80) return Buffer.of(n);
  const bytes = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return Buffer.of(0x80 | bytes.length, ...bytes);
}
const tlv = (tag, ...parts) => {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.of(tag), len(body.length), body]);
};
const seq = (...parts) => tlv(0x30, ...parts);
const oid = (bytes) => tlv(0x06, Buffer.from(bytes));
const int = (n) => {
  let hex = n.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  let b = Buffer.from(hex, 'hex');
  if (b[0] & 0x80) b = Buffer.concat([Buffer.of(0), b]);
  return tlv(0x02, b);
};
const utcTime = (d) => tlv(0x17, Buffer.from(`${d.toISOString().slice(2, 19).replace(/[-:T]/g, '')}Z`, 'latin1'));
const name = (cn) => seq(tlv(0x31, seq(oid([0x55, 0x04, 0x03]), tlv(0x0c, Buffer.from(cn, 'utf8')))));
const ECDSA_SHA256 = seq(oid([0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]));
const SAN = [0x55, 0x1d, 0x11];
const pem = (type, der) => `-----BEGIN ${type}-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END ${type}-----\n`;

/** A CA; issue(i) returns { certPem, keyPem } for host cert<i>.bench.local, valid 90 days. */
export function benchCa() {
  const ca = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const issuer = name('paas bench CA');
  const notBefore = new Date(Date.now() - 3_600_000);
  const notAfter = new Date(Date.now() + 90 * 86_400_000);
  let checked = false;
  return {
    issue(i) {
      const leaf = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const host = `cert${i}.bench.local`;
      const tbs = seq(
        tlv(0xa0, int(2)),
        int(1000 + i),
        ECDSA_SHA256,
        issuer,
        seq(utcTime(notBefore), utcTime(notAfter)),
        name(host),
        leaf.publicKey.export({ type: 'spki', format: 'der' }),
        tlv(0xa3, seq(seq(oid(SAN), tlv(0x04, seq(tlv(0x82, Buffer.from(host, 'latin1'))))))),
      );
      const der = seq(tbs, ECDSA_SHA256, tlv(0x03, Buffer.of(0), sign('sha256', tbs, ca.privateKey)));
      const certPem = pem('CERTIFICATE', der);
      const keyPem = leaf.privateKey.export({ type: 'pkcs8', format: 'pem' });
      if (!checked) {
        const x = new X509Certificate(certPem);
        if (x.subjectAltName !== `DNS:${host}` || !x.checkPrivateKey(leaf.privateKey) || !x.verify(ca.publicKey)) throw new Error('bench certificate encoding is broken');
        checked = true;
      }
      return { certPem, keyPem, host, fingerprint: createHash('sha256').update(der).digest('hex') };
    },
  };
}
