/** Runs the steps of a deployment one after the other, timing each and reporting start and end. */
import { STEP_LABELS, type ProgressListener, type StepName } from './events.js';

export interface StepRecord {
  step: StepName;
  label: string;
  ok: boolean;
  ms: number;
  /** One line: what the step did ("revision 120 on 2 routers"). */
  detail: string;
}

export class StepTimer {
  readonly records: StepRecord[] = [];
  private readonly started = performance.now();

  constructor(private readonly emit: ProgressListener) {}

  /** Runs `fn`; its return value's `detail` is recorded as the step's summary line. */
  async run<T>(step: StepName, fn: () => Promise<T>, detail: (value: T) => string = () => ''): Promise<T> {
    const t0 = performance.now();
    this.emit({ type: 'step-start', step, at: Date.now() });
    try {
      const value = await fn();
      this.finish(step, true, performance.now() - t0, detail(value));
      return value;
    } catch (err) {
      this.finish(step, false, performance.now() - t0, err instanceof Error ? err.message : String(err));
      throw err;
    }
  }

  /** Records a step that did nothing (e.g. no old instance to drain). */
  skip(step: StepName, why: string): void {
    this.emit({ type: 'step-start', step, at: Date.now() });
    this.finish(step, true, 0, why);
  }

  elapsedMs(): number {
    return performance.now() - this.started;
  }

  private finish(step: StepName, ok: boolean, ms: number, detail: string): void {
    this.records.push({ step, label: STEP_LABELS[step], ok, ms, detail });
    this.emit({ type: 'step-end', step, ok, ms, detail });
  }
}
