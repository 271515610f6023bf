/**
 * One timer for every served certificate: it fires at the earliest notAfter, when the syncer
 * takes the expired certificates out (TableSync.expireCertificates), so that a running router
 * holds what a router started afterwards holds (docs/CONTRACT.md, "Certificate expiry").
 * Adding a certificate can only bring the time forward; a removed one leaves the timer as it is
 * (it fires, finds nothing due, and is set again to the earliest notAfter then served).
 */

/** setTimeout's longest delay; a later notAfter is reached in steps. */
const MAX_DELAY_MS = 2 ** 31 - 1;

export class CertExpiryTimer {
  private timer: NodeJS.Timeout | undefined;
  private at = Infinity;

  constructor(
    private readonly now: () => number,
    private readonly onDue: () => void,
  ) {}

  /** A certificate with this notAfter is now served. */
  served(notAfter: number): void {
    if (notAfter < this.at) this.arm(notAfter);
  }

  /** Fires at `at` (ms since the epoch); Infinity: never. */
  arm(at: number): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.at = at;
    if (at === Infinity) return;
    // Node's timers run on a monotonic clock and may fire a millisecond before the wall clock
    // says `at`: onDue then finds nothing due yet and arms again.
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.at = Infinity;
      this.onDue();
    }, Math.min(MAX_DELAY_MS, Math.max(0, at - this.now())));
    this.timer.unref();
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.at = -Infinity;
  }
}
