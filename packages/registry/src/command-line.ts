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

/** What a command's parseConfig gives: -h, --version, or the configuration to run with. */
export type ParsedCommandLine<C> = { help: true } | { help: false; version: true } | { help: false; version?: false; config: C };

export interface CommandTexts {
  /** The command's name, at the start of a usage error's line. */
  name: string;
  help(): string;
  version(): string;
  /** The command's own usage error class: only these become one line and exit 2. */
  usageError: abstract new (...args: never[]) => Error;
}

/**
 * The start of paas-router and paas-agent: the configuration to run with, or undefined when the
 * command line is answered already (help or version printed, or a usage error printed as one
 * line with exit code 2).
 */
export function configToRun<C>(texts: CommandTexts, parse: () => ParsedCommandLine<C>): C | undefined {
  let parsed: ParsedCommandLine<C>;
  try {
    parsed = parse();
  } catch (err) {
    if (!(err instanceof texts.usageError)) throw err;
    process.stderr.write(`${texts.name}: ${err.message}\n`);
    process.exitCode = 2;
    return undefined;
  }
  if (parsed.help) {
    process.stdout.write(texts.help() + '\n');
    return undefined;
  }
  if (parsed.version) {
    process.stdout.write(texts.version() + '\n');
    return undefined;
  }
  return parsed.config;
}
