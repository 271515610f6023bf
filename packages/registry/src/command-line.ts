/**
 * The flag table → values step of paas-router and paas-agent: every flag also read from its
 * environment variable (a flag wins; an empty variable counts as unset), -h/--help and --version
 * answered before any value is judged. Each command judges the values itself.
 */
import { parseArgs } from 'node:util';

export interface FlagTableEntry {
  env: string;
  default?: string;
  boolean?: boolean;
}

/** A flag's text and how to name it in an error: the flag, or the variable it came from. */
export interface GivenText {
  text: string | undefined;
  what: string;
}

export type CommandLine = { help: true } | { version: true } | { raw: (name: string) => GivenText };

/** Log levels by name, as pino takes them. */
export const LOG_LEVELS: ReadonlySet<string> = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/** Reads argv against `flags`; a flag it does not know, or a value missing, throws `usageError`'s error. */
export function readCommandLine(argv: string[], env: NodeJS.ProcessEnv, flags: Record<string, FlagTableEntry>, usageError: (message: string) => Error): CommandLine {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean', short: 'h' }, version: { type: 'boolean' } };
  for (const [name, spec] of Object.entries(flags)) options[name] = { type: spec.boolean ? 'boolean' : 'string' };
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: argv, options, allowPositionals: false, strict: true }).values;
  } catch (err) {
    throw usageError(`${(err as Error).message} (see --help)`);
  }
  if (values.help) return { help: true };
  if (values.version) return { version: true };
  return {
    raw(name) {
      const spec = flags[name]!;
      const flag = values[name];
      if (flag !== undefined) return { text: String(flag), what: `--${name}` };
      const fromEnv = env[spec.env];
      if (fromEnv !== undefined && fromEnv !== '') return { text: fromEnv, what: spec.env };
      return { text: spec.default, what: `--${name}` };
    },
  };
}
