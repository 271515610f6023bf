/**
 * The start-up check of the native client: Node's internal llhttp binding is loaded and made to
 * parse two canned answers on one keep-alive connection (one chunked with a Keep-Alive
 * announcement, one with a length), through exactly the calls and callbacks the native client
 * uses. Any difference (a missing export or method, a callback with another shape, other
 * values) is the reason returned, and the router runs the portable client instead.
 */
import { loadHttpParser, type NativeParser, type OnBody, type OnHeadersComplete, type OnMessageComplete } from './http-parser.js';

const CANNED = Buffer.from(
  'HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nX-Canned: one\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n' +
    'HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nbye',
  'latin1',
);

const EXPECTED = JSON.stringify([
  ['head', 200, 'OK', ['Keep-Alive', 'timeout=5', 'X-Canned', 'one', 'Transfer-Encoding', 'chunked'], false, true],
  ['body', 'hello'],
  ['complete'],
  ['head', 404, 'Not Found', ['Content-Length', '3'], false, true],
  ['body', 'bye'],
  ['complete'],
]);

const METHODS = ['initialize', 'execute', 'finish', 'consume', 'unconsume', 'close'] as const;

/** Undefined when the native client can run on this Node; else why not. */
export function checkNativeParser(): string | undefined {
  try {
    const HTTPParser = loadHttpParser();
    for (const key of ['RESPONSE', 'kOnHeaders', 'kOnHeadersComplete', 'kOnBody', 'kOnMessageComplete', 'kOnExecute'] as const) {
      if (typeof HTTPParser[key] !== 'number') return `HTTPParser.${key} is not a number`;
    }
    for (const name of METHODS) {
      if (typeof (HTTPParser.prototype as Record<string, unknown>)[name] !== 'function') return `HTTPParser has no ${name}()`;
    }
    const seen: unknown[] = [];
    const parser: NativeParser = new HTTPParser();
    parser.initialize(HTTPParser.RESPONSE, {}, 0, 0);
    const onHeadersComplete: OnHeadersComplete = (_major, _minor, headers, _method, _url, statusCode, statusMessage, upgrade, shouldKeepAlive) => {
      seen.push(['head', statusCode, statusMessage, headers, upgrade, shouldKeepAlive]);
      return 0;
    };
    const onBody: OnBody = (chunk) => void seen.push(['body', Buffer.isBuffer(chunk) ? chunk.toString('latin1') : typeof chunk]);
    const onComplete: OnMessageComplete = () => void seen.push(['complete']);
    parser[HTTPParser.kOnHeaders] = () => void seen.push(['early headers']);
    parser[HTTPParser.kOnHeadersComplete] = onHeadersComplete;
    parser[HTTPParser.kOnBody] = onBody;
    parser[HTTPParser.kOnMessageComplete] = onComplete;
    const ret = parser.execute(CANNED);
    parser.close();
    if (ret instanceof Error) return `the canned answer did not parse: ${ret.message}`;
    if (ret !== CANNED.length) return `execute() returned ${String(ret)}, not ${CANNED.length}`;
    const got = JSON.stringify(seen);
    if (got !== EXPECTED) return `the canned answer parsed as ${got}`;
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}
