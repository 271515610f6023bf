/** The paas-agent command: parse flags, keep sessions to the routers, drain on SIGTERM. */
import { configToRun } from '@paas/registry';
import pino from 'pino';
import { Agent } from './agent.js';
import { ConfigError, helpText, parseConfig, versionText } from './config.js';

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const config = configToRun({ name: 'paas-agent', help: helpText, version: versionText, usageError: ConfigError }, () => parseConfig(argv, env));
  if (config === undefined) return;
  const log = pino({ level: config.logLevel, base: { app: config.app, id: config.id } });
  const agent = new Agent(config, log, {
    refused(router, error) {
      // Every router judges the token alike: retrying cannot help, so say why and stop.
      log.fatal({ router, error }, 'the router refused this agent');
      process.stderr.write(`paas-agent: ${router} refused this agent: ${error}\n`);
      agent.stop();
      process.exit(1);
    },
  });
  agent.start();
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, drainTimeoutMs: config.drainTimeoutMs }, 'draining: no new requests, waiting for open ones');
    void agent.drain(config.drainTimeoutMs).then((clean) => {
      log.info({ clean }, clean ? 'drained' : 'drain timeout: open requests cut');
      // Ctrl-C exits 130 (128 + SIGINT), as the other paas commands do.
      process.exit(signal === 'SIGINT' ? 130 : 0);
    });
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}
