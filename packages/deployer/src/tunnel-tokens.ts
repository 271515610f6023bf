/**
 * `paas-deploy tunnel-token create|list|rm`: the tokens agents present to routers. etcd keeps
 * only each secret's SHA-256 (and expiry) under tunnel-tokens/<app>/<token-id>; the secret is
 * shown once, by create. rm deletes the key: routers close the sessions opened with it.
 */
import { newTunnelToken, parseTunnelTokenRecord, type Etcd, type KeyLayout, type TunnelTokenRecord } from '@paas/registry';
import { DeployError } from './errors.js';

export interface CreatedToken {
  app: string;
  tokenId: string;
  secret: string;
  expiresAt: string | undefined;
}

export interface ListedToken {
  tokenId: string;
  expiresAt: string | null;
  expired: boolean;
  /** Set when the record is not a valid token record. */
  error?: string;
}

export async function createTunnelToken(etcd: Etcd, layout: KeyLayout, app: string, expiresMs: number | undefined, now = Date.now()): Promise<CreatedToken> {
  if ((await etcd.get(layout.app(app))) === undefined) throw new DeployError('not-found', `app ${app} does not exist (paas-deploy app set ${app} first)`);
  const { tokenId, secret, sha256 } = newTunnelToken();
  const expiresAt = expiresMs === undefined ? undefined : new Date(now + expiresMs).toISOString();
  const record: TunnelTokenRecord = expiresAt === undefined ? { sha256 } : { sha256, expiresAt };
  const key = layout.tunnelToken(app, tokenId);
  // Created only if absent: a token id is never reused for another secret.
  const result = await etcd.txn([{ key, target: 'create', op: '=', value: 0n }], [{ put: key, value: JSON.stringify(record) }]);
  if (!result.succeeded) throw new DeployError('conflict', `token id ${tokenId} exists already; run the command again`);
  return { app, tokenId, secret, expiresAt };
}

export function formatCreatedToken(t: CreatedToken): string {
  return [
    `tunnel-token create ${t.app}: token ${t.tokenId}${t.expiresAt ? `, expires ${t.expiresAt}` : ', no expiry'}`,
    'The secret below is shown this once and stored nowhere; give it to the agent as PAAS_AGENT_TOKEN:',
    t.secret,
  ].join('\n');
}

export async function listTunnelTokens(etcd: Etcd, layout: KeyLayout, app: string, now = Date.now()): Promise<ListedToken[]> {
  const dir = layout.tunnelTokensOf(app);
  const { entries } = await etcd.listPrefix(dir);
  return tunnelTokensOf(dir, entries, now);
}

/** listTunnelTokens over the records already read under `dir` (tunnel-tokens/<app>/). */
export function tunnelTokensOf(dir: string, entries: { key: string; value: Buffer }[], now = Date.now()): ListedToken[] {
  return entries.map((e) => {
    const tokenId = e.key.slice(dir.length);
    const parsed = parseTunnelTokenRecord(e.value);
    if (!parsed.ok) return { tokenId, expiresAt: null, expired: false, error: parsed.error };
    const expiresAt = parsed.value.expiresAt ?? null;
    return { tokenId, expiresAt, expired: expiresAt !== null && Date.parse(expiresAt) <= now };
  });
}

export function formatTunnelTokens(app: string, tokens: ListedToken[]): string {
  if (tokens.length === 0) return `no tunnel tokens for ${app}`;
  const rows = tokens.map((t) => [t.tokenId, t.error ? `invalid: ${t.error}` : t.expiresAt === null ? 'never expires' : `${t.expired ? 'expired' : 'expires'} ${t.expiresAt}`]);
  const width = Math.max(8, ...rows.map((r) => r[0]!.length)) + 2;
  return [`${'TOKEN'.padEnd(width)}EXPIRY`, ...rows.map((r) => `${r[0]!.padEnd(width)}${r[1]}`)].join('\n');
}

export async function removeTunnelToken(etcd: Etcd, layout: KeyLayout, app: string, tokenId: string): Promise<void> {
  const key = layout.tunnelToken(app, tokenId);
  if ((await etcd.get(key)) === undefined) throw new DeployError('not-found', `no token ${tokenId} for app ${app}`);
  await etcd.delete(key);
}
