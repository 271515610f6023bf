/**
 * A 3-member etcd cluster on loopback for tests that stop, kill, restart or partition members.
 *
 * Peer traffic goes through one forwarder per member (the member advertises the forwarder's
 * port as its peer URL), so the test can partition a member from its peers while its clients
 * stay connected. etcd's peer links are plain HTTP/1.1 and each connection comes from one
 * member: the first request of a connection says which one (rafthttp's X-Server-From header on
 * every /raft request). isolate(i) then drops every connection into member i and every raft
 * connection from it, both ways, like a network partition. Non-raft peer requests (lease renewals
 * forwarded to the leader, version checks) carry no such header and are let through to the
 * other members: they carry no raft messages.
 *
 * Timing: --heartbeat-interval 100 --election-timeout 500 by default, so a member cut off from
 * its leader gives up on it after ~0.5-1 s and etcd cancels its require-leader watch streams
 * after 3 more election timeouts (etcd's monitorLeader): ~2-2.5 s. With etcd's production
 * defaults (100 ms / 1000 ms) that is ~4-5 s.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { runEtcdctl } from './etcd.js';
import { EtcdServerProcess } from './etcd-process.js';
import { freePorts } from './ports.js';
import { waitFor } from './wait.js';

export interface EtcdClusterOptions {
  /** Members (default 3). */
  size?: number;
  heartbeatMs?: number;
  electionMs?: number;
  /** More etcd flags for every member, e.g. ['--experimental-watch-progress-notify-interval=1s']. */
  extraArgs?: string[];
  /** How long to wait for the cluster to be healthy (default 30 000 ms). */
  startTimeoutMs?: number;
}

export interface EtcdMember {
  readonly index: number;
  readonly name: string;
  /** http://127.0.0.1:<client port>: the same after restart(). */
  readonly clientUrl: string;
  readonly pid: number | undefined;
  readonly running: boolean;
  /** SIGTERM (SIGKILL after 10 s); resolves once exited. */
  stop(): Promise<void>;
  /** SIGKILL (or `signal`); resolves once exited, except SIGSTOP/SIGCONT. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same ports and data; resolves once it answers /health with a leader. */
  start(): Promise<void>;
  /** User+system CPU seconds of every process this member ran so far. */
  cpuSeconds(): number;
}

export interface EtcdCluster {
  /** Client URLs of all members, in member order. */
  readonly endpoints: string[];
  readonly members: EtcdMember[];
  /** The index of the member that is leader, asked of the running members; undefined if none says so. */
  leader(): Promise<number | undefined>;
  /** The leader's index, once there is one. */
  waitLeader(timeoutMs?: number): Promise<number>;
  /** Cuts member i off its peers, both ways, until heal(i). Its clients stay connected. */
  isolate(index: number): void;
  heal(index: number): void;
  /** Resolves once every running member reports the same leader and /health is true on all of them. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** etcdctl (v3) against the running members (or `endpoints`). */
  etcdctl(args: string[], endpoints?: string[]): Promise<string>;
  /** Stops every member and forwarder, deletes the data dirs. */
  cleanup(): Promise<void>;
}


const CLOCK_TICKS = 100; // USER_HZ on Linux

/** CPU seconds of a running process from /proc/<pid>/stat (utime + stime). */
function processCpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

/** One forwarded connection: `from` is the sending member's id (X-Server-From), `raft` a /raft request. */
interface Link {
  client: net.Socket;
  upstream: net.Socket | undefined;
  from: string | undefined;
  raft: boolean;
}

/** Forwards connections to one member's peer port; drops those the partition rules refuse. */
class PeerForwarder {
  readonly links = new Set<Link>();
  private server: net.Server | undefined;

  constructor(
    readonly port: number,
    private readonly targetPort: number,
    /** Whether a connection into this member, from `from` (undefined: unknown), may pass now. */
    private readonly allowed: (from: string | undefined, raft: boolean) => boolean,
  ) {}

  listen(): Promise<void> {
    this.server = net.createServer((client) => this.accept(client));
    return new Promise((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.port, '127.0.0.1', () => resolve());
    });
  }

  /** Drops the connections the rules refuse now. */
  enforce(): void {
    for (const link of this.links) if (!this.allowed(link.from, link.raft)) this.drop(link);
  }

  close(): Promise<void> {
    for (const link of this.links) this.drop(link);
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private accept(client: net.Socket): void {
    const link: Link = { client, upstream: undefined, from: undefined, raft: false };
    this.links.add(link);
    client.on('error', () => this.drop(link)).on('close', () => this.drop(link));
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0 && head.length < 16_384) return;
      client.off('data', onData);
      client.pause();
      const text = head.subarray(0, end < 0 ? head.length : end).toString('latin1');
      const requestLine = text.slice(0, text.indexOf('\r\n'));
      link.raft = / \/raft/.test(requestLine);
      link.from = /\r\nx-server-from: *([0-9a-f]+)/i.exec(text)?.[1]?.toLowerCase();
      if (!this.allowed(link.from, link.raft)) return this.drop(link);
      const upstream = net.connect({ host: '127.0.0.1', port: this.targetPort });
      link.upstream = upstream;
      upstream.on('error', () => this.drop(link)).on('close', () => this.drop(link));
      upstream.write(head);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    };
    client.on('data', onData);
  }

  private drop(link: Link): void {
    if (!this.links.delete(link)) return;
    link.client.destroy();
    link.upstream?.destroy();
  }
}

class Member implements EtcdMember {
  private readonly server: EtcdServerProcess;
  private cpuOfEarlier = 0;

  constructor(
    readonly index: number,
    readonly name: string,
    etcdBin: string,
    private readonly args: string[],
    readonly clientUrl: string,
  ) {
    this.server = new EtcdServerProcess(`etcd member ${name}`, etcdBin);
  }

  get pid(): number | undefined {
    return this.server.pid;
  }

  get running(): boolean {
    return this.server.running;
  }

  cpuSeconds(): number {
    return this.cpuOfEarlier + processCpuSeconds(this.server.pid);
  }

  /** Spawns the member; resolves once its /health answers (with or without a leader). */
  async spawn(): Promise<void> {
    const exitedEarly = this.server.spawn(this.args);
    await waitFor(
      async () => {
        const res = await fetch(`${this.clientUrl}/health`, { signal: AbortSignal.timeout(1_000) });
        await res.body?.cancel();
        return true;
      },
      { timeoutMs: 20_000, intervalMs: 25, message: `etcd member ${this.name} to answer /health`, signal: exitedEarly },
    );
  }

  async start(): Promise<void> {
    if (this.server.running) return;
    await this.spawn();
    await waitFor(() => hasLeader(this.clientUrl), { timeoutMs: 20_000, intervalMs: 25, message: `etcd member ${this.name} to have a leader` });
  }

  stop(): Promise<void> {
    this.cpuOfEarlier += processCpuSeconds(this.server.pid);
    return this.server.stop();
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (signal !== 'SIGSTOP' && signal !== 'SIGCONT') this.cpuOfEarlier += processCpuSeconds(this.server.pid);
    return this.server.kill(signal);
  }
}

/** /health is true only while the member has a leader and answers a linearizable read. */
async function hasLeader(clientUrl: string): Promise<boolean> {
  const res = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(2_000) });
  return res.ok && ((await res.json()) as { health?: string }).health === 'true';
}

export async function startEtcdCluster(opts: EtcdClusterOptions = {}): Promise<EtcdCluster> {
  const size = opts.size ?? 3;
  const dataRoot = await mkdtemp(path.join(os.tmpdir(), 'paas-etcd-cluster-'));
  const ports = await freePorts(size * 3);
  const clientPorts = ports.slice(0, size);
  const peerPorts = ports.slice(size, 2 * size);
  const forwardPorts = ports.slice(2 * size);
  const names = Array.from({ length: size }, (_, i) => `m${i}`);
  const initialCluster = names.map((n, i) => `${n}=http://127.0.0.1:${forwardPorts[i]}`).join(',');
  const token = `paas-test-${process.pid}-${Date.now()}`;

  // Member ids (hex, as in X-Server-From) by index, learnt once the cluster is up.
  const ids: (string | undefined)[] = new Array(size).fill(undefined);
  const isolated = new Set<number>();
  const forwarders = forwardPorts.map(
    (port, to) =>
      new PeerForwarder(port, peerPorts[to]!, (from, raft) => {
        if (isolated.has(to)) return false;
        if (!raft) return true;
        if (isolated.size === 0) return true;
        // While someone is isolated, a raft connection must say who it is from.
        const fromIndex = from === undefined ? -1 : ids.indexOf(from);
        return fromIndex >= 0 && !isolated.has(fromIndex);
      }),
  );
  await Promise.all(forwarders.map((f) => f.listen()));

  const members = names.map((name, i) => {
    const clientUrl = `http://127.0.0.1:${clientPorts[i]}`;
    const args = [
      '--name', name,
      '--data-dir', path.join(dataRoot, name),
      '--listen-client-urls', clientUrl,
      '--advertise-client-urls', clientUrl,
      '--listen-peer-urls', `http://127.0.0.1:${peerPorts[i]}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${forwardPorts[i]}`,
      '--initial-cluster', initialCluster,
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', token,
      '--heartbeat-interval', String(opts.heartbeatMs ?? 100),
      '--election-timeout', String(opts.electionMs ?? 500),
      '--logger', 'zap',
      '--log-level', 'error',
      ...(opts.extraArgs ?? []),
    ];
    return new Member(i, name, 'etcd', args, clientUrl);
  });
  const endpoints = members.map((m) => m.clientUrl);
  const running = () => members.filter((m) => m.running).map((m) => m.clientUrl);

  const cluster: EtcdCluster = {
    endpoints,
    members,
    async leader() {
      const statuses = await Promise.all(
        members.filter((m) => m.running).map(async (m) => {
          try {
            // Simple output: endpoint, id, version, db size, is leader, is learner, raft term, ...
            const line = (await runEtcdctl([m.clientUrl], ['endpoint', 'status'], 5_000)).trim();
            return { index: m.index, leader: line.split(',').map((s) => s.trim())[4] === 'true' };
          } catch {
            return { index: m.index, leader: false };
          }
        }),
      );
      return statuses.find((s) => s.leader)?.index;
    },
    async waitLeader(timeoutMs = 10_000) {
      const found = await waitFor(async () => {
        const index = await cluster.leader();
        return index === undefined ? undefined : { index };
      }, { timeoutMs, message: 'an etcd leader' });
      return found.index;
    },
    isolate(index) {
      isolated.add(index);
      for (const f of forwarders) f.enforce();
    },
    heal(index) {
      isolated.delete(index);
    },
    async waitHealthy(timeoutMs = 20_000) {
      await waitFor(
        async () => {
          const up = members.filter((m) => m.running);
          for (const m of up) if (!(await hasLeader(m.clientUrl))) return false;
          return (await cluster.leader()) !== undefined;
        },
        { timeoutMs, intervalMs: 50, message: 'every running etcd member to have the same leader' },
      );
    },
    etcdctl(args, eps) {
      return runEtcdctl(eps ?? running(), args);
    },
    async cleanup() {
      await Promise.all(members.map((m) => m.stop()));
      await Promise.all(forwarders.map((f) => f.close()));
      await rm(dataRoot, { recursive: true, force: true });
    },
  };

  try {
    // Members of a new cluster wait for each other: spawn all, then wait for a leader.
    await Promise.all(members.map((m) => m.spawn()));
    await cluster.waitHealthy(opts.startTimeoutMs ?? 30_000);
    // "<hex id>, started, <name>, <peer urls>, <client urls>, <is learner>"
    const list = await runEtcdctl(endpoints, ['member', 'list']);
    for (const line of list.trim().split('\n')) {
      const [id, , name] = line.split(',').map((s) => s.trim());
      const i = names.indexOf(name!);
      if (i >= 0) ids[i] = id!.toLowerCase();
    }
    if (ids.some((id) => id === undefined)) throw new Error(`etcdctl member list did not name every member:\n${list}`);
  } catch (err) {
    await cluster.cleanup();
    throw err;
  }
  return cluster;
}
