/**
 * The engine's teardown as data, as an OTP supervisor stops its children: an ordered list of
 * steps, each with its own bound, each isolated (a step that fails or overruns is logged and
 * the next runs). The engine builds the list (engine.ts `teardownSteps`); this runs it.
 */
import type { Logger } from 'pino';
import type { ChildHandle } from './child-handle.js';

/** One step of a shutdown: what it is called in the log, how long it may take, what it does. */
export interface TeardownStep {
  name: string;
  /** ms; past it the step is left running and the next one starts. */
  bound: number;
  run: () => Promise<void> | void;
}

/** Runs `steps` in order, each within its bound; never throws. */
export async function runSteps(steps: readonly TeardownStep[], logger: Logger, kind: string): Promise<void> {
  for (const step of steps) {
    logger.info(`shutdown (${kind}): ${step.name}`);
    let timer: NodeJS.Timeout | undefined;
    const overrun = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        logger.warn(`shutdown (${kind}): step "${step.name}" did not finish within ${step.bound} ms; going on`);
        resolve();
      }, step.bound);
    });
    try {
      await Promise.race([step.run(), overrun]);
    } catch (err) {
      logger.error({ err }, `shutdown (${kind}): step "${step.name}" failed; going on`);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Waits (bounded by `ms`) until the exits of `children` are accounted for (ChildHandle.gone). */
export function waitExits(children: ChildHandle[], ms: number): Promise<void> {
  const pending = children.filter((c) => c.state !== 'exited');
  if (pending.length === 0) return Promise.resolve();
  const all = Promise.all(pending.map((c) => c.gone.promise)).then(() => undefined);
  if (!Number.isFinite(ms)) return all;
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
  return Promise.race([all, bound]).finally(() => clearTimeout(timer));
}

/**
 * `handleSignals`: the first SIGINT/SIGTERM starts a graceful shutdown, a second terminates.
 * Returns the function that removes the handlers (the teardown's last step).
 */
export function installSignalHandlers(logger: Logger, graceMs: number, graceful: () => void, terminate: () => void): () => void {
  let count = 0;
  const handler = (sig: NodeJS.Signals) => {
    count++;
    if (count === 1) {
      logger.warn(`${sig}: graceful shutdown (up to ${graceMs} ms); send it again to stop at once`);
      graceful();
    } else {
      logger.warn(`${sig} again: terminating now`);
      terminate();
    }
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}
