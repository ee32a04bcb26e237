/**
 * `run()` callers: a task accepted by `run()` carries a `Call`, and its one outcome goes to that
 * promise instead of the collector/iterator (so it is never "unread"). Nothing here holds a
 * task: the ledger does, exactly as for `put()`; a call is only the two functions of a promise.
 */
import { TaskCancelledError } from '../errors.js';
import type { Meta } from '../types.js';

/** The settling side of one `run()` promise. */
export interface Call {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

/** A new call and its promise. The promise never counts as an unhandled rejection by itself: run() hands it on. */
export function newCall(): { call: Call; promise: Promise<unknown> } {
  let call!: Call;
  const promise = new Promise<unknown>((resolve, reject) => {
    call = { resolve, reject };
  });
  // The settle may happen before run() returns the promise (an AbortSignal already aborted).
  promise.catch(() => {});
  return { call, promise };
}

/**
 * Delivers a settled task's outcome to its caller: the result on `ok`; otherwise the outcome's
 * error (TaskTimeoutError, WorkerCrashedError, TaskCancelledError or the worker's rebuilt error)
 * with `err.meta` attached.
 */
export function deliver(call: Call, meta: Meta, result: unknown): void {
  if (meta.status === 'ok') {
    call.resolve(result);
    return;
  }
  const err = result instanceof Error ? result : new Error(String(result));
  Object.defineProperty(err, 'meta', { value: meta, enumerable: false, configurable: true, writable: true });
  call.reject(err);
}

/** What run() rejects with when the engine shut down before its task was accepted (put() resolves undefined then). */
export function notAccepted(why: string): TaskCancelledError {
  return new TaskCancelledError(`run(): the task was not accepted: ${why}`);
}
