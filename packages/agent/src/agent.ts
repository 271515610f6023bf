/**
 * The agent: `--sessions` session slots (link.ts) to every live router. The routers given on the
 * command line are kept for good; the others are learnt from each router's Welcome (every live
 * router's tunnel address), and a learnt router is let go once its slots cannot connect and the
 * latest Welcome no longer names it (it was stopped or replaced).
 */
import type { Logger } from 'pino';
import type { TunnelWelcome } from '@paas/registry';
import { parseRouterUrl, type AgentConfig, type RouterAddress } from './config.js';
import { Link } from './link.js';

export interface AgentEvents {
  /** A router refused this agent (bad, expired, revoked or foreign token...): the reason. */
  refused(router: string, error: string): void;
}

interface RouterSlots {
  router: RouterAddress;
  links: Link[];
  /** Given on the command line: never let go. */
  given: boolean;
}

export class Agent {
  private readonly routers = new Map<string, RouterSlots>();
  /** The routers the latest Welcome named. */
  private live = new Set<string>();
  private stopping = false;

  constructor(
    private readonly config: AgentConfig,
    private readonly log: Logger,
    private readonly events: AgentEvents,
  ) {}

  start(): void {
    for (const r of this.config.routers) this.add(r, true);
  }

  /** Sessions open now, by router URL. */
  sessions(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [url, r] of this.routers) out[url] = r.links.filter((l) => l.open).length;
    return out;
  }

  private add(router: RouterAddress, given: boolean): void {
    if (this.routers.has(router.url) || this.stopping) return;
    const slots: RouterSlots = { router, links: [], given };
    this.routers.set(router.url, slots);
    for (let i = 0; i < this.config.sessions; i++) {
      const link = new Link(router, this.config, this.log, {
        welcomed: (l, welcome) => {
          for (const other of slots.links) if (other !== l) other.retrySoon();
          this.learn(welcome);
        },
        refused: (_l, error) => this.events.refused(router.url, error),
        lost: () => this.maybeForget(slots),
      });
      slots.links.push(link);
      link.start();
    }
    this.log.info({ router: router.url, sessions: this.config.sessions, given }, 'serving through router');
  }

  private learn(welcome: TunnelWelcome): void {
    const live = new Set<string>();
    for (const url of welcome.routers) {
      let r: RouterAddress;
      try {
        r = parseRouterUrl(url, 'router list');
      } catch {
        continue;
      }
      live.add(r.url);
      this.add(r, false);
    }
    this.live = live;
  }

  private maybeForget(slots: RouterSlots): void {
    if (slots.given || this.live.has(slots.router.url) || slots.links.some((l) => l.open)) return;
    this.routers.delete(slots.router.url);
    for (const l of slots.links) l.cut();
    this.log.info({ router: slots.router.url }, 'router no longer live: not reconnecting to it');
  }

  /** SIGTERM: no new streams anywhere; resolves once the open ones finished (or timeoutMs passed, then cuts). */
  async drain(timeoutMs: number): Promise<boolean> {
    this.stopping = true;
    const links = [...this.routers.values()].flatMap((r) => r.links);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const done = await Promise.race([Promise.all(links.map((l) => l.drain())).then(() => true), timedOut]);
    clearTimeout(timer);
    if (!done) for (const l of links) l.cut();
    return done;
  }

  stop(): void {
    this.stopping = true;
    for (const r of this.routers.values()) for (const l of r.links) l.cut();
  }
}
