/** The paas-router command: parse flags, start, and stop cleanly on SIGTERM/SIGINT. */
import cluster from 'node:cluster';
import { startPrimary, WORKER_ENV, workerId } from './cluster.js';
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
  let config = parsed.config;
  const worker = cluster.isWorker ? Number(env[WORKER_ENV]) : undefined;
  if (worker !== undefined) config = { ...config, id: workerId(config.id, worker) };
  const log = createLogger(config.logLevel, config.id);
  process.on('uncaughtException', (err) => {
    log.fatal({ err }, 'uncaught exception');
    process.exit(1);
  });

  if (config.workers > 1 && cluster.isPrimary) return runPrimary(config, log);

  let router;
  try {
    router = await startRouter(config, log, { worker });
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

async function runPrimary(config: Parameters<typeof startPrimary>[0], log: Parameters<typeof startPrimary>[1]): Promise<void> {
  let primary;
  try {
    primary = await startPrimary(config, log);
  } catch (err) {
    log.fatal({ err: (err as Error).message }, 'could not start');
    process.stderr.write(`paas-router: ${(err as Error).message}\n`);
    process.exit(1);
  }
  let stopping: Promise<number> | undefined;
  const shutdown = (signal: string) => {
    log.info({ signal }, 'shutting down');
    stopping ??= primary.stop();
    stopping.then(
      (code) => process.exit(code),
      (err: Error) => {
        log.error({ err }, 'unclean shutdown');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}
