/**
 * Types of a typed engine: `new MPMS<typeof import('./worker.js')>({ worker })`. The worker
 * module's type decides what `run()`/`put()`/`submit()` accept and what they (and the collector
 * and iterator) give back, per export. Without the type parameter (`W = unknown`) every one of
 * these is what it always was: `unknown[]` in, `unknown` out.
 */
import type { MPMSOptions } from './options.js';
import type { Meta, SubmitOptions } from './types.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyFn = (...args: any[]) => any;

/** Exports of a worker module that are hooks, not task functions. */
type HookName = 'processInitializer' | 'threadInitializer' | 'threadFinalizer' | 'processFinalizer';

/** Names of the task functions a worker module `W` exports (any string when untyped). */
export type TaskExport<W> = unknown extends W
  ? string
  : { [K in keyof W & string]: W[K] extends AnyFn ? (K extends HookName ? never : K) : never }[keyof W & string];

/** The arguments of export `E` of `W`, as a tuple (`unknown[]` when untyped). */
export type TaskArgs<W, E extends string> = unknown extends W
  ? unknown[]
  : E extends keyof W
    ? W[E] extends AnyFn
      ? Parameters<W[E]>
      : never
    : never;

/** What export `E` of `W` resolves with (`unknown` when untyped). */
export type TaskReturn<W, E extends string> = unknown extends W
  ? unknown
  : E extends keyof W
    ? W[E] extends AnyFn
      ? Awaited<ReturnType<W[E]>>
      : never
    : never;

/** Per-task options of `submit()`/`run()`, with `export` limited to the task functions of `W`. */
export interface TaskOptions<E extends string> extends Omit<SubmitOptions, 'export'> {
  /** The export this task calls; default the engine's `export`. */
  export?: E;
}

/**
 * One outcome of a typed engine: `result` is `R` when `meta.status === 'ok'`, else an Error.
 * TypeScript does not narrow a union on a nested property (`r.meta.status`), so `result` is
 * typed `R | Error`: narrow it with `result instanceof Error` (unless `R` is an Error itself).
 */
export interface TypedTaskResult<R> {
  meta: Meta;
  result: R | Error;
}

/** A collector of a typed engine: `result` is `R` when `meta.status === 'ok'`, else an Error (see TypedTaskResult). */
export type TypedCollector<R> = (meta: Meta, result: R | Error) => void | Promise<void>;

/**
 * The settings of an engine over worker module type `W` (see `MPMS`): untyped, exactly
 * `MPMSOptions`; typed, `export` is one of its task functions and the collector's `result`
 * follows `meta.status`.
 */
export type EngineOptions<W, D extends string> = unknown extends W
  ? MPMSOptions
  : Omit<MPMSOptions, 'export' | 'collector'> & { export?: D; collector?: TypedCollector<TaskReturn<W, D>> };
