/**
 * Everything the walkthrough test changes in the README's commands, and nothing else:
 *
 * - STEPS_DONE: whole commands the suite has already done, dropped (each must still be in the
 *   README, once, or the test fails: the table cannot go stale);
 * - every loopback port the commands name (`127.0.0.1:PORT`, `--port PORT`) becomes a free port,
 *   the same one wherever the README repeats it; etcd's 2379 becomes the test etcd's address;
 * - the key prefix `/paas` becomes a prefix of this run's own, so a shared etcd is safe.
 *
 * Output is mapped back (`reverse`) before it is compared with what the README shows.
 */
import { freePorts } from '../../harness/ports.js';

export interface DoneStep {
  /** Matches the whole command as the README writes it. */
  readonly readme: RegExp;
  readonly why: string;
}

export const STEPS_DONE: readonly DoneStep[] = [
  { readme: /^make build$/, why: 'the suite runs the built packages (make test builds them first)' },
  {
    readme: /^etcd (?:.*\\\n)*.*&$/,
    why: "the harness's etcd serves at the address the README gives its etcd (its own data dir and peer port stay the harness's)",
  },
];

const README_ETCD_PORT = 2379;
const LOOPBACK_PORT = /127\.0\.0\.1:(\d+)/g;
const PORT_FLAG = /--port (\d+)/g;
/** host:port in output, whole (41234 is not 4123 followed by a 4). */
const HOST_PORT = /[\w.-]+:\d+(?!\d)/g;
const README_PREFIX = '/paas';
/** `/paas` as a key prefix: a path of its own, not the end of another word or path. */
const PREFIX_USE = /(?<![\w./-])\/paas(?=[/\s'"]|$)/g;

export class Substitutions {
  private constructor(
    /** README port -> host:port used in its place. */
    private readonly addresses: ReadonlyMap<number, string>,
    private readonly prefix: string,
  ) {}

  /**
   * Free ports for every port named in `commands`; `etcdEndpoint` (http://host:port) takes the
   * README's 2379, `prefix` the README's /paas.
   */
  static async create(commands: readonly string[], etcdEndpoint: string, prefix: string): Promise<Substitutions> {
    const named = new Set<number>();
    for (const text of commands) {
      for (const m of text.matchAll(LOOPBACK_PORT)) named.add(Number(m[1]));
      for (const m of text.matchAll(PORT_FLAG)) named.add(Number(m[1]));
    }
    named.delete(README_ETCD_PORT);
    const free = await freePorts(named.size);
    const addresses = new Map<number, string>([[README_ETCD_PORT, new URL(etcdEndpoint).host]]);
    [...named].forEach((port, i) => addresses.set(port, `127.0.0.1:${free[i]!}`));
    return new Substitutions(addresses, prefix);
  }

  /** A README command as the test runs it. */
  apply(text: string): string {
    return text
      .replace(LOOPBACK_PORT, (_, port: string) => this.address(Number(port)))
      .replace(PORT_FLAG, (_, port: string) => `--port ${this.address(Number(port)).split(':').at(-1)!}`)
      .replace(PREFIX_USE, this.prefix);
  }

  /** Output of a command as the README would show it. */
  reverse(text: string): string {
    const readmePort = new Map([...this.addresses].map(([port, address]) => [address, port]));
    return text
      .replaceAll(this.prefix, README_PREFIX)
      .replace(HOST_PORT, (address) => (readmePort.has(address) ? `127.0.0.1:${readmePort.get(address)!}` : address));
  }

  private address(port: number): string {
    const address = this.addresses.get(port);
    if (address === undefined) throw new Error(`port ${port} was not among the walkthrough's ports`);
    return address;
  }
}
