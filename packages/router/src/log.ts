import { pino, type Logger } from 'pino';

/** Levels by name ("level":"warn"), not pino's numbers: what an operator greps for. */
const formatters = { level: (label: string) => ({ level: label }) };

/** One JSON line per event on stdout; fields added per line (reqId, key) rather than child loggers per request. */
export function createLogger(level: string, routerId: string): Logger {
  return pino({ level, base: { service: 'paas-router', router: routerId }, formatters, timestamp: pino.stdTimeFunctions.isoTime });
}

/**
 * The access log in a file of its own (--access-log-file), appended to, written asynchronously
 * (no sync I/O on the request path); the file is created, with its directory, if missing.
 */
export function createAccessLogger(path: string, routerId: string): Logger {
  const dest = pino.destination({ dest: path, sync: false, mkdir: true, append: true });
  return pino({ level: 'info', base: { service: 'paas-router', router: routerId }, formatters, timestamp: pino.stdTimeFunctions.isoTime }, dest);
}
