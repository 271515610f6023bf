/**
 * The fleet's ACME client (docs/CONTRACT.md, "Automatic HTTPS"): every router started with
 * --acme-directory runs one, and they behave as one client through etcd.
 *
 * - Which hosts: the exact route hosts of app records with `tls.acme`, unless the certificate TLS
 *   picks for the host comes from another source (an operator's record); wildcard hosts are
 *   skipped and reported (HTTP-01 cannot validate them).
 * - When: a host without an ACME certificate at once; one with, when a third of its lifetime is
 *   left (jittered: @paas/registry acme-schedule.ts); after a failure, not before the back-off in `acme/state/<host>`.
 * - Exactly one order per host: a lease-backed lock `acme/locks/<host>` created only if absent;
 *   its create revision fences every write made under it (a txn comparing it), and the host's
 *   state and certificate are read again once it is taken. A router that dies mid-order loses
 *   the lock with its lease; the next holder resumes the order from `orderUrl` in the state.
 * - The challenge's key authorization goes to `acme/challenges/<token>` on the lock's lease, so
 *   any router answers the CA (challenge-answers.ts) and a dead orderer's challenges vanish.
 * - The certificate goes to `certs/<host>` with `"source": "acme"` (its key encrypted with the key
 *   ring when there is one) and reaches every router through the ordinary certificate path; the
 *   last good one keeps serving until then.
 */
import { X509Certificate } from 'node:crypto';
import { Agent } from 'node:https';
import { backoffMs, encryptKey, parseAcmeHostState, parseCertRecord, renewalAt, type AcmeHostState, type CertRecord, type Etcd, type KeyLayout, type KeyRing, type Lock, type TxnOp } from '@paas/registry';
import { axios as acmeAxios, Client, crypto as acmeCrypto, type Order } from 'acme-client';
import type { Logger } from 'pino';
import type { RoutingTable } from '../table/routing-table.js';
import { loadAccountKey } from './account.js';
import { OrderSlots } from './order-slots.js';


export interface AcmeIssuerOptions {
  etcd: Etcd;
  layout: KeyLayout;
  log: Logger;
  routerId: string;
  directory: string;
  email: string;
  /** PEM of the CA(s) that signed the directory's TLS certificate (--acme-ca); default the system's. */
  caPem: string | undefined;
  keyRing: KeyRing;
  getTable(): RoutingTable;
  /** TTL of the host locks (and so the time a dead orderer holds a host): the router's --lease-ttl. */
  lockTtlSeconds: number;
  ordersPerMinute: number;
  /** The first back-off after a failure (doubling up to 64 times it). */
  retryBaseMs: number;
  metrics: AcmeMetricsSink;
}

export interface AcmeMetricsSink {
  order(result: 'issued' | 'failed'): void;
  /** Hosts whose certificate is missing or past its renewal point; seconds to the soonest ACME expiry (Infinity: none). */
  gauges(renewalsDue: number, soonestExpirySeconds: number): void;
}

/** One host as /status shows it. */
export interface AcmeHostReport {
  host: string;
  app: string;
  /** "acme", another source's name ("etcd"), or "none" (no certificate yet). */
  source: string;
  certificate: string | null;
  notAfter: string | null;
  nextRenewal: string | null;
  failures: number;
  lastError: string | null;
  lastErrorAt: string | null;
  nextAttemptAt: string | null;
  /** Why the fleet does not order for this host (a wildcard), or null. */
  skipped: string | null;
}

/** How often the hosts are looked over (in-memory) and the fleet's per-host state listed (one range read). */
const TICK_MS = 1000;
/** A host whose lock another router holds is looked at again after this. */
const BUSY_RETRY_MS = 2000;
/** No free order slot: the next try (the slots free up a minute after they were taken). */
const NO_SLOT_RETRY_MS = 5000;
/** acme-client's polling of a pending challenge or order. */
const POLL = { backoffAttempts: 12, backoffMin: 1000, backoffMax: 5000 };
/** One request to the CA. */
const CA_TIMEOUT_MS = 30_000;
/** /status lists at most this many hosts. */
const REPORT_MAX = 1000;

/** A fenced write found the lock gone: another router may hold the host now. */
class LockLostError extends Error {}
/** A resumed order turned out unusable and the fleet's order limit allows no new one now. */
class NoSlotError extends Error {}

interface Wanted {
  host: string;
  app: string;
  skipped: string | null;
}

export class AcmeIssuer {
  private client: Promise<Client> | undefined;
  private readonly slots: OrderSlots;
  private states = new Map<string, AcmeHostState>();
  /** Per host: not looked at by this router before (a lock held elsewhere, no slot). */
  private readonly localRetryAt = new Map<string, number>();
  /** Renewal points by certificate fingerprint (X509 parsing is not free). */
  private readonly renewals = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly locks = new Set<Lock>();
  /** Wildcard hosts already reported in the log (once each). */
  private readonly reportedSkips = new Set<string>();

  constructor(private readonly opts: AcmeIssuerOptions) {
    this.slots = new OrderSlots(opts.etcd, opts.layout, opts.ordersPerMinute, opts.routerId, opts.lockTtlSeconds);
    if (opts.caPem !== undefined) acmeAxios.defaults.httpsAgent = new Agent({ ca: opts.caPem, keepAlive: true });
    // axios waits forever by default: a CA that stops answering would hold the host's lock (kept alive) for good.
    acmeAxios.defaults.timeout = CA_TIMEOUT_MS;
  }

  start(): void {
    this.schedule(0);
  }

  /**
   * Gives up this router's hosts at once: an order in progress is not waited for (the CA may take
   * a minute); releasing its lock makes its remaining writes fail, and the next router resumes
   * the order from its state.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.slots.close();
    await Promise.all([...this.locks].map((l) => l.release().catch(() => undefined)));
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.tick().catch((err: Error) => {
        // After stop() the etcd client closes under a check still running: nothing to report.
        if (!this.stopped) this.opts.log.warn({ err: err.message }, 'acme: check failed');
      }).finally(() => this.schedule(TICK_MS));
    }, ms);
    this.timer.unref();
  }

  /** The hosts the fleet orders for, from the table (app records with tls.acme). */
  private wanted(): Wanted[] {
    const out: Wanted[] = [];
    const seen = new Set<string>();
    for (const pool of this.opts.getTable().pools()) {
      if (pool.record?.tls?.acme !== true) continue;
      for (const route of pool.record.routes) {
        const host = route.host;
        if (host === undefined || seen.has(host)) continue;
        seen.add(host);
        out.push({ host, app: pool.name, skipped: host.startsWith('*.') ? 'wildcard host: HTTP-01 cannot validate it' : null });
      }
    }
    return out.sort((a, b) => (a.host < b.host ? -1 : 1));
  }

  private renewalOf(fingerprint: string, certPem: string, notAfter: number): number {
    let at = this.renewals.get(fingerprint);
    if (at === undefined) {
      const notBefore = Date.parse(new X509Certificate(certPem).validFrom);
      at = renewalAt(notBefore, notAfter, fingerprint);
      this.renewals.set(fingerprint, at);
    }
    return at;
  }

  private async tick(): Promise<void> {
    const wanted = this.wanted();
    const wantedHosts = new Set(wanted.map((w) => w.host));
    for (const host of this.localRetryAt.keys()) if (!wantedHosts.has(host)) this.localRetryAt.delete(host);
    for (const w of wanted) {
      if (w.skipped === null || this.reportedSkips.has(w.host)) continue;
      this.reportedSkips.add(w.host);
      this.opts.log.warn({ host: w.host, app: w.app, reason: w.skipped }, 'acme: host skipped');
    }
    if (!wanted.some((w) => w.skipped === null)) {
      // No app asks for ACME: no etcd traffic at all.
      this.states = new Map();
      this.opts.metrics.gauges(0, Infinity);
      return;
    }
    const { entries } = await this.opts.etcd.listPrefix(this.opts.layout.acmeStatesDir);
    const states = new Map<string, AcmeHostState>();
    for (const e of entries) {
      const st = parseAcmeHostState(e.value);
      if (st.ok) states.set(e.key.slice(this.opts.layout.acmeStatesDir.length), st.value);
    }
    this.states = states;

    const now = Date.now();
    const table = this.opts.getTable();
    const due: string[] = [];
    let renewalsDue = 0;
    let soonest = Infinity;
    const fingerprints = new Set<string>();
    for (const w of wanted) {
      if (w.skipped !== null) continue;
      const served = table.certs.forHost(w.host);
      if (served !== undefined && served.source !== 'acme') continue;
      const mine = table.certs.get(w.host);
      let renewAt = now;
      if (mine !== undefined && mine.source === 'acme') {
        fingerprints.add(mine.fingerprint);
        renewAt = this.renewalOf(mine.fingerprint, mine.certPem, mine.notAfter);
        soonest = Math.min(soonest, (mine.notAfter - now) / 1000);
      }
      if (renewAt > now) continue;
      renewalsDue++;
      const backoffUntil = Date.parse(states.get(w.host)?.nextAttemptAt ?? '') || 0;
      if (backoffUntil <= now && (this.localRetryAt.get(w.host) ?? 0) <= now) due.push(w.host);
    }
    for (const f of this.renewals.keys()) if (!fingerprints.has(f)) this.renewals.delete(f);
    this.opts.metrics.gauges(renewalsDue, soonest);
    for (const host of due) {
      if (this.stopped) return;
      await this.attempt(host);
    }
  }

  /** One try at a due host: the lock, the state read again, a slot, then the order. */
  private async attempt(host: string): Promise<void> {
    const { etcd, layout } = this.opts;
    const lockKey = layout.acmeLock(host);
    // A get first: a busy host costs one read, not a lease grant, a txn and a revoke.
    if ((await etcd.get(lockKey)) !== undefined) return this.retryLater(host, BUSY_RETRY_MS);
    const res = await etcd.tryLock(lockKey, this.opts.routerId, this.opts.lockTtlSeconds);
    if (!res.ok) return this.retryLater(host, BUSY_RETRY_MS);
    const lock = res.lock;
    this.locks.add(lock);
    try {
      await this.attemptLocked(host, lock);
    } finally {
      this.locks.delete(lock);
      await lock.release().catch(() => undefined);
    }
  }

  /** Under the host's lock: the state read again, a slot, then the order and its outcome recorded. */
  private async attemptLocked(host: string, lock: Lock): Promise<void> {
    const { etcd, layout, log } = this.opts;
    let state: AcmeHostState = { failures: 0 };
    try {
      const [stEntry, certEntry] = await Promise.all([etcd.get(layout.acmeState(host)), etcd.get(layout.cert(host))]);
      if (stEntry !== undefined) {
        const st = parseAcmeHostState(stEntry.value);
        if (st.ok) state = st.value;
      }
      const now = Date.now();
      // Another router failed (back-off) or issued while this one looked: nothing to do.
      if ((Date.parse(state.nextAttemptAt ?? '') || 0) > now) return;
      if (certEntry !== undefined) {
        const cert = parseCertRecord(certEntry.value, { keyRing: this.opts.keyRing, now: Date.now });
        if (cert.ok && (cert.value.source !== 'acme' || this.renewalOf(cert.value.fingerprint, cert.value.certPem, cert.value.notAfter) > now)) return;
      }
      // Resuming an order costs no slot: it was counted when it was created.
      if (state.orderUrl === undefined && !(await this.slots.take())) return this.noSlot(host);
    } catch (err) {
      // etcd, not the CA: no order was tried, so no back-off is recorded.
      log.warn({ host, err: (err as Error).message }, 'acme: could not read the host\'s state');
      return this.retryLater(host, BUSY_RETRY_MS);
    }
    try {
      const started = Date.now();
      const issued = await this.order(host, lock, state);
      this.opts.metrics.order('issued');
      log.info({ host, notAfter: new Date(issued.notAfter).toISOString(), ms: Date.now() - started, fencingToken: lock.revision.toString() }, 'acme: certificate issued');
    } catch (err) {
      if (err instanceof NoSlotError) return this.noSlot(host);
      if (err instanceof LockLostError || this.stopped) {
        log.warn({ host, err: (err as Error).message }, 'acme: order cut short (lock lost or stopping)');
        return;
      }
      const message = acmeErrorMessage(err);
      const failures = state.failures + 1;
      const next = new Date(Date.now() + backoffMs(failures, this.opts.retryBaseMs));
      this.opts.metrics.order('failed');
      log.warn({ host, failures, nextAttemptAt: next.toISOString(), err: message }, 'acme: order failed');
      // A failed order is not resumed: the next attempt starts a new one.
      const failed: AcmeHostState = { failures, lastError: message, lastErrorAt: new Date().toISOString(), nextAttemptAt: next.toISOString(), orderedBy: this.opts.routerId };
      if (state.issuedAt !== undefined) failed.issuedAt = state.issuedAt;
      await this.fenced(host, lock, [{ put: layout.acmeState(host), value: JSON.stringify(failed) }]).catch((e: Error) => log.warn({ host, err: e.message }, 'acme: could not record the failure'));
    }
  }

  private noSlot(host: string): void {
    this.opts.log.info({ host, perMinute: this.opts.ordersPerMinute }, 'acme: fleet-wide order limit reached, waiting');
    this.retryLater(host, NO_SLOT_RETRY_MS);
  }

  private retryLater(host: string, ms: number): void {
    this.localRetryAt.set(host, Date.now() + ms);
  }

  /** Writes under the lock: applied only while `lock` is still the key's holder (its create revision). */
  private async fenced(host: string, lock: Lock, ops: TxnOp[]): Promise<void> {
    const res = await this.opts.etcd.txn([{ key: this.opts.layout.acmeLock(host), target: 'create', op: '=', value: lock.revision }], ops);
    if (!res.succeeded) throw new LockLostError('the host lock is no longer ours');
  }

  private acme(): Promise<Client> {
    this.client ??= (async () => {
      const accountKey = await loadAccountKey({ etcd: this.opts.etcd, layout: this.opts.layout, directory: this.opts.directory, email: this.opts.email, keyRing: this.opts.keyRing });
      const client = new Client({ directoryUrl: this.opts.directory, accountKey, ...POLL });
      await client.createAccount({ termsOfServiceAgreed: true, contact: [`mailto:${this.opts.email}`] });
      return client;
    })();
    // A failure (CA unreachable) is tried again at the next order.
    this.client.catch(() => (this.client = undefined));
    return this.client;
  }

  /** Resumes the host's order when its state names one still usable, else creates one; returns the record written. */
  private async order(host: string, lock: Lock, state: AcmeHostState): Promise<{ notAfter: number }> {
    const { layout, log } = this.opts;
    const client = await this.acme();
    let order: Order | undefined;
    if (state.orderUrl !== undefined) {
      order = await client.getOrder({ url: state.orderUrl } as Order).catch(() => undefined);
      // Finalized by the router that died: its certificate key died with it.
      if (order !== undefined && order.status !== 'pending' && order.status !== 'ready') order = undefined;
      if (order !== undefined) log.info({ host, order: state.orderUrl, status: order.status, by: state.orderedBy }, 'acme: resuming the order of a router that stopped');
    }
    if (order === undefined) {
      if (state.orderUrl !== undefined && !(await this.slots.take())) throw new NoSlotError('no free order slot');
      order = await client.createOrder({ identifiers: [{ type: 'dns', value: host }] });
      const pending: AcmeHostState = { ...state, orderUrl: order.url, orderedBy: this.opts.routerId };
      await this.fenced(host, lock, [{ put: layout.acmeState(host), value: JSON.stringify(pending) }]);
      log.info({ host, order: order.url }, 'acme: order created');
    }
    const tokens: string[] = [];
    try {
      if (order.status === 'pending') {
        for (const authz of await client.getAuthorizations(order)) {
          if (authz.status === 'valid') continue;
          const challenge = authz.challenges.find((c) => c.type === 'http-01');
          if (challenge === undefined) throw new Error(`the CA offers no http-01 challenge for ${authz.identifier.value}`);
          const keyAuthorization = await client.getChallengeKeyAuthorization(challenge);
          const key = layout.acmeChallenge(challenge.token);
          await this.fenced(host, lock, [{ put: key, value: JSON.stringify({ host, keyAuthorization }), lease: lock.lease }]);
          tokens.push(key);
          log.info({ host, token: challenge.token }, 'acme: challenge published');
          if (challenge.status === 'pending') await client.completeChallenge(challenge);
          await client.waitForValidStatus(authz);
        }
      }
      const [keyPem, csr] = await acmeCrypto.createCsr({ altNames: [host] }, await acmeCrypto.createPrivateEcdsaKey('P-256'));
      if (order.status !== 'valid') order = await client.finalizeOrder(order, csr);
      const certPem = await client.getCertificate(order);
      return await this.store(host, lock, certPem, keyPem.toString());
    } finally {
      for (const key of tokens) await this.opts.etcd.delete(key).catch(() => undefined);
    }
  }

  /** Writes the certificate and the host's fresh state in one fenced transaction. */
  private async store(host: string, lock: Lock, certPem: string, keyPem: string): Promise<{ notAfter: number }> {
    const firstKid = this.opts.keyRing.keys().next();
    const rec: CertRecord = firstKid.done ? { cert: certPem, key: keyPem, source: 'acme' } : { cert: certPem, keyEnc: encryptKey(keyPem, firstKid.value, this.opts.keyRing), source: 'acme' };
    const value = JSON.stringify(rec);
    // Judged as every router will judge it: a record routers would reject is never written.
    const judged = parseCertRecord(value, { keyRing: this.opts.keyRing, now: Date.now });
    if (!judged.ok) throw new Error(`the CA's certificate would be rejected: ${judged.error}`);
    const done: AcmeHostState = { failures: 0, issuedAt: new Date().toISOString(), orderedBy: this.opts.routerId };
    await this.fenced(host, lock, [
      { put: this.opts.layout.cert(host), value },
      { put: this.opts.layout.acmeState(host), value: JSON.stringify(done) },
    ]);
    return { notAfter: judged.value.notAfter };
  }

  /** Per host, for /status: source, notAfter, next renewal, last error (at most REPORT_MAX, by host). */
  report(): { directory: string; hosts: AcmeHostReport[]; hostsCount: number } {
    const table = this.opts.getTable();
    const hosts: AcmeHostReport[] = [];
    const wanted = this.wanted();
    for (const w of wanted.slice(0, REPORT_MAX)) {
      const served = w.skipped === null ? table.certs.forHost(w.host) : undefined;
      const st = this.states.get(w.host);
      const acme = served?.source === 'acme';
      hosts.push({
        host: w.host,
        app: w.app,
        source: served === undefined ? 'none' : (served.source ?? 'etcd'),
        certificate: served?.name ?? null,
        notAfter: served === undefined ? null : new Date(served.notAfter).toISOString(),
        nextRenewal: w.skipped !== null || (served !== undefined && !acme) ? null : new Date(served === undefined ? Date.now() : this.renewalOf(served.fingerprint, served.certPem, served.notAfter)).toISOString(),
        failures: st?.failures ?? 0,
        lastError: st?.lastError ?? null,
        lastErrorAt: st?.lastErrorAt ?? null,
        nextAttemptAt: st?.nextAttemptAt ?? null,
        skipped: w.skipped,
      });
    }
    return { directory: this.opts.directory, hosts, hostsCount: wanted.length };
  }
}

/** acme-client puts the CA's problem detail in the message; bounded for the state record. */
function acmeErrorMessage(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.length > 2000 ? `${msg.slice(0, 2000)}…` : msg;
}
