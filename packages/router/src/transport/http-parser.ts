/**
 * Node's own llhttp binding, the one its http client and server parse with (lib/_http_common.js,
 * lib/_http_client.js, lib/_http_server.js). Native: no JavaScript tokenizing, and with consume()
 * it reads the socket itself; undici parses with llhttp compiled to wasm and copies every read
 * into its memory. `node:_http_common` is internal (no warning when loaded); this is its shape on
 * Node 22 to 26: callbacks by index, header lists as flat latin1 string arrays, a body chunk as
 * one Buffer. It is loaded only when the native upstream client or the native client-side server
 * (listeners/h1-connection.ts) is chosen, after their start-up checks (native-check.ts,
 * listeners/client-parser.ts) parsed canned answers and requests with it;
 * test/upstream-client.test.ts and test/e2e/client-connections.test.ts exercise the callbacks.
 */
import { createRequire } from 'node:module';

export type OnHeaders = (this: NativeParser, headers: string[], url: string) => void;
export type OnHeadersComplete = (
  this: NativeParser,
  versionMajor: number,
  versionMinor: number,
  headers: string[] | undefined,
  method: number | undefined,
  url: string | undefined,
  statusCode: number,
  statusMessage: string,
  upgrade: boolean,
  shouldKeepAlive: boolean,
) => number;
export type OnBody = (this: NativeParser, chunk: Buffer) => void;
export type OnMessageComplete = (this: NativeParser) => void;
export type OnExecute = (this: NativeParser, ret: number | Error) => void;
export type OnMessageBegin = (this: NativeParser) => void;

/** A net.Socket's libuv TCP handle (`socket._handle`), as Node's http server drives it. */
export interface StreamHandle {
  /** Present on handles llhttp can read from directly (consume). */
  readonly _externalStream: unknown;
  reading: boolean;
  readStart(): number;
  readStop(): number;
}

export interface NativeParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  /** Bytes parsed, or the parse error (code HPE_*). */
  execute(data: Buffer): number | Error;
  /** End of input: completes a response delimited by the connection's close. */
  finish(): Error | undefined;
  /** Reads the handle in C++ from now on; results arrive through the kOnExecute callback. */
  consume(handle: StreamHandle): void;
  unconsume(): void;
  /** Inside kOnExecute: the bytes read from the handle that this execution parsed. */
  getCurrentBuffer(): Buffer;
  close(): void;
  [callback: number]: OnHeaders | OnHeadersComplete | OnBody | OnMessageComplete | OnExecute | OnMessageBegin;
}

export interface HttpParserClass {
  new (): NativeParser;
  RESPONSE: number;
  REQUEST: number;
  kOnMessageBegin: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
  kOnExecute: number;
}

let loaded: HttpParserClass | undefined;
let methodNames: string[] | undefined;

/** The internal module, as its shape may be on this Node. */
function httpCommon(): { HTTPParser?: HttpParserClass; methods?: string[] } {
  return createRequire(import.meta.url)('node:_http_common') as { HTTPParser?: HttpParserClass; methods?: string[] };
}

/** Node's HTTPParser; throws when this Node has no such internal module or export. */
export function loadHttpParser(): HttpParserClass {
  if (loaded === undefined) {
    const common = httpCommon();
    if (typeof common.HTTPParser !== 'function') throw new Error('node:_http_common has no HTTPParser');
    loaded = common.HTTPParser;
  }
  return loaded;
}

/**
 * The request method names of Node's llhttp by the number its head callback passes (llhttp's
 * enum, which has gaps: `methods` lists the names, not their numbers). Built by parsing a request
 * line per name; an unknown number means a method this Node cannot name.
 */
export function loadRequestMethods(): string[] {
  if (methodNames === undefined) {
    const common = httpCommon();
    if (!Array.isArray(common.methods)) throw new Error('node:_http_common has no methods');
    const HTTPParser = loadHttpParser();
    const names: string[] = [];
    for (const name of common.methods) {
      const parser = new HTTPParser();
      parser.initialize(HTTPParser.REQUEST, {}, 0, 0);
      let number = -1;
      const onHeadersComplete: OnHeadersComplete = (_major, _minor, _headers, method) => {
        number = method ?? -1;
        return 0;
      };
      parser[HTTPParser.kOnHeadersComplete] = onHeadersComplete;
      parser.execute(Buffer.from(`${name} / HTTP/1.1\r\nHost: a\r\n\r\n`, 'latin1'));
      parser.close();
      if (number >= 0) names[number] = name;
    }
    methodNames = names;
  }
  return methodNames;
}
