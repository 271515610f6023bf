import { createRequire } from 'node:module';

/** The version in the router's package.json (--version, router_build_info). */
export const ROUTER_VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

/**
 * What this process loaded: the start bundled by scripts/bundle-router.mjs, or dist/'s modules
 * (bin/paas-router.js chooses; /status says which).
 */
export const ROUTER_MODULES: 'bundle' | 'dist' = new URL(import.meta.url).pathname.includes('/bundle/') ? 'bundle' : 'dist';
