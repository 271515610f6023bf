#!/usr/bin/env node
// Checked before any import: an older Node fails inside a module with an error that names
// neither the command nor the Node it needs (engines in package.json).
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  process.stderr.write(`paas-deploy: Node ${process.versions.node} is too old: it needs Node 22.19.0 or newer (22, 24 or 26)\n`);
  process.exit(2);
}
const { main } = await import('../dist/cli.js');
main(process.argv.slice(2), process.env);
