/**
 * node:http, required rather than imported: since Node 22 an ES import of node:http builds its
 * ESM facade, which reads every export, and the lazy WebSocket ones load Node's bundled undici
 * (tens of ms at start-up, measured on 22, 24 and 26). Value imports of node:http go through here.
 */
import { createRequire } from 'node:module';

export const nodeHttp = createRequire(import.meta.url)('node:http') as typeof import('node:http');
