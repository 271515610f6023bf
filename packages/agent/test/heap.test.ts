/** bin/paas-agent.js starts itself again with a 64 MB old-generation floor unless node's command line chose one. */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../bin/paas-agent.js', import.meta.url));

/** A loopback port nothing listens on any more: the agent's connection attempts are refused. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts the agent, waits for its first failed attempt (it is running by then), returns its command line. */
async function commandLine(nodeFlags: string[]): Promise<string[]> {
  const port = await closedPort();
  const child = spawn(process.execPath, [...nodeFlags, BIN, '--routers', `https://127.0.0.1:${port}`, '--app', 'mango', '--id', 'web-1', '--to', 'http://127.0.0.1:3000'], {
    env: { ...process.env, PAAS_AGENT_TOKEN: 't0a1b2c3d4e.c2VjcmV0', NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`no failed attempt logged within 20 s: ${out}`)), 20_000);
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('could not open a tunnel session')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`the agent exited (${code}): ${out}`));
      });
    });
    return readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0');
  } finally {
    child.kill('SIGKILL');
  }
}

describe('paas-agent heap', () => {
  it('runs with --initial-old-space-size=64 unless node was given one', async () => {
    const plain = await commandLine([]);
    expect(plain).toContain('--initial-old-space-size=64');
    const chosen = await commandLine(['--initial-old-space-size=32']);
    expect(chosen).toContain('--initial-old-space-size=32');
    expect(chosen).not.toContain('--initial-old-space-size=64');
  });
});
