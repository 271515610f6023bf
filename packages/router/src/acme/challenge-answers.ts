/**
 * Answers `GET /.well-known/acme-challenge/<token>` on the plain listener from the key
 * authorizations the ordering router stores in etcd (`acme/challenges/<token>`, on its lock's
 * lease), so the CA's validation may reach any router of the fleet, whichever one ordered.
 *
 * Read on demand, not watched: `acme/` sorts outside the watched range, so a challenge write
 * wakes no router's table, digest or status record for a value that one router (the one the
 * CA reaches) needs for a few requests; and a read is never stale, because the orderer writes
 * the record before it tells the CA to validate, while a watched copy could still be on its way
 * to the router the CA reaches. Hosts of apps with `tls.acme` look in etcd, and so do hosts no
 * app routes here: the app's own record may still be on its way to this router (the orderer has
 * applied it, this router has not), and the CA's request must not be failed for that. Requests
 * for the path on a host routed to an app without `tls.acme` go to the app as before. A short
 * cache (hits and misses) and one read per token at a time keep a burst of requests from
 * becoming a burst of etcd reads; reads for unrouted hosts are also capped in number at a time,
 * so random tokens on random hosts cannot become one either.
 */
import { parseAcmeChallenge, type AcmeChallenge } from '@paas/registry';
import type { Logger } from 'pino';
import { ACME_CHALLENGE_PATH } from '../decision/decide.js';
import { normalizeHost } from '../decision/host.js';
import type { RoutingTable } from '../table/routing-table.js';

/** Tokens are base64url (RFC 8555 §8.3). */
const TOKEN = /^[A-Za-z0-9_-]{1,256}$/;
const CACHE_MS = 2000;
const CACHE_MAX = 1024;
/** Reads at a time for hosts no app routes: over it, such a request gets the no-route answer. */
const UNROUTED_READS_MAX = 16;

export interface ChallengeAnswersOptions {
  /** The raw value of `acme/challenges/<token>`, or undefined. */
  read(token: string): Promise<Uint8Array | undefined>;
  getTable(): RoutingTable;
  log: Logger;
}

/** What serve() reads of a request. */
export interface ChallengeRequest {
  readonly method: string;
  readonly url: string;
  /** The Host header. */
  readonly host: string | undefined;
}

/** Writes an answer: a status, a header list, and the body (none for HEAD). */
export type ChallengeReply = (status: number, headers: string[], body: string | undefined) => void;

export class ChallengeAnswers {
  private readonly cache = new Map<string, { challenge: AcmeChallenge | undefined; until: number }>();
  private readonly reading = new Map<string, Promise<AcmeChallenge | undefined>>();
  private unroutedReads = 0;

  constructor(private readonly opts: ChallengeAnswersOptions) {}

  /**
   * Serves a request whose path starts with ACME_CHALLENGE_PATH: the key authorization when a
   * challenge for this token and host is pending, else `next()` (the ordinary routing).
   */
  serve(req: ChallengeRequest, reply: ChallengeReply, next: () => void): void {
    const url = req.url;
    const end = url.indexOf('?');
    const token = url.slice(ACME_CHALLENGE_PATH.length, end < 0 ? url.length : end);
    const host = normalizeHost(req.host);
    if ((req.method !== 'GET' && req.method !== 'HEAD') || !TOKEN.test(token)) {
      next();
      return;
    }
    const target = this.opts.getTable().lookup(host, url);
    if (target !== undefined && (target.kind === 'maintenance' || target.record?.tls?.acme !== true)) {
      next();
      return;
    }
    this.lookup(token, target === undefined).then(
      (challenge) => {
        if (challenge === undefined || challenge.host !== host) {
          next();
          return;
        }
        // One line per validation request (a few per order): which router the CA reached.
        this.opts.log.info({ host, token }, 'acme: challenge answered');
        reply(200, ['content-type', 'text/plain', 'content-length', String(Buffer.byteLength(challenge.keyAuthorization)), 'cache-control', 'no-store'], req.method === 'HEAD' ? undefined : challenge.keyAuthorization);
      },
      (err: Error) => {
        this.opts.log.warn({ token, host, err: err.message }, 'acme challenge: could not read etcd');
        // A host no app routes keeps its usual answer: only a tls.acme host's CA request learns the store is down.
        if (target === undefined) {
          next();
          return;
        }
        const body = 'challenge store unavailable\n';
        reply(503, ['content-type', 'text/plain', 'content-length', String(body.length), 'retry-after', '1'], body);
      },
    );
  }

  /** The token's challenge: cached, being read, or read now (for an unrouted host, within UNROUTED_READS_MAX). */
  private lookup(token: string, unrouted: boolean): Promise<AcmeChallenge | undefined> {
    const now = Date.now();
    const hit = this.cache.get(token);
    if (hit !== undefined && hit.until > now) return Promise.resolve(hit.challenge);
    let pending = this.reading.get(token);
    if (pending === undefined) {
      if (unrouted && this.unroutedReads >= UNROUTED_READS_MAX) return Promise.resolve(undefined);
      if (unrouted) this.unroutedReads++;
      pending = this.opts.read(token).then((raw) => {
        const parsed = raw === undefined ? undefined : parseAcmeChallenge(raw);
        if (parsed !== undefined && !parsed.ok) this.opts.log.warn({ token, error: parsed.error }, 'acme challenge record rejected');
        const challenge = parsed?.ok ? parsed.value : undefined;
        if (this.cache.size >= CACHE_MAX) this.cache.clear();
        this.cache.set(token, { challenge, until: Date.now() + CACHE_MS });
        return challenge;
      }).finally(() => {
        this.reading.delete(token);
        if (unrouted) this.unroutedReads--;
      });
      this.reading.set(token, pending);
    }
    return pending;
  }
}
