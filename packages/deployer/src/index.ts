/**
 * @paas/deployer: registers and retires app instances with zero downtime, gated on what every
 * router reports having applied. The CLI (cli.ts) is a thin layer over these functions.
 */
export { redeploy, checkRedeployOptions, DEFAULTS, type RedeployOptions, type RedeployResult, type Timeouts } from './redeploy.js';
export { register, type RegisterOptions, type RegisterResult } from './register.js';
export { retire, type RetireOptions, type RetireResult } from './retire.js';
export { setApp, type AppSetOptions, type AppSetResult } from './app-set.js';
export { buildAppRecord, routesOf, readApp, type AppSettings } from './apps.js';
export { collectStatus, statusOf, formatStatus, statusJson, digestOutliers, type FleetStatus, type StatusEntry } from './status.js';
export { serveFleetPage, type ServeOptions } from './ui/serve.js';
export { FleetSource, type FleetSnapshot } from './ui/fleet-source.js';
export { fleetView, type FleetView } from './ui/fleet-view.js';
export { RouterFleet, type RouterView } from './fleet.js';
export { routingTable, routingDiff, formatTable, formatDiff, tableJson, diffJson, type DatedSnapshot, type RoutingDiff } from './history.js';
export { diffSnapshots, type RoutingChange } from './routing-diff.js';
export { revisionAtTime, type DatedRevision, type RevisionRef } from './revision-at-time.js';
export { waitForRevision, waitForDrain, type ApplyWaitReport, type DrainWaitReport } from './waits.js';
export { acquireAppLock, describeHolder, defaultHolder, type AppLock, type LockHolder } from './lock.js';
export { readInstances, describeDrift, commitChanges, expectationOf, type InstanceEntry, type InstanceSnapshot, type InstanceChange } from './instances.js';
export { planInstances, type PlannedInstance } from './plan.js';
export { waitAllHealthy, waitHealthy } from './health.js';
export { newInstanceId, normalizeUrl, slug } from './ids.js';
export { formatMs } from './duration.js';
export { DeployError, UsageError, type FailureKind, type RollbackReport } from './errors.js';
export { STEP_LABELS, type ProgressEvent, type ProgressListener, type StepName, type InflightEntry } from './events.js';
export type { StepRecord } from './steps.js';
export type { DrainOutcome } from './drain.js';
export {
  formatRedeploySummary,
  formatRegisterSummary,
  formatRetireSummary,
  formatAppSetSummary,
  formatFailure,
  formatSteps,
} from './summary.js';
export { main, run, EXIT_OK, EXIT_FAILED, EXIT_USAGE } from './cli.js';
export { parseCommandLine, type Command, type ParsedCommandLine } from './cli/parse.js';
