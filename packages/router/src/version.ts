import { createRequire } from 'node:module';

/** The version in the router's package.json (--version, router_build_info). */
export const ROUTER_VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version;
