/** Every wait in mpms is bounded: this is the one helper that bounds a promise by a deadline. */

/**
 * Time allowed to load the worker module (and boot a thread) on top of `hookTimeout`. Loading is
 * not a hook: a small `hookTimeout` must not fail a start on a busy machine, yet a module that
 * never finishes loading is still caught.
 */
export const LOAD_ALLOWANCE_MS = 10_000;

/** Rejected when a bounded step runs out of time. */
export class StepTimeoutError extends Error {
  override name = 'StepTimeoutError';
}

/**
 * Resolves or rejects like `work`, or rejects with `StepTimeoutError` after `ms`. The timer is
 * cleared as soon as `work` settles and never keeps the event loop alive on its own.
 */
export function withTimeout<T>(work: Promise<T> | T, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new StepTimeoutError(`${what} did not finish within ${ms} ms`)), ms);
    timer.unref();
    Promise.resolve(work).then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

/** A promise that can be settled from outside; for waits that an event ends. */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(err: unknown): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
