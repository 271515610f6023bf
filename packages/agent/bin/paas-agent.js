#!/usr/bin/env node
// Checked before any import: an older Node fails inside a module with an error that names
// neither the command nor the Node it needs (engines in package.json).
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 12)) {
  process.stderr.write(`paas-agent: Node ${process.versions.node} is too old: it needs Node 22.12.0 or newer (22, 24 or 26)\n`);
  process.exit(2);
}
// The agent's heap holds little, so V8 kept its old-generation limit a few MB above it and ran a
// full mark-compact every few MB relayed (each piece of an HTTP/2 DATA frame is a new Buffer).
// A 64 MB floor under that limit makes them rarer and the agent cheaper per byte relayed
// (README, "Agent tunnels"). V8 reads the flag only when it sets up the heap, so unless the
// operator chose one, the agent starts itself again in the same process (process.execve).
// Where execve is missing it runs as it is.
const chosen = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((a) => a.startsWith('--initial-old-space-size'));
if (!chosen && typeof process.execve === 'function') {
  process.execve(process.execPath, [process.execPath, '--initial-old-space-size=64', ...process.execArgv, ...process.argv.slice(1)], process.env);
}

const { main } = await import('../dist/main.js');
main(process.argv.slice(2), process.env);
