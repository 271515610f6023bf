import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** A client's own X-Request-Id is kept when it is sane: short, and only token characters. */
export const SANE_REQUEST_ID = /^[A-Za-z0-9._:@+=\/-]{1,128}$/;

export function requestIdFor(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  if (typeof given === 'string' && SANE_REQUEST_ID.test(given)) return given;
  return randomUUID();
}
