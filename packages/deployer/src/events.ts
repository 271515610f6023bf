/**
 * Structured progress of a deployment. The library only emits these; the CLI prints them (a live
 * line on a TTY, plain lines otherwise) and a demo or test can collect them and print its own summary.
 */

export type StepName =
  | 'lock'
  | 'health'
  | 'write'
  | 'confirm'
  | 'drain'
  | 'confirm-drain'
  | 'inflight'
  | 'delete'
  | 'rollback'
  | 'write-app'
  | 'confirm-app'
  | 'write-override'
  | 'delete-override'
  | 'confirm-override';

export const STEP_LABELS: Record<StepName, string> = {
  lock: 'take the app lock',
  health: 'health-check new instances',
  write: 'write the new instances',
  confirm: 'routers apply the new instances',
  drain: 'mark old instances draining',
  'confirm-drain': 'routers apply draining',
  inflight: 'wait for in-flight requests',
  delete: 'delete old instances',
  rollback: 'roll back',
  'write-app': 'write the app record',
  'confirm-app': 'routers apply the app record',
  'write-override': 'write the maintenance override',
  'delete-override': 'delete the maintenance override',
  'confirm-override': 'routers apply the override',
};

export interface RouterProgress {
  id: string;
  /** Applied revision, or undefined when its status record is unreadable. */
  revision: bigint | undefined;
}

export type ProgressEvent =
  | { type: 'step-start'; step: StepName; at: number }
  | { type: 'step-end'; step: StepName; ok: boolean; ms: number; detail: string }
  | { type: 'health'; url: string; ok: boolean; attempt: number; answer: string }
  | { type: 'written'; step: StepName; revision: bigint; ids: string[] }
  /** Emitted whenever the set of routers still behind `target` changes. */
  | { type: 'routers-waiting'; step: StepName; target: bigint; elapsedMs: number; pending: RouterProgress[]; applied: number }
  | { type: 'router-applied'; step: StepName; router: string; revision: bigint; ms: number }
  | { type: 'router-joined'; step: StepName; router: string }
  | { type: 'router-gone'; step: StepName; router: string }
  /** Emitted whenever the in-flight counts of draining instances change. */
  | { type: 'inflight'; elapsedMs: number; total: number; remaining: InflightEntry[] }
  | { type: 'warning'; message: string }
  | { type: 'info'; message: string };

export interface InflightEntry {
  router: string;
  /** "<app>/<id>" */
  instance: string;
  count: number;
}

export type ProgressListener = (event: ProgressEvent) => void;

export const noProgress: ProgressListener = () => {};
