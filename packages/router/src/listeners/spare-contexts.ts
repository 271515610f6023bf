/**
 * Empty TLS contexts made ahead, off the handshake path, so that the first handshake for a
 * certificate only parses its PEM into one instead of building a whole context.
 *
 * Most of building a context is OpenSSL 3's `SSL_CTX_new` and Node's defaults on it (cipher
 * lists, curves, the root store), the same for every certificate; parsing the certificate and
 * key is the smaller part (figures in README, TLS benchmark). Node has no public call that puts a
 * certificate into an existing context, so this uses the native context's `setCert` and `setKey`:
 * the same calls, in the same order, that `tls.createSecureContext({ cert, key })` makes after
 * making the empty context. Where they are missing, or refuse a certificate that a whole build
 * accepts (a Node that changed them), spares stop and every context is built whole, as before.
 *
 * A spare taken is replaced on a later turn of the event loop, one per turn, so a burst of
 * handshakes for new hosts takes the spares first and then builds whole contexts, never waiting.
 */
import { createSecureContext, type SecureContext } from 'node:tls';

/** The native half of a SecureContext, as createSecureContext uses it. */
interface NativeContext {
  setCert(pem: string): void;
  setKey(pem: string, passphrase?: string): void;
}

function nativeOf(context: SecureContext): NativeContext | undefined {
  const native = context.context as Partial<NativeContext> | undefined;
  return typeof native?.setCert === 'function' && typeof native.setKey === 'function' ? (native as NativeContext) : undefined;
}

export class SpareContexts {
  private readonly ready: SecureContext[] = [];
  private refilling = false;
  /** False once this Node turned out to lack the native calls. */
  private usable = true;

  constructor(
    readonly target: number,
    /** Told once if this Node's native calls turn out not to work as expected (then no spares). */
    private readonly onUnusable?: (err: Error) => void,
  ) {
    this.refill();
  }

  /** Spares ready now. */
  get size(): number {
    return this.ready.length;
  }

  /**
   * A context holding `certPem` and `keyPem`, from a spare; undefined when none is ready. Throws
   * when Node refuses the certificate or key; the spare is dropped then (it may hold half of them).
   */
  fill(certPem: string, keyPem: string): SecureContext | undefined {
    const context = this.ready.pop();
    if (context === undefined) return undefined;
    this.refill();
    const native = context.context as NativeContext;
    try {
      // The key after the certificate, as createSecureContext does: OpenSSL checks it against it.
      native.setCert(certPem);
      native.setKey(keyPem);
    } catch (err) {
      // The certificate, or the native calls? A whole build tells: it throws for the certificate.
      // If it succeeds, this Node's calls differ from what this module expects: no more spares.
      const whole = createSecureContext({ cert: certPem, key: keyPem });
      this.usable = false;
      this.ready.length = 0;
      this.onUnusable?.(err as Error);
      return whole;
    }
    return context;
  }

  private refill(): void {
    if (this.refilling || !this.usable || this.ready.length >= this.target) return;
    this.refilling = true;
    setImmediate(() => {
      this.refilling = false;
      if (!this.usable) return;
      const context = createSecureContext({});
      if (nativeOf(context) === undefined) {
        this.usable = false;
        return;
      }
      this.ready.push(context);
      this.refill();
    }).unref();
  }
}
