/**
 * The ACME schedule (the router's acme/issuer.ts, and paas-deploy cert list): when a host's
 * certificate is renewed and when a failed host is tried again. Pure functions of the certificate
 * and the failure count, so every router of the fleet and the deployer compute the same times.
 */
import { createHash } from 'node:crypto';

/** How much of the lifetime before the renewal point the jitter may move it earlier. */
const JITTER_SHARE = 1 / 12;
/** The back-off stops doubling at 64 times the first delay. */
const BACKOFF_CAP_FACTOR = 64;

/** A number in [0, 1) from a string: the same on every router. */
function unitHash(seed: string): number {
  return createHash('sha256').update(seed).digest().readUInt32BE(0) / 0x1_0000_0000;
}

/**
 * Renew when a third of the lifetime is left (a 90-day certificate at 30 days, a 6-day one at 2),
 * moved earlier by up to a twelfth of the lifetime, by the certificate's fingerprint, so that
 * certificates issued together do not all come due in the same minute.
 */
export function renewalAt(notBefore: number, notAfter: number, fingerprint: string): number {
  const lifetime = Math.max(0, notAfter - notBefore);
  return Math.round(notAfter - lifetime / 3 - unitHash(fingerprint) * lifetime * JITTER_SHARE);
}

/** The wait after the `failures`-th failure in a row: base, 2×base, 4×base... up to 64×base. */
export function backoffMs(failures: number, baseMs: number): number {
  return baseMs * Math.min(BACKOFF_CAP_FACTOR, 2 ** Math.max(0, failures - 1));
}
