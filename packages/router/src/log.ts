import { pino, type Logger } from 'pino';

/** One JSON line per event on stdout; fields added per line (reqId, key) rather than child loggers per request. */
export function createLogger(level: string, routerId: string): Logger {
  return pino({ level, base: { service: 'paas-router', router: routerId }, timestamp: pino.stdTimeFunctions.isoTime });
}
