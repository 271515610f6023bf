/**
 * TLS session ticket keys shared by every router of the fleet (and every worker of one), so a
 * client resumes its session on whichever replica DNS sends it to: one key, in
 * `<prefix>/tls-ticket-keys` as `{ "current": "<base64 of 48 random bytes>", "rotatedAt": ISO }`.
 *
 * Every router reads the key at start and then every CHECK_MS. The key is rotated once it is
 * older than ROTATE_MS, by whichever router sees that first: a compare-and-swap transaction on the
 * key's mod revision (on its absence for the first one), so when several see it at once one
 * writes and the others read what it wrote. No lease: the key outlives any one router, so a
 * router's stop never forces the fleet into a new key. The routers' watch does not cover it
 * (`tls-ticket-keys` sorts after `routers/`), so a ticket write wakes no router.
 *
 * Node takes exactly one ticket key (`server.setTicketKeys`, 48 bytes: name, HMAC and AES
 * keys) and offers no callback to accept a previous one: after a rotation, and until every
 * router has read the new key (up to CHECK_MS), a ticket from the other key gives a full
 * handshake instead of a resumption, never a failure.
 */
import { randomBytes } from 'node:crypto';
import type { Etcd } from '@paas/registry';

/** How old the key may get before a router rotates it. */
export const ROTATE_MS = 24 * 3_600_000;
/** How often routers read the key. */
export const CHECK_MS = 60_000;
const KEY_BYTES = 48;

export interface TicketKeyLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

interface TicketKeyValue {
  current: Buffer;
  rotatedAt: number;
}

/** The record's key and age, or undefined when it is not a valid record (it is then replaced). */
function parse(raw: Buffer | undefined): TicketKeyValue | undefined {
  if (raw === undefined) return undefined;
  try {
    const v = JSON.parse(raw.toString('utf8')) as { current?: unknown; rotatedAt?: unknown };
    if (typeof v.current !== 'string' || typeof v.rotatedAt !== 'string') return undefined;
    const current = Buffer.from(v.current, 'base64');
    const rotatedAt = Date.parse(v.rotatedAt);
    return current.length === KEY_BYTES && Number.isFinite(rotatedAt) ? { current, rotatedAt } : undefined;
  } catch {
    return undefined;
  }
}

export class SharedTicketKeys {
  private applied: Buffer | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly etcd: Etcd,
    private readonly key: string,
    /** Hands the key to the TLS servers. */
    private readonly apply: (key: Buffer) => void,
    private readonly log: TicketKeyLogger,
    private readonly rotateMs = ROTATE_MS,
    private readonly checkMs = CHECK_MS,
  ) {}

  /** Reads (or writes) the key once, then keeps it current; resolves after the first read, whatever its outcome. */
  async start(): Promise<void> {
    await this.check();
    this.timer = setInterval(() => void this.check(), this.checkMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
  }

  private check(): Promise<void> {
    // One check at a time: a slow etcd must not pile them up.
    this.running ??= this.sync()
      .catch((err: Error) => this.log.warn({ key: this.key, err: err.message }, 'TLS ticket keys: etcd unavailable; keeping the current key'))
      .finally(() => (this.running = undefined));
    return this.running;
  }

  private async sync(): Promise<void> {
    const entry = await this.etcd.get(this.key);
    let value = parse(entry?.value);
    if (value === undefined || Date.now() - value.rotatedAt >= this.rotateMs) {
      const next = { current: randomBytes(KEY_BYTES), rotatedAt: Date.now() };
      const compare = entry === undefined ? { key: this.key, target: 'create' as const, op: '=' as const, value: 0n } : { key: this.key, target: 'mod' as const, op: '=' as const, value: entry.modRevision };
      const written = await this.etcd.txn([compare], [{ put: this.key, value: JSON.stringify({ current: next.current.toString('base64'), rotatedAt: new Date(next.rotatedAt).toISOString() }) }]);
      if (written.succeeded) {
        this.log.info({ key: this.key }, 'TLS ticket key rotated');
        value = next;
      } else {
        // Another router rotated it first: take its key.
        value = parse((await this.etcd.get(this.key))?.value);
      }
    }
    if (value !== undefined && (this.applied === undefined || !value.current.equals(this.applied))) {
      this.apply(value.current);
      this.applied = value.current;
    }
  }
}
