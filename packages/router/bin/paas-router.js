#!/usr/bin/env node
// Loading the router's modules is a fixed part of every cold start; V8's compile cache (a
// directory of code caches keyed by source hash: NODE_COMPILE_CACHE, default the OS temp dir)
// lets starts after the first skip most of the compiling. It must be on before the import.
import { enableCompileCache, flushCompileCache } from 'node:module';

enableCompileCache();
const { main } = await import('../dist/main.js');
// Written once started, not only at exit: a router that is killed never exits cleanly.
main(process.argv.slice(2), process.env).then(() => flushCompileCache());
