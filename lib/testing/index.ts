/**
 * `mpms/testing`: fault injection for your own pipeline's tests, the way mpms tests itself.
 *
 * Wrap your task function once in the worker module you test with:
 *
 * ```js
 * // worker.mjs
 * import { injectFaults, faultyHook } from 'mpms/testing';
 * async function work(url) { ... }
 * export default injectFaults(work);
 * export const threadInitializer = faultyHook('threadInitializer', async (ctx) => { ... });
 * ```
 *
 * Then, from the test, make any single task misbehave:
 *
 * ```js
 * import { fault } from 'mpms/testing';
 * await m.put(fault('crashProcess'));          // this task SIGKILLs its child process
 * await m.put(fault('hang'), 'https://a.b');   // this one never returns
 * await m.put('https://c.d');                  // a normal task
 * new MPMS({ ..., initArgs: { mpmsFaults: { threadInitializer: { kind: 'throw' } } } });
 * ```
 *
 * Faults are plain data, so they cross to the thread like any argument.
 */
import { taskContext } from '../thread/context.js';

/** What a task or hook can be made to do instead of (or before) its work. */
export type Fault =
  /** Throw an Error (name and message configurable). */
  | { kind: 'throw'; name?: string; message?: string }
  /** Throw `WorkerGracefulDie`: the process retires gracefully. */
  | { kind: 'gracefulDie' }
  /** Never return (an async wait that never ends; honours nothing). */
  | { kind: 'hang' }
  /** Spin the CPU forever in synchronous code (only a hard limit ends it). */
  | { kind: 'spin' }
  /** Wait `ms`, then do the real work. */
  | { kind: 'slow'; ms: number }
  /** `process.exit(code)` inside the worker thread: the thread dies. */
  | { kind: 'exitThread'; code?: number }
  /** Throw from a timer, outside the task: an uncaught error kills the thread. */
  | { kind: 'uncaught'; message?: string }
  /** Kill the whole child process with a signal (default SIGKILL; SIGABRT/SIGSEGV look like native crashes). */
  | { kind: 'crashProcess'; signal?: NodeJS.Signals }
  /** Wait until the task's AbortSignal fires (timeout, cancel, shutdown), then reject with its reason. */
  | { kind: 'untilAborted' }
  /** Return a value that cannot be sent back (a function). */
  | { kind: 'unsendable' };

const MARK = '__mpmsFault';

interface FaultMarker {
  [MARK]: Fault;
}

/** A first argument that makes an `injectFaults`-wrapped task misbehave as `fault` describes. */
export function fault(kind: Fault['kind'] | Fault, options: Omit<Partial<Fault>, 'kind'> = {}): FaultMarker {
  const f = (typeof kind === 'string' ? { kind, ...options } : kind) as Fault;
  return { [MARK]: f };
}

function isMarker(value: unknown): value is FaultMarker {
  return value !== null && typeof value === 'object' && MARK in (value as object);
}

/**
 * Performs a fault. Resolves (for `slow`) when the real work may go on; for every other kind it
 * throws, never returns, or ends the thread or process.
 */
export async function performFault(f: Fault): Promise<unknown> {
  switch (f.kind) {
    case 'throw': {
      const err = new Error(f.message ?? 'injected fault');
      if (f.name) err.name = f.name;
      throw err;
    }
    case 'gracefulDie': {
      const err = new Error('injected graceful die');
      err.name = 'WorkerGracefulDie';
      throw err;
    }
    case 'hang':
      // A timer keeps the thread's event loop alive: a bare pending promise would let an idle
      // thread simply exit, which is a different fault.
      return new Promise(() => {
        setInterval(() => {}, 2 ** 30);
      });
    case 'spin':
      for (;;) {
        // Synchronous on purpose: nothing but terminating the thread stops this.
      }
    case 'slow':
      await new Promise((r) => setTimeout(r, f.ms));
      return undefined;
    case 'exitThread':
      process.exit(f.code ?? 1);
    // falls through (never reached)
    case 'uncaught':
      setTimeout(() => {
        throw new Error(f.message ?? 'injected uncaught error');
      }, 0);
      return new Promise(() => {});
    case 'crashProcess':
      process.kill(process.pid, f.signal ?? 'SIGKILL');
      return new Promise(() => {});
    case 'untilAborted': {
      const signal = taskContext().signal;
      return new Promise((_, reject) => {
        if (signal.aborted) reject(signal.reason);
        signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      });
    }
    case 'unsendable':
      return () => undefined;
  }
}

/**
 * Wraps a task function: a task whose first argument is `fault(...)` misbehaves as told (the
 * marker is removed from the arguments); every other task runs `fn` unchanged.
 */
export function injectFaults<A extends unknown[], R>(fn: (...args: A) => R | Promise<R>): (...args: unknown[]) => Promise<unknown> {
  return async (...args: unknown[]) => {
    if (!isMarker(args[0])) return fn(...(args as A));
    const f = args[0][MARK];
    const rest = args.slice(1) as A;
    const out = await performFault(f);
    if (f.kind === 'slow') return fn(...rest);
    return out;
  };
}

type Hook = (ctx: { initArgs?: unknown }) => unknown;

/**
 * Wraps a hook (`processInitializer`, `threadInitializer`, `threadFinalizer`, `processFinalizer`):
 * when `initArgs.mpmsFaults[name]` holds a fault, the hook performs it before (`slow`) or instead
 * of its work. Without one it runs `hook` unchanged.
 */
export function faultyHook(name: string, hook?: Hook): Hook {
  return async (ctx) => {
    const faults = (ctx?.initArgs as { mpmsFaults?: Record<string, Fault> } | undefined)?.mpmsFaults;
    const f = faults?.[name];
    if (f) {
      await performFault(f);
      if (f.kind !== 'slow') return undefined;
    }
    return hook?.(ctx);
  };
}
