/**
 * Prints progress events as they happen: plain lines when the output is not a terminal; on a
 * terminal the same lines plus one live line for the step under way (elapsed time, what it waits on).
 */
import { formatMs } from '../duration.js';
import { STEP_LABELS, type ProgressEvent, type ProgressListener, type StepName } from '../events.js';

export interface Output {
  write(text: string): unknown;
}

export interface Reporter {
  listener: ProgressListener;
  /** Clears the live line and stops its timer. */
  stop(): void;
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/** The permanent line an event prints, or undefined for events that only feed the live line. */
export function eventLine(e: ProgressEvent): string | undefined {
  switch (e.type) {
    case 'step-start':
      return `[${e.step}] ${STEP_LABELS[e.step]} ...`;
    case 'step-end':
      return `[${e.step}] ${e.ok ? 'ok' : 'FAILED'} in ${formatMs(e.ms)}${e.detail ? `: ${e.detail}` : ''}`;
    case 'health':
      if (e.ok) return `  healthy: ${e.url} (${e.answer}, attempt ${e.attempt})`;
      return e.attempt === 1 || e.attempt % 10 === 0 ? `  not healthy yet: ${e.url} (${e.answer}, attempt ${e.attempt})` : undefined;
    case 'written':
      return `  wrote revision ${e.revision}: ${e.ids.join(', ')}`;
    case 'routers-waiting':
      return e.pending.length ? `  waiting for ${e.pending.map((p) => `${p.id} (at ${p.revision ?? '?'})`).join(', ')} to reach revision ${e.target}` : '  waiting for a live router';
    case 'router-applied':
      return `  router ${e.router} applied revision ${e.revision} after ${formatMs(e.ms)}`;
    case 'router-joined':
      return `  router ${e.router} appeared`;
    case 'router-gone':
      return `  router ${e.router} is gone (its status key disappeared): no longer waited on`;
    case 'inflight':
      return e.remaining.length
        ? `  in flight: ${e.total} (${e.remaining.map((r) => `${r.router}: ${r.instance} ${r.count}`).join(', ')})`
        : '  in flight: 0 on routers that confirmed; waiting for the others';
    case 'warning':
      return `  WARNING: ${e.message}`;
    case 'info':
      return `  ${e.message}`;
  }
}

export function createReporter(out: Output, tty: boolean): Reporter {
  if (!tty) {
    return {
      listener: (e) => {
        const line = eventLine(e);
        if (line !== undefined) out.write(line + '\n');
      },
      stop: () => {},
    };
  }

  let current: { step: StepName; since: number } | undefined;
  let waitingOn = '';
  let frame = 0;
  let shown = false;
  const clear = () => {
    if (shown) out.write('\r\x1b[2K');
    shown = false;
  };
  const draw = () => {
    if (!current) return;
    clear();
    const elapsed = formatMs(performance.now() - current.since);
    out.write(`${SPINNER[frame++ % SPINNER.length]} ${STEP_LABELS[current.step]} ${elapsed}${waitingOn ? `  ${waitingOn}` : ''}`);
    shown = true;
  };
  const timer = setInterval(draw, 100);
  timer.unref();

  return {
    listener: (e) => {
      if (e.type === 'step-start') {
        current = { step: e.step, since: performance.now() };
        waitingOn = '';
        draw();
        return;
      }
      if (e.type === 'routers-waiting') {
        waitingOn = e.pending.length ? `waiting for ${e.pending.map((p) => `${p.id}@${p.revision ?? '?'}`).join(' ')} → ${e.target}` : 'waiting for a live router';
        draw();
        return;
      }
      if (e.type === 'inflight') {
        waitingOn = `in flight: ${e.total}`;
        draw();
        return;
      }
      if (e.type === 'health' && !e.ok) {
        waitingOn = `${e.url}: ${e.answer}`;
        draw();
        return;
      }
      if (e.type === 'step-end') current = undefined;
      const line = eventLine(e);
      if (line === undefined) return;
      clear();
      out.write(line + '\n');
      draw();
    },
    stop: () => {
      clearInterval(timer);
      clear();
    },
  };
}
