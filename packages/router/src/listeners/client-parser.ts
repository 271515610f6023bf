/**
 * --client-parser: what serves client HTTP/1.1 connections. `native` (h1-connection.ts) drives
 * Node's internal llhttp binding itself; `node` is Node's http.Server (public APIs only);
 * `auto` (the default) runs the native one when its start-up check below passes on this Node,
 * else Node's server, saying why in one warning line.
 *
 * The check loads the binding and makes it parse canned requests on one connection (a chunked
 * body, an HTTP/1.0 head, a WebSocket upgrade with early bytes) through exactly the calls and
 * callbacks the native server uses; any difference is the reason returned.
 */
import { loadHttpParser, loadRequestMethods, type NativeParser, type OnBody, type OnHeadersComplete, type OnMessageBegin, type OnMessageComplete } from '../transport/http-parser.js';

export const CLIENT_PARSER_CHOICES = ['auto', 'native', 'node'] as const;
export type ClientParserChoice = (typeof CLIENT_PARSER_CHOICES)[number];
export type ClientParserKind = 'native' | 'node';

/** Requests on one connection, and a second connection's request that asks to close it. */
const CANNED = [
  Buffer.from(
    'POST /a?b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n' +
      'GET /c HTTP/1.0\r\nHost: y\r\nConnection: keep-alive\r\n\r\n' +
      'GET /ws HTTP/1.1\r\nHost: z\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nEARLY',
    'latin1',
  ),
  Buffer.from('DELETE /d HTTP/1.1\r\nHost: w\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok', 'latin1'),
];
/** llhttp stops after the upgrade's head: the bytes after it are the new protocol's. */
const PARSED = [CANNED[0]!.length - 'EARLY'.length, CANNED[1]!.length];

const EXPECTED = JSON.stringify([
  ['begin'],
  ['head', 1, 1, 'POST', '/a?b', ['Host', 'x', 'Transfer-Encoding', 'chunked'], false, true],
  ['body', 'hello'],
  ['complete'],
  ['begin'],
  ['head', 1, 0, 'GET', '/c', ['Host', 'y', 'Connection', 'keep-alive'], false, true],
  ['complete'],
  ['begin'],
  ['head', 1, 1, 'GET', '/ws', ['Host', 'z', 'Connection', 'Upgrade', 'Upgrade', 'websocket'], true, true],
  ['complete'],
  ['begin'],
  ['head', 1, 1, 'DELETE', '/d', ['Host', 'w', 'Connection', 'close', 'Content-Length', '2'], false, false],
  ['body', 'ok'],
  ['complete'],
]);

const METHODS = ['initialize', 'execute', 'finish', 'consume', 'unconsume', 'getCurrentBuffer', 'close'] as const;

/** Undefined when the native HTTP/1.1 server can run on this Node; else why not. */
export function checkNativeServer(): string | undefined {
  try {
    const HTTPParser = loadHttpParser();
    for (const key of ['REQUEST', 'kOnMessageBegin', 'kOnHeaders', 'kOnHeadersComplete', 'kOnBody', 'kOnMessageComplete', 'kOnExecute'] as const) {
      if (typeof HTTPParser[key] !== 'number') return `HTTPParser.${key} is not a number`;
    }
    for (const name of METHODS) {
      if (typeof (HTTPParser.prototype as Record<string, unknown>)[name] !== 'function') return `HTTPParser has no ${name}()`;
    }
    const methods = loadRequestMethods();
    const seen: unknown[] = [];
    const onBegin: OnMessageBegin = () => void seen.push(['begin']);
    const onHeadersComplete: OnHeadersComplete = (major, minor, headers, method, url, _status, _text, upgrade, keepAlive) => {
      seen.push(['head', major, minor, methods[method ?? -1], url, headers, upgrade, keepAlive]);
      return 0;
    };
    const onBody: OnBody = (chunk) => void seen.push(['body', Buffer.isBuffer(chunk) ? chunk.toString('latin1') : typeof chunk]);
    const onComplete: OnMessageComplete = () => void seen.push(['complete']);
    for (let i = 0; i < CANNED.length; i++) {
      const parser: NativeParser = new HTTPParser();
      parser.initialize(HTTPParser.REQUEST, {}, 0, 0);
      parser[HTTPParser.kOnMessageBegin] = onBegin;
      parser[HTTPParser.kOnHeaders] = () => void seen.push(['early headers']);
      parser[HTTPParser.kOnHeadersComplete] = onHeadersComplete;
      parser[HTTPParser.kOnBody] = onBody;
      parser[HTTPParser.kOnMessageComplete] = onComplete;
      const ret = parser.execute(CANNED[i]!);
      parser.close();
      if (ret instanceof Error) return `the canned requests did not parse: ${ret.message} (${(ret as NodeJS.ErrnoException).code ?? ''})`;
      if (ret !== PARSED[i]) return `execute() returned ${String(ret)}, not ${PARSED[i]}`;
    }
    const got = JSON.stringify(seen);
    if (got !== EXPECTED) return `the canned requests parsed as ${got}`;
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

export interface ParserLogger {
  warn(obj: object, msg: string): void;
}

/** The server the choice comes to on this Node; throws for `native` when the check fails. */
export function chooseClientParser(choice: ClientParserChoice, log: ParserLogger, check: () => string | undefined = checkNativeServer): ClientParserKind {
  if (choice === 'node') return 'node';
  const reason = check();
  if (reason === undefined) return 'native';
  if (choice === 'native') throw new Error(`--client-parser native: Node's HTTP parser internals are not usable here (${reason})`);
  log.warn({ reason, node: process.version }, 'native HTTP/1.1 server unavailable on this Node: running Node\'s http server');
  return 'node';
}
