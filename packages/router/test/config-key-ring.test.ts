/** --key-ring: the keys that decrypt certificate records' keyEnc, read once at start. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../src/config.js';

const dir = mkdtempSync(join(tmpdir(), 'paas-key-ring-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function ring(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

const configOf = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
  const r = parseConfig(argv, env);
  if (r.help || r.version) throw new Error('unexpected help or version');
  return r.config;
};

describe('--key-ring', () => {
  it('is empty without the flag, and holds every kid of the file (flag or ROUTER_KEY_RING)', () => {
    expect(configOf([]).keyRing.size).toBe(0);
    const file = ring('good.json', JSON.stringify({ k1: Buffer.alloc(32, 1).toString('base64'), k2: Buffer.alloc(32, 2).toString('base64') }));
    expect([...configOf(['--key-ring', file]).keyRing.keys()]).toEqual(['k1', 'k2']);
    expect(configOf([], { ROUTER_KEY_RING: file }).keyRing.get('k2')).toEqual(Buffer.alloc(32, 2));
  });

  it('stops start-up with one line naming the file and what is wrong', () => {
    const missing = join(dir, 'missing.json');
    expect(() => configOf(['--key-ring', missing])).toThrow(new ConfigError(`--key-ring: cannot read ${JSON.stringify(missing)}: ENOENT`));
    const short = ring('short.json', JSON.stringify({ k1: Buffer.alloc(31).toString('base64') }));
    expect(() => configOf([], { ROUTER_KEY_RING: short })).toThrow(new ConfigError(`ROUTER_KEY_RING: ${JSON.stringify(short)}: key "k1" is 31 bytes, not 32`));
    expect(() => configOf(['--key-ring', ring('bad.json', '{')])).toThrow(/^--key-ring: ".*bad\.json": not JSON/);
  });
});
