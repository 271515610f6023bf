/**
 * The etcd key layout of the contract. Every key lives under one prefix (default `/paas`).
 * Routers watch the single range [apps/, overrides/ + '\xff') which covers apps/, instances/
 * and overrides/ but never routers/ (lexical order: apps < instances < overrides < routers), so
 * one watch stream delivers every watched revision whole and status writes wake no router.
 */
/** App names, instance ids, router ids: a DNS label. NAME_SHAPE is the unanchored form, for messages. */
export const NAME_SHAPE = '[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?';
export const NAME_PATTERN = `^${NAME_SHAPE}$`;
const NAME_RE = new RegExp(NAME_PATTERN);

export type KeyRef =
  | { kind: 'app'; app: string }
  | { kind: 'instance'; app: string; id: string }
  | { kind: 'override'; host: string }
  | { kind: 'router'; id: string }
  | { kind: 'rollout'; app: string };

export type KeyParse = { ok: true; ref: KeyRef } | { ok: false; error: string };

export function isName(s: string): boolean {
  return NAME_RE.test(s);
}

export function normalizePrefix(prefix: string): string {
  if (!prefix.startsWith('/')) throw new Error(`prefix must start with "/": ${JSON.stringify(prefix)}`);
  const p = prefix.replace(/\/+$/, '');
  if (p === '') throw new Error('prefix must not be "/" alone');
  return p;
}

export class KeyLayout {
  readonly prefix: string;
  constructor(prefix = '/paas') {
    this.prefix = normalizePrefix(prefix);
  }

  get appsDir(): string { return `${this.prefix}/apps/`; }
  get instancesDir(): string { return `${this.prefix}/instances/`; }
  get overridesDir(): string { return `${this.prefix}/overrides/`; }
  get routersDir(): string { return `${this.prefix}/routers/`; }
  /** Deployer locks; "rollouts" sorts after "overrides/" so routers never watch it. */
  get rolloutsDir(): string { return `${this.prefix}/rollouts/`; }

  app(app: string): string { return `${this.prefix}/apps/${app}`; }
  instancesOf(app: string): string { return `${this.prefix}/instances/${app}/`; }
  instance(app: string, id: string): string { return `${this.prefix}/instances/${app}/${id}`; }
  override(host: string): string { return `${this.prefix}/overrides/${host}`; }
  router(id: string): string { return `${this.prefix}/routers/${id}`; }
  lock(app: string): string { return `${this.prefix}/rollouts/${app}`; }

  /** The half-open key range a router watches: apps/, instances/ and overrides/, not routers/. */
  watchedRange(): { start: string; end: string } {
    return { start: this.appsDir, end: `${this.prefix}/overrides0` };
  }

  /**
   * Keys that cut the watched range into segments of roughly one directory and one first
   * character of a name each (names and hosts start with [a-z0-9]), so that a paged list costs
   * time in proportion to the keys read, not to the square of them (see etcd/list.ts).
   */
  watchedBoundaries(): string[] {
    const out: string[] = [];
    for (const dir of [this.appsDir, this.instancesDir, this.overridesDir]) {
      out.push(dir + '0');
      for (const c of '123456789abcdefghijklmnopqrstuvwxyz') out.push(dir + c);
      out.push(dir + '{');
    }
    return out;
  }

  /**
   * Classifies a key under the prefix; an unrecognised or ill-named key is an error to report.
   * Cuts the key with indexOf rather than split: a full list parses every key.
   */
  parse(key: string): KeyParse {
    const start = this.prefix.length + 1;
    if (!key.startsWith(this.prefix) || key.charCodeAt(start - 1) !== SLASH) return { ok: false, error: 'key is outside the prefix' };
    const dirEnd = key.indexOf('/', start);
    const dir = dirEnd < 0 ? key.slice(start) : key.slice(start, dirEnd);
    // What follows `<dir>/`: one name for most directories, `<app>/<id>` for instances.
    const tail = dirEnd < 0 ? '' : key.slice(dirEnd + 1);
    const single = tail !== '' && !tail.includes('/');
    switch (dir) {
      case 'apps':
        if (!single) return { ok: false, error: 'expected apps/<app>' };
        if (!isName(tail)) return { ok: false, error: `app name ${JSON.stringify(tail)} does not match ${NAME_PATTERN}` };
        return { ok: true, ref: { kind: 'app', app: tail } };
      case 'instances': {
        const cut = tail.indexOf('/');
        const app = tail.slice(0, cut);
        const id = tail.slice(cut + 1);
        if (cut <= 0 || id === '' || id.includes('/')) return { ok: false, error: 'expected instances/<app>/<id>' };
        if (!isName(app)) return { ok: false, error: `app name ${JSON.stringify(app)} does not match ${NAME_PATTERN}` };
        if (!isName(id)) return { ok: false, error: `instance id ${JSON.stringify(id)} does not match ${NAME_PATTERN}` };
        return { ok: true, ref: { kind: 'instance', app, id } };
      }
      case 'overrides': {
        if (!single) return { ok: false, error: 'expected overrides/<host>' };
        const err = hostError(tail, false);
        if (err) return { ok: false, error: err };
        return { ok: true, ref: { kind: 'override', host: tail } };
      }
      case 'routers':
        if (!single) return { ok: false, error: 'expected routers/<router-id>' };
        return { ok: true, ref: { kind: 'router', id: tail } };
      case 'rollouts':
        if (!single || !isName(tail)) return { ok: false, error: 'expected rollouts/<app>' };
        return { ok: true, ref: { kind: 'rollout', app: tail } };
      default:
        return { ok: false, error: `unknown directory ${JSON.stringify(dir)}` };
    }
  }
}

const SLASH = 0x2f;
/** A valid host in one test (hostError's rules, but for the wildcard's label count). */
const HOST_RE = /^(?:\*\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Why a host is not a lower-case DNS name (IDNs in punycode), or undefined when it is one.
 * `wildcard` allows a leading `*.` label.
 */
export function hostError(host: string, wildcard: boolean): string | undefined {
  // Nearly every host is valid: one regex test, no label split.
  if (host.length <= 253 && HOST_RE.test(host) && (host.charCodeAt(0) !== 42 /* '*' */ || (wildcard && host.indexOf('.', 2) > 0))) return undefined;
  if (host.length === 0) return 'host is empty';
  if (host.length > 253) return 'host is longer than 253 characters';
  let name = host;
  if (host.startsWith('*.')) {
    if (!wildcard) return `host ${JSON.stringify(host)}: a wildcard is not allowed here`;
    name = host.slice(2);
  }
  if (name !== name.toLowerCase()) return `host ${JSON.stringify(host)} must be lower-case`;
  const labels = name.split('.');
  if (wildcard && host.startsWith('*.') && labels.length < 2) {
    return `host ${JSON.stringify(host)}: a wildcard needs a suffix of at least two labels`;
  }
  for (const label of labels) {
    if (!isName(label)) {
      return `host ${JSON.stringify(host)} is not a lower-case DNS name (label ${JSON.stringify(label)}; IDNs go in punycode)`;
    }
  }
  return undefined;
}
