/** The paas-router command: parse flags, start, and stop cleanly on SIGTERM/SIGINT. */
import cluster from 'node:cluster';
import { configToRun } from '@paas/registry';
import { REPLACES_LEASE_ENV, startPrimary, WORKER_ENV, workerId } from './cluster.js';
import { ConfigError, helpText, parseConfig, versionText } from './config.js';
import { createLogger } from './log.js';
import { startRouter } from './router.js';

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  let config = configToRun({ name: 'paas-router', help: helpText, version: versionText, usageError: ConfigError }, () => parseConfig(argv, env));
  if (config === undefined) return;
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
    router = await startRouter(config, log, { worker, replacesLease: worker !== undefined ? env[REPLACES_LEASE_ENV] : undefined });
  } catch (err) {
    log.fatal({ err: (err as Error).message }, 'could not start');
    process.stderr.write(`paas-router: ${(err as Error).message}\n`);
    // Whatever start-up opened (admin listener, etcd channel) must not keep the process alive.
    process.exit(1);
  }
  const shutdown = (signal: NodeJS.Signals) => {
    log.info({ signal }, 'shutting down');
    router.stop().then(
      () => process.exit(exitCodeAfter(signal)),
      (err: Error) => {
        log.error({ err }, 'unclean shutdown');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

/**
 * A clean stop on SIGTERM (what service managers send) exits 0; Ctrl-C exits 130 (128 + SIGINT),
 * as shells expect of an interrupted command, after the same graceful stop.
 */
function exitCodeAfter(signal: NodeJS.Signals): number {
  return signal === 'SIGINT' ? 130 : 0;
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
  const shutdown = (signal: NodeJS.Signals) => {
    log.info({ signal }, 'shutting down');
    stopping ??= primary.stop();
    stopping.then(
      (code) => process.exit(code === 0 ? exitCodeAfter(signal) : code),
      (err: Error) => {
        log.error({ err }, 'unclean shutdown');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}
