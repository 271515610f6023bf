/**
 * paas-deploy: the command line over the library. Parses argv and the environment, connects to etcd,
 * runs one command with live progress, prints a summary, and sets process.exitCode:
 * 0 ok, 1 failed (and rolled back where it wrote), 2 bad usage, 130 (143) interrupted by SIGINT
 * (SIGTERM), after rolling back.
 */
import { connectEtcd, KeyLayout, type Etcd } from '@paas/registry';
import { setApp } from './app-set.js';
import { formatCertList, formatCertSet, listCerts, removeCert, setCert } from './cert.js';
import { asDeployError, DeployError, UsageError } from './errors.js';
import { diffJson, formatDiff, formatTable, routingDiff, routingTable, tableJson } from './history.js';
import { maintenanceOff, maintenanceOn } from './maintenance.js';
import { redeploy } from './redeploy.js';
import { createTunnelToken, formatCreatedToken, formatTunnelTokens, listTunnelTokens, removeTunnelToken } from './tunnel-tokens.js';
import { releaseHeldLocks } from './lock.js';
import { register } from './register.js';
import { retire } from './retire.js';
import { collectStatus, formatStatus, statusJson } from './status.js';
import { formatAppSetSummary, formatFailure, formatRedeploySummary, formatRegisterSummary, formatRetireSummary } from './summary.js';
import { parseCommandLine, type Command, type ParsedCommandLine } from './cli/parse.js';
import { createReporter, type Output } from './cli/reporter.js';
import { serveFleetPage } from './ui/serve.js';
import { DEPLOYER_VERSION } from './version.js';

export interface Io {
  stdout: Output & { isTTY?: boolean };
  stderr: Output;
}

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
/** 128 + the signal's number, as shells report a command a signal stopped: Ctrl-C is 130. */
const EXIT_SIGNALLED: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

const READ_ONLY = new Set<Command['name']>(['status', 'table', 'diff']);

/** A signal this soon after the first is the same one delivered twice, not a second request. */
const DUPLICATE_SIGNAL_MS = 500;

export async function main(argv: string[], env: NodeJS.ProcessEnv, io: Io = { stdout: process.stdout, stderr: process.stderr }): Promise<void> {
  process.exitCode = await run(argv, env, io);
}

/** Runs one command line and returns its exit code (main() sets process.exitCode from it). */
export async function run(argv: string[], env: NodeJS.ProcessEnv, io: Io): Promise<number> {
  let parsed: ParsedCommandLine;
  try {
    parsed = parseCommandLine(argv, env);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`paas-deploy: ${err.message}\n`);
      return EXIT_USAGE;
    }
    throw err;
  }
  if (parsed.kind === 'help') {
    io.stdout.write(parsed.text + '\n');
    return EXIT_OK;
  }
  if (parsed.kind === 'version') {
    io.stdout.write(`paas-deploy ${DEPLOYER_VERSION} (Node ${process.version})\n`);
    return EXIT_OK;
  }

  const { command, global } = parsed;
  const label = command.name === 'app set'
    ? `app set ${command.args.app}`
    : `${command.name}${'app' in command.args && command.args.app ? ` ${command.args.app}` : 'name' in command.args ? ` ${command.args.name}` : ''}`;
  const abort = new AbortController();
  let firstSignalAt = 0;
  let signalled: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (!abort.signal.aborted) {
      firstSignalAt = performance.now();
      signalled = sig;
      io.stderr.write(`paas-deploy: ${sig}: stopping (${command.name === 'ui' ? 'closing the fleet page' : 'rolling back what this run wrote'}); ${sig} again to quit at once\n`);
      abort.abort(new DeployError('aborted', `interrupted by ${sig}`));
      return;
    }
    // One signal to a process group reaches us twice when a parent (pnpm exec, npx) forwards it.
    if (performance.now() - firstSignalAt < DUPLICATE_SIGNAL_MS) return;
    io.stderr.write(`paas-deploy: ${sig} again: quitting now, without rolling back; releasing the app lock first\n`);
    void releaseHeldLocks().finally(() => process.exit(EXIT_SIGNALLED[sig] ?? EXIT_FAILED));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // Commands that only read print their answer and no progress.
  const reporter = createReporter(io.stdout, !READ_ONLY.has(command.name) && io.stdout.isTTY === true);
  let etcd: Etcd | undefined;
  try {
    etcd = await connectEtcd({ endpoints: global.endpoints, security: global.etcdSecurity });
    const layout = new KeyLayout(global.prefix);
    const text = await execute(etcd, layout, command, reporter.listener, abort.signal, io);
    reporter.stop();
    io.stdout.write(text + '\n');
    return EXIT_OK;
  } catch (e) {
    reporter.stop();
    // A bad input file (cert set): bad usage, one line, as for a bad flag.
    if (e instanceof UsageError) {
      io.stderr.write(`paas-deploy: ${e.message}\n`);
      return EXIT_USAGE;
    }
    const err = asDeployError(e);
    // Ctrl-C is how the fleet page is meant to stop: the signal's line said all there is.
    if (!(command.name === 'ui' && signalled !== undefined)) io.stderr.write(`paas-deploy: ${formatFailure(label, err)}\n`);
    // Interrupted (and rolled back): the exit code says so, as for any command Ctrl-C stops.
    return signalled !== undefined ? (EXIT_SIGNALLED[signalled] ?? EXIT_FAILED) : EXIT_FAILED;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await etcd?.close().catch(() => {});
  }
}

async function execute(etcd: Etcd, layout: KeyLayout, command: Command, progress: Parameters<typeof redeploy>[3], signal: AbortSignal, io: Io): Promise<string> {
  switch (command.name) {
    case 'ui':
      return serveFleetPage(etcd, layout, {
        listen: command.args.listen,
        signal,
        onListening: (url) => io.stdout.write(`paas-deploy ui: the fleet page is at ${url} (Ctrl-C to stop)\n`),
        onError: (err) => io.stderr.write(`paas-deploy ui: ${err instanceof Error ? err.message : String(err)}\n`),
      });
    case 'redeploy':
      return formatRedeploySummary(await redeploy(etcd, layout, { ...command.args, signal }, progress));
    case 'register':
      return formatRegisterSummary(await register(etcd, layout, { ...command.args, signal }, progress));
    case 'retire':
      return formatRetireSummary(await retire(etcd, layout, { ...command.args, signal }, progress));
    case 'app set': {
      const { routerTimeoutMs, ...rest } = command.args;
      return formatAppSetSummary(await setApp(etcd, layout, { ...rest, ...(routerTimeoutMs !== undefined ? { routerTimeoutMs } : {}), signal }, progress));
    }
    case 'status': {
      const status = await collectStatus(etcd, layout, command.args.app);
      return command.args.json ? JSON.stringify(statusJson(status), null, 2) : formatStatus(status);
    }
    case 'cert set':
      return formatCertSet(await setCert(etcd, layout, command.args));
    case 'cert list':
      return formatCertList(await listCerts(etcd, layout));
    case 'cert rm': {
      const r = await removeCert(etcd, layout, command.args.name);
      return `${r.key} deleted at revision ${r.revision}`;
    }
    case 'tunnel-token create':
      return formatCreatedToken(await createTunnelToken(etcd, layout, command.args.app, command.args.expiresMs));
    case 'tunnel-token list': {
      const tokens = await listTunnelTokens(etcd, layout, command.args.app);
      return command.args.json ? JSON.stringify(tokens, null, 2) : formatTunnelTokens(command.args.app, tokens);
    }
    case 'tunnel-token rm':
      await removeTunnelToken(etcd, layout, command.args.app, command.args.tokenId);
      return `tunnel-token rm ${command.args.app} ${command.args.tokenId}: revoked (routers close its sessions within a second)`;
    case 'maintenance on': {
      const { routerTimeoutMs, status, message, forMs, host } = command.args;
      const r = await maintenanceOn(etcd, layout, { host, ...(status !== undefined && { status }), ...(message !== undefined && { message }), ...(forMs !== undefined && { forMs }), ...(routerTimeoutMs !== undefined && { routerTimeoutMs }), signal }, progress);
      return `maintenance on ${host}: ${r.key} at revision ${r.revision}${r.endsAt === undefined ? ', until maintenance off' : `, ends by itself at ${new Date(r.endsAt).toISOString()}`}`;
    }
    case 'maintenance off': {
      const { routerTimeoutMs, host } = command.args;
      const r = await maintenanceOff(etcd, layout, { host, ...(routerTimeoutMs !== undefined && { routerTimeoutMs }), signal }, progress);
      return `maintenance off ${host}: ${r.key} deleted at revision ${r.revision}`;
    }
    case 'table': {
      const { at, host, keyRingFile, json } = command.args;
      const table = await routingTable(etcd, layout, at, { host, keyRingFile });
      return json ? JSON.stringify(tableJson(table, layout.prefix), null, 2) : formatTable(table, layout.prefix);
    }
    case 'diff': {
      const { from, to, host, keyRingFile, json } = command.args;
      const diff = await routingDiff(etcd, layout, from, to, { host, keyRingFile });
      return json ? JSON.stringify(diffJson(diff, layout.prefix), null, 2) : formatDiff(diff, layout.prefix);
    }
  }
}
