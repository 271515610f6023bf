/**
 * How a command reaches a secured etcd: TLS (a CA to trust, a client certificate) and a user
 * whose password comes from the environment only (a flag would show in `ps`). Both commands
 * (paas-router, paas-deploy) read the same flags through loadEtcdSecurity, and every etcd
 * connection of the project (etcd3's calls and our own Range and Watch) uses the result.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { castGrpcError, EtcdAuthenticationFailedError, GRPCUnavailableError } from 'etcd3';

export interface EtcdSecurity {
  tls?: {
    /** PEM CA certificates to trust; without it, Node's default roots. */
    ca?: Buffer;
    /** PEM client certificate (chain) and its key; etcd takes the certificate's CN as the user. */
    cert?: Buffer;
    key?: Buffer;
  };
  auth?: { username: string; password: string };
}

/** One setting as given: its value and how the operator named it (flag or environment variable). */
export interface Given {
  value: string;
  what: string;
}

export interface EtcdSecurityInput {
  endpoints: string[];
  ca?: Given | undefined;
  cert?: Given | undefined;
  key?: Given | undefined;
  user?: Given | undefined;
  /** From ETCD_PASSWORD only. */
  password?: string | undefined;
}

/** A setting that cannot work; the message names it and says why, on one line. */
export class EtcdSecurityError extends Error {
  override name = 'EtcdSecurityError';
}

export const PASSWORD_ENV = 'ETCD_PASSWORD';

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function readPem(given: Given): Buffer {
  try {
    return readFileSync(given.value);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new EtcdSecurityError(`${given.what}: cannot read ${JSON.stringify(given.value)}: ${e.code ?? e.message}`);
  }
}

function parseCertificates(given: Given, pem: Buffer): X509Certificate[] {
  const blocks = pem.toString('utf8').match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw new EtcdSecurityError(`${given.what}: ${JSON.stringify(given.value)} holds no PEM certificate`);
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new EtcdSecurityError(`${given.what}: certificate ${i + 1} in ${JSON.stringify(given.value)} does not parse: ${(err as Error).message}`);
    }
  });
}

/**
 * Reads and checks the files (start-up only, hence synchronous). Throws EtcdSecurityError for a
 * missing or unreadable file, PEM that does not parse, a key that is not the certificate's, a
 * certificate without its key (or the reverse), a user without a password (or the reverse), and
 * TLS settings with plain http:// endpoints.
 */
export function loadEtcdSecurity(input: EtcdSecurityInput): EtcdSecurity {
  const { endpoints, ca, cert, key, user, password } = input;
  const secure = endpoints.filter((e) => e.startsWith('https://')).length;
  if (secure > 0 && secure < endpoints.length) throw new EtcdSecurityError(`etcd endpoints mix http:// and https:// (${endpoints.join(', ')}): use one scheme`);
  if (cert && !key) throw new EtcdSecurityError(`${cert.what}: a client certificate needs its key too (--etcd-key / ETCD_KEY)`);
  if (key && !cert) throw new EtcdSecurityError(`${key.what}: a client key needs its certificate too (--etcd-cert / ETCD_CERT)`);
  const tlsGiven = ca ?? cert;
  if (tlsGiven && secure === 0) throw new EtcdSecurityError(`${tlsGiven.what}: TLS settings need https:// etcd endpoints (got ${endpoints.join(', ')})`);
  if (user && password === undefined) throw new EtcdSecurityError(`${user.what}: the user's password must be in the environment variable ${PASSWORD_ENV}`);
  if (!user && password !== undefined) throw new EtcdSecurityError(`${PASSWORD_ENV} is set but no etcd user is given (--etcd-user / ETCD_USER)`);

  const security: EtcdSecurity = {};
  if (secure > 0) {
    const tls: NonNullable<EtcdSecurity['tls']> = {};
    if (ca) {
      tls.ca = readPem(ca);
      parseCertificates(ca, tls.ca);
    }
    if (cert && key) {
      tls.cert = readPem(cert);
      tls.key = readPem(key);
      const leaf = parseCertificates(cert, tls.cert)[0]!;
      let privateKey;
      try {
        privateKey = createPrivateKey(tls.key);
      } catch (err) {
        throw new EtcdSecurityError(`${key.what}: ${JSON.stringify(key.value)} is not a PEM private key: ${(err as Error).message}`);
      }
      if (!leaf.checkPrivateKey(privateKey)) throw new EtcdSecurityError(`${key.what}: ${JSON.stringify(key.value)} is not the key of the certificate in ${JSON.stringify(cert.value)}`);
    }
    security.tls = tls;
  }
  if (user && password !== undefined) security.auth = { username: user.value, password };
  return security;
}

/**
 * When etcd refused who we are, a sentence saying so (for start-up failures and the deployer's
 * one line); undefined for every other error. Retrying cannot help with either case: a wrong
 * user or password, or a TLS handshake the server broke off over our certificate.
 */
export function describeAccessRefused(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  const cast = castGrpcError(err);
  if (cast instanceof EtcdAuthenticationFailedError) return 'etcd authentication failed: wrong user or password (--etcd-user / ETCD_USER, ETCD_PASSWORD)';
  if (cast instanceof GRPCUnavailableError) {
    // The server's alert (it refused our certificate), or Node's verdict on the server's.
    const alert = /(?:ssl|tls)[^\n]*?alert ([a-z ]+?)(?::|\n|$)|certificate verify failed[^.\n]*|self[- ]signed certificate[^.\n]*|unable to (?:get|verify)[^.\n]*certificate[^.\n]*|certificate has expired|Hostname\/IP does not match certificate's altnames/i.exec(cast.message);
    if (alert) return `etcd TLS handshake failed: ${(alert[1] ? `tls alert ${alert[1]}` : alert[0]).trim()} (check --etcd-ca, --etcd-cert, --etcd-key)`;
  }
  return undefined;
}

/**
 * etcd's answer to a token it no longer knows: expired (simple tokens live --auth-token-ttl
 * after their last use) or issued before a restart or an auth change. As for clientv3, the
 * answer is to authenticate again and repeat the call.
 */
export function isStaleTokenMessage(message: string): boolean {
  return message.includes('invalid auth token') || message.includes('revision of auth store is old');
}
