import { createRequire } from 'node:module';

/** The version in the deployer's package.json (--version). */
export const DEPLOYER_VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version;
