/**
 * The agents' tokens as this router knows them: a list-then-watch of `tunnel-tokens/` (outside
 * the table's watched range, so a token write never touches the routing table). Only hashes are
 * stored; a presented secret is hashed and compared in constant time. Deletion, replacement and
 * expiry end the sessions opened with a token (sessions.ts sweeps them against this map).
 */
import type { RefusalReason } from './metrics.js';
import { KeyLayout, parseTunnelTokenRecord, prefixEnd, tokenIdOf, tokenMatches, type Etcd, type KvEntry, type Mirror, type WatchEvent } from '@paas/registry';

export interface KnownToken {
  readonly key: string;
  readonly app: string;
  readonly sha256: string;
  /** ms since the epoch; Infinity: never. */
  readonly expiresAt: number;
}

export type TokenCheck = { ok: true; token: KnownToken } | { ok: false; error: string; reason: RefusalReason };

export interface TokensLogger {
  warn(obj: object, msg: string): void;
}

export class TunnelTokens {
  private readonly byKey = new Map<string, KnownToken>();
  /** token id -> the key holding it, to name the app a foreign token belongs to. */
  private readonly byTokenId = new Map<string, string>();
  private mirror: Mirror | undefined;

  constructor(
    private readonly etcd: Etcd,
    private readonly layout: KeyLayout,
    private readonly log: TokensLogger,
  ) {}

  /** Resolves once the first list is in: no agent is judged against an empty set. */
  async start(startTimeoutMs: number): Promise<void> {
    const dir = this.layout.tunnelTokensDir;
    this.mirror = this.etcd.mirror({ start: dir, end: prefixEnd(dir), startTimeoutMs }, {
      onSnapshot: (entries: KvEntry[]) => {
        this.byKey.clear();
        this.byTokenId.clear();
        for (const e of entries) this.put(e.key, e.value);
      },
      onRevision: (events: WatchEvent[]) => {
        for (const e of events) {
          if (e.type === 'put') this.put(e.key, e.value);
          else this.remove(e.key);
        }
      },
      onError: (err: unknown) => this.log.warn({ err: (err as Error).message }, 'tunnel token watch failed; retrying'),
    });
    await this.mirror.start();
  }

  private put(key: string, value: Buffer): void {
    const ref = this.layout.parse(key);
    const parsed = parseTunnelTokenRecord(value);
    this.remove(key);
    if (!ref.ok || ref.ref.kind !== 'tunnel-token' || !parsed.ok) {
      this.log.warn({ key, error: ref.ok ? (parsed.ok ? 'not a tunnel-tokens/<app>/<token-id> key' : parsed.error) : ref.error }, 'tunnel token rejected');
      return;
    }
    const expiresAt = parsed.value.expiresAt === undefined ? Infinity : Date.parse(parsed.value.expiresAt);
    this.byKey.set(key, { key, app: ref.ref.app, sha256: parsed.value.sha256, expiresAt });
    this.byTokenId.set(ref.ref.tokenId, key);
  }

  private remove(key: string): void {
    if (!this.byKey.delete(key)) return;
    const tokenId = key.slice(key.lastIndexOf('/') + 1);
    if (this.byTokenId.get(tokenId) === key) this.byTokenId.delete(tokenId);
  }

  /** Whether `secret` lets an agent serve instances of `app` now; else the reason, for the agent. */
  check(app: string, secret: string, now = Date.now()): TokenCheck {
    const tokenId = tokenIdOf(secret);
    if (tokenId === undefined) return { ok: false, reason: 'malformed_token', error: 'token is malformed (expected <token-id>.<secret>, as paas-deploy tunnel-token create prints it)' };
    const token = this.byKey.get(this.layout.tunnelToken(app, tokenId));
    if (token === undefined) {
      const other = this.byTokenId.get(tokenId);
      const otherApp = other === undefined ? undefined : this.byKey.get(other)?.app;
      if (otherApp !== undefined && tokenMatches(secret, this.byKey.get(other!)!.sha256)) return { ok: false, reason: 'foreign_app_token', error: `token ${tokenId} belongs to app ${otherApp}, not ${app}` };
      return { ok: false, reason: 'unknown_token', error: `token ${tokenId} is unknown for app ${app} (revoked, or never created)` };
    }
    if (!tokenMatches(secret, token.sha256)) return { ok: false, reason: 'secret_mismatch', error: `token ${tokenId}: the secret does not match` };
    if (token.expiresAt <= now) return { ok: false, reason: 'token_expired', error: `token ${tokenId} expired at ${new Date(token.expiresAt).toISOString()}` };
    return { ok: true, token };
  }

  /** Why a session opened with `token` must end now, or undefined while it stays valid. */
  ended(token: KnownToken, now = Date.now()): string | undefined {
    const current = this.byKey.get(token.key);
    if (current === undefined) return 'token revoked';
    if (current.sha256 !== token.sha256) return 'token replaced';
    if (current.expiresAt <= now) return 'token expired';
    return undefined;
  }

  async close(): Promise<void> {
    await this.mirror?.close();
  }
}
