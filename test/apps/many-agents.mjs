#!/usr/bin/env node
// Many paas-agent instances in one process, for the reconnect-storm test: N agents of one app
// (ids <prefix>0..<prefix>N-1) to the same routers. Every 200 ms it prints one JSON line:
// {"opened":A,"failed":F,"opens":[ms since start of each session opened in the last 200 ms]}.
// Usage: many-agents.mjs --count N --app APP --id-prefix P --routers URL[,URL] --to URL --ca FILE
// (token in PAAS_AGENT_TOKEN)
import { parseArgs } from 'node:util';
import { Agent } from '../../packages/agent/dist/agent.js';
import { parseConfig } from '../../packages/agent/dist/config.js';

const { values } = parseArgs({ options: { count: { type: 'string' }, app: { type: 'string' }, 'id-prefix': { type: 'string' }, routers: { type: 'string' }, to: { type: 'string' }, ca: { type: 'string' } } });
let opened = 0;
let failed = 0;
let opens = [];
const t0 = performance.now();
// Counts the agents' own log events (one per session opened, one per failed attempt); the
// agents log through this object as through pino's.
const count = (_obj, msg) => {
  if (msg === 'tunnel session open') {
    opened++;
    opens.push(Math.round(performance.now() - t0));
  } else if (msg === 'could not open a tunnel session; will retry') failed++;
};
const log = { info: count, warn: count, error: count, fatal: count, debug: () => {} };
for (let i = 0; i < Number(values.count); i++) {
  const parsed = parseConfig(['--routers', values.routers, '--app', values.app, '--id', `${values['id-prefix']}${i}`, '--to', values.to, '--ca', values.ca], process.env);
  const agent = new Agent(parsed.config, log, {
    refused(router, error) {
      process.stderr.write(`refused by ${router}: ${error}\n`);
      process.exit(1);
    },
  });
  agent.start();
}
setInterval(() => {
  process.stdout.write(JSON.stringify({ opened, failed, opens }) + '\n');
  opens = [];
}, 200);
