/**
 * The etcd key layout of the contract. Every key lives under one prefix (default `/paas`).
 * Routers watch the single range [apps/, overrides/ + '\xff') which covers apps/, instances/
 * and overrides/ but never routers/ (lexical order: apps < instances < overrides < routers), so
 * one watch stream delivers every watched revision whole and status writes wake no router.
 */
export const NAME_PATTERN = '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$';
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
  readonly appsDir: string;
  readonly instancesDir: string;
  constructor(prefix = '/paas') {
    this.prefix = normalizePrefix(prefix);
    this.appsDir = `${this.prefix}/apps/`;
    this.instancesDir = `${this.prefix}/instances/`;
  }

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

  /** Classifies a key under the prefix; an unrecognised or ill-named key is an error to report. */
  parse(key: string): KeyParse {
    return this.parseWellFormed(key) ?? this.parseAny(key);
  }

  /**
   * The common case, apps/<app> and instances/<app>/<id> with valid names, without splitting the
   * key: a full list parses every key. Undefined for anything else, which parseAny explains.
   */
  private parseWellFormed(key: string): KeyParse | undefined {
    const apps = this.appsDir;
    if (key.startsWith(apps)) {
      const app = key.slice(apps.length);
      return isName(app) ? { ok: true, ref: { kind: 'app', app } } : undefined;
    }
    const instances = this.instancesDir;
    if (key.startsWith(instances)) {
      const slash = key.indexOf('/', instances.length);
      if (slash < 0) return undefined;
      const app = key.slice(instances.length, slash);
      const id = key.slice(slash + 1);
      return isName(app) && isName(id) ? { ok: true, ref: { kind: 'instance', app, id } } : undefined;
    }
    return undefined;
  }

  private parseAny(key: string): KeyParse {
    if (!key.startsWith(this.prefix + '/')) return { ok: false, error: 'key is outside the prefix' };
    const parts = key.slice(this.prefix.length + 1).split('/');
    const [dir, a, b] = parts;
    switch (dir) {
      case 'apps':
        if (parts.length !== 2 || !a) return { ok: false, error: 'expected apps/<app>' };
        if (!isName(a)) return { ok: false, error: `app name ${JSON.stringify(a)} does not match ${NAME_PATTERN}` };
        return { ok: true, ref: { kind: 'app', app: a } };
      case 'instances':
        if (parts.length !== 3 || !a || !b) return { ok: false, error: 'expected instances/<app>/<id>' };
        if (!isName(a)) return { ok: false, error: `app name ${JSON.stringify(a)} does not match ${NAME_PATTERN}` };
        if (!isName(b)) return { ok: false, error: `instance id ${JSON.stringify(b)} does not match ${NAME_PATTERN}` };
        return { ok: true, ref: { kind: 'instance', app: a, id: b } };
      case 'overrides': {
        if (parts.length !== 2 || !a) return { ok: false, error: 'expected overrides/<host>' };
        const err = hostError(a, false);
        if (err) return { ok: false, error: err };
        return { ok: true, ref: { kind: 'override', host: a } };
      }
      case 'routers':
        if (parts.length !== 2 || !a) return { ok: false, error: 'expected routers/<router-id>' };
        return { ok: true, ref: { kind: 'router', id: a } };
      case 'rollouts':
        if (parts.length !== 2 || !a || !isName(a)) return { ok: false, error: 'expected rollouts/<app>' };
        return { ok: true, ref: { kind: 'rollout', app: a } };
      default:
        return { ok: false, error: `unknown directory ${JSON.stringify(dir)}` };
    }
  }
}

const LABEL_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
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
    if (!LABEL_RE.test(label)) {
      return `host ${JSON.stringify(host)} is not a lower-case DNS name (label ${JSON.stringify(label)}; IDNs go in punycode)`;
    }
  }
  return undefined;
}
