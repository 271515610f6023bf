/** The paas-router command: parse flags, start, and stop cleanly on SIGTERM/SIGINT. */
import { ConfigError, helpText, parseConfig } from './config.js';
import { createLogger } from './log.js';
import { startRouter } from './router.js';

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  let parsed;
  try {
    parsed = parseConfig(argv, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`paas-router: ${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw err;
  }
  if (parsed.help) {
    process.stdout.write(helpText() + '\n');
    return;
  }
  const config = parsed.config;
  const log = createLogger(config.logLevel, config.id);
  process.on('uncaughtException', (err) => {
    log.fatal({ err }, 'uncaught exception');
    process.exit(1);
  });

  let router;
  try {
    router = await startRouter(config, log);
  } catch (err) {
    log.fatal({ err: (err as Error).message }, 'could not start');
    process.stderr.write(`paas-router: ${(err as Error).message}\n`);
    // Whatever start-up opened (admin listener, etcd channel) must not keep the process alive.
    process.exit(1);
  }
  const shutdown = (signal: string) => {
    log.info({ signal }, 'shutting down');
    router.stop().then(
      () => process.exit(0),
      (err: Error) => {
        log.error({ err }, 'unclean shutdown');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}
