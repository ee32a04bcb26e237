/**
 * One constructor per outcome wire form. Every layer (master, child, thread, scale-out) builds
 * the error of a `timeout`, `crashed`, `cancelled` or unsendable outcome here, so the name a
 * result carries always matches the class `lib/master/outcome.ts` rebuilds from it, and the
 * props each class needs are never forgotten.
 */
import type { ErrorWire } from '../protocol.js';

/** Which boundary died: one thread, or a whole process (or machine, for a remote engine). */
export type CrashScope = 'thread' | 'process';

/** The error of a `crashed` outcome (rebuilt as `WorkerCrashedError`). */
export function crashed(
  message: string,
  scope: CrashScope,
  exitCode: number | null = null,
  signal: NodeJS.Signals | null = null,
): ErrorWire {
  return { name: 'WorkerCrashedError', message, props: { exitCode, signal, scope } };
}

/** The error of a `timeout` outcome (rebuilt as `TaskTimeoutError`). */
export function timedOut(message: string, timeoutMs: number): ErrorWire {
  return { name: 'TaskTimeoutError', message, props: { timeoutMs } };
}

/** The error of a `cancelled` outcome (rebuilt as `TaskCancelledError`). */
export function cancelled(message: string): ErrorWire {
  return { name: 'TaskCancelledError', message };
}

/** The `error` of a task whose arguments or result cannot cross a boundary (`SerializationError`). */
export function unsendable(message: string): ErrorWire {
  return { name: 'SerializationError', message };
}

/** A child or thread that could not start (`WorkerStartError`), with what it blamed as cause. */
export function startFailed(message: string, cause?: ErrorWire): ErrorWire {
  return cause ? { name: 'WorkerStartError', message, cause } : { name: 'WorkerStartError', message };
}
