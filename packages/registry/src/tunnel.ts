/**
 * What an agent and a router say before the tunnel's HTTP/2 starts, and the token format. Shared
 * by `paas-agent`, the router's tunnel listener and `paas-deploy tunnel-token`, so the three
 * cannot disagree.
 *
 * The agent opens TLS and sends one line of JSON (a Hello); the router answers one line (a
 * Welcome or a Refusal) and, once welcomed, speaks HTTP/2 as the client on the same connection
 * while the agent serves. A line, not an HTTP/1.1 request: nothing but an agent ever talks to
 * this port, and the refusal reason must reach the agent before any HTTP/2 framing.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Protocol version the agent speaks; the router refuses others by name. */
export const TUNNEL_PROTOCOL = 1;
/** Longest handshake line either side reads (a token and names are far shorter). */
export const MAX_HELLO_BYTES = 4096;

export interface TunnelHello {
  v: number;
  app: string;
  id: string;
  /** `<token-id>.<secret>` as `tunnel-token create` printed it. */
  token: string;
}

export type TunnelWelcome = {
  ok: true;
  /** The router's own id. */
  router: string;
  /** `https://HOST:PORT` of every live router's tunnel listener, this one included. */
  routers: string[];
};

/**
 * `retry`: the refusal is for now only (the router holds as many sessions as it may): the agent
 * says why and tries again after its backoff. Without it nothing the agent can do will change the
 * answer (its token), so it stops.
 */
export type TunnelRefusal = { ok: false; error: string; retry?: boolean };

/** A new token: its id (the key's last name), the secret to give the agent, and the record to store. */
export function newTunnelToken(): { tokenId: string; secret: string; sha256: string } {
  const tokenId = `t${randomBytes(5).toString('hex')}`;
  const secret = `${tokenId}.${randomBytes(32).toString('base64url')}`;
  return { tokenId, secret, sha256: sha256Hex(secret) };
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** The token id a secret names (the part before the first '.'), or undefined for a malformed one. */
export function tokenIdOf(secret: string): string | undefined {
  const dot = secret.indexOf('.');
  return dot > 0 && dot < secret.length - 1 ? secret.slice(0, dot) : undefined;
}

/** Whether `secret` hashes to `sha256Hex`, compared in constant time. */
export function tokenMatches(secret: string, sha256HexValue: string): boolean {
  const given = createHash('sha256').update(secret, 'utf8').digest();
  const stored = Buffer.from(sha256HexValue, 'hex');
  return stored.length === given.length && timingSafeEqual(given, stored);
}

/**
 * Reads one '\n'-terminated line from a stream that is about to change protocol: whatever came
 * after the line is put back (unshift) for the next reader. Rejects past MAX_HELLO_BYTES, on
 * close, or after timeoutMs.
 */
export function readLine(stream: NodeJS.ReadableStream & { unshift(chunk: Buffer): void; destroy(err?: Error): void }, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let got: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => done(new Error(`no handshake line within ${timeoutMs} ms`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      got = got.length === 0 ? chunk : Buffer.concat([got, chunk]);
      const nl = got.indexOf(0x0a);
      if (nl >= 0) {
        stream.pause();
        done(null, got.subarray(0, nl).toString('utf8'), got.subarray(nl + 1));
      } else if (got.length > MAX_HELLO_BYTES) done(new Error(`handshake line longer than ${MAX_HELLO_BYTES} bytes`));
    };
    const onEnd = () => done(new Error('connection closed during the handshake'));
    const onError = (err: Error) => done(err);
    function done(err: Error | null, line?: string, rest?: Buffer): void {
      clearTimeout(timer);
      stream.removeListener('data', onData);
      stream.removeListener('end', onEnd);
      stream.removeListener('close', onEnd);
      stream.removeListener('error', onError);
      if (err !== null) return reject(err);
      if (rest!.length > 0) stream.unshift(rest!);
      resolve(line!);
    }
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('close', onEnd);
    stream.once('error', onError);
  });
}
