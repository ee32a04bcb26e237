/**
 * The engine's settings, each declared once in `OPTION_SPECS` (what a declaration holds:
 * lib/settings.ts). Validation (`resolveOptions`), the engine flags of `mpms run` and
 * `mpms worker` (lib/cli) and the options table of docs/api.md are derived from it.
 */
import os from 'node:os';
import { ConfigError } from './errors.js';
import { resolveSettings, settings, type Setting } from './settings.js';
import type { Logger } from 'pino';
import type { RetryableStatus } from './shared/retry-policy.js';
import type { Meta } from './types.js';
import type { Transport } from './transport/types.js';

/** A collector receives every outcome once: `result` is the value when `meta.status === 'ok'`, else an Error. */
export type Collector = (meta: Meta, result: unknown) => void | Promise<void>;

/** Settings accepted by `new MPMS(options)`. Times are milliseconds, sizes MiB. */
export interface MPMSOptions {
  /** Path (relative to cwd) or URL of the worker module. Required. */
  worker: string | URL;
  /** Name of the task function export. Default `'default'`. */
  export?: string;
  /** Receives `(meta, result)` for every task. Not together with `iterResults()`. */
  collector?: Collector;
  /** Child processes. Default `os.availableParallelism()`. */
  processes?: number;
  /** Worker threads per child. Default 2. */
  threads?: number;
  /** Tasks one thread runs at once (for async workers). Default 1. */
  concurrency?: number;
  /** Tasks the master holds waiting for a thread. Default `processes * threads * 3 + 30`. */
  taskQueueMaxsize?: number;
  /** How long `put()` may wait for room before rejecting with `QueueFullError`. Default: forever. */
  putTimeout?: number;
  /** User keys copied into every `meta`. */
  meta?: Record<string, unknown>;
  /** Soft: a thread retires after this many tasks. */
  lifecycle?: number;
  /** Soft: a thread retires after this many ms. */
  lifecycleDuration?: number;
  /** Fraction by which each thread's lifecycle limits vary, so retirements spread. Default 0. */
  lifecycleJitter?: number;
  /** Soft: a thread retires when its heap exceeds this many MiB after a task. */
  lifecycleMemory?: number;
  /** Soft: a child retires when its RSS exceeds this many MiB. */
  processMemoryLimit?: number;
  /** Hard: a child older than this is killed; its running tasks settle `timeout`. */
  lifecycleDurationHard?: number;
  /** Hard: a task running longer than this settles `timeout` and its thread is replaced if it does not stop. */
  taskTimeout?: number;
  /** Re-runs of a task whose outcome is among `retryOn` (default: it crashed or timed out) before it is final. Default 0. */
  retries?: number;
  /** *(added)* Outcomes that are retried (up to `retries`): `'crashed' | 'timeout' | 'error'`. Default `['crashed', 'timeout']`. */
  retryOn?: RetryableStatus[];
  /** *(added)* ms before the first retry; each next delay is `retryBackoff` times longer (±20% jitter). Default 0. */
  retryDelay?: number;
  /** *(added)* Factor by which each retry delay grows. Default 2. */
  retryBackoff?: number;
  /** *(added)* Cap of a retry delay in ms. Default: none. */
  retryMaxDelay?: number;
  /** *(added)* ms between a task's signal aborting (timeout, cancel) and its thread being terminated if it has not returned. Default 500. */
  abortGrace?: number;
  /** Outcomes waiting for the collector or iterator; dispatch pauses while this many wait. Default `taskQueueMaxsize`. */
  resultQueueMaxsize?: number;
  /** ms between health checks of the children. Default 1000. */
  subprocCheckInterval?: number;
  /**
   * A graceful die is a soft restart: the process takes no more tasks and lets every running
   * one finish (only `taskTimeout` / `lifecycleDurationHard` can cut them). If it still runs
   * tasks this many ms after the graceful-die error, it logs a warning, once. Default 5000.
   */
  workerGracefulDieTimeout?: number;
  /** Error names that trigger graceful die. Default `['WorkerGracefulDie']`. */
  workerGracefulDieErrors?: string[];
  /** ms each hook (initializers, finalizers) may run. Default 30000. */
  hookTimeout?: number;
  /**
   * ms a retiring thread lets background work its tasks started without awaiting (a timer, an
   * upload, a write) finish after its finalizer, before it exits and cuts what is still pending
   * (logged as a warning naming it, counted in `metrics().cutOnExit`). A thread with nothing
   * pending exits at once. A shutdown's grace bounds it too. Default 5000.
   */
  threadDrainTimeout?: number;
  /** Structured-cloneable value handed to every hook as `ctx.initArgs`. */
  initArgs?: unknown;
  /** Base name for process titles, thread names and logs. */
  name?: string;
  /** A pino logger. Default: pino at level `warn` to stderr. */
  logger?: Logger;
  /** true: SIGINT/SIGTERM start `gracefulShutdown`; a second signal terminates. Default false. */
  handleSignals?: boolean;
  /** Where workers' stdout goes: the master's stdout (`'inherit'`, default) or its stderr (`'stderr'`), e.g. when stdout carries data. */
  workerStdout?: 'inherit' | 'stderr';
  /**
   * Where tasks go: default the engine's own child processes. `bullmqTransport(...)` from
   * `mpms/bullmq` sends them through BullMQ on Redis to `mpms worker` engines instead
   * (docs/scale-out.md); `processes`, `threads` and the child settings then belong to those engines.
   */
  transport?: Transport;
}

/** Options after validation and defaults: every number present where it has a default. */
export interface ResolvedOptions {
  worker: string;
  export: string;
  collector: Collector | undefined;
  processes: number;
  threads: number;
  concurrency: number;
  taskQueueMaxsize: number;
  putTimeout: number | undefined;
  meta: Record<string, unknown>;
  lifecycle: number | undefined;
  lifecycleDuration: number | undefined;
  lifecycleJitter: number;
  lifecycleMemory: number | undefined;
  processMemoryLimit: number | undefined;
  lifecycleDurationHard: number | undefined;
  taskTimeout: number | undefined;
  retries: number;
  retryOn: RetryableStatus[];
  retryDelay: number;
  retryBackoff: number;
  retryMaxDelay: number;
  abortGrace: number;
  resultQueueMaxsize: number;
  subprocCheckInterval: number;
  workerGracefulDieTimeout: number;
  workerGracefulDieErrors: string[];
  hookTimeout: number;
  threadDrainTimeout: number;
  initArgs: unknown;
  name: string;
  logger: Logger | undefined;
  handleSignals: boolean;
  workerStdout: 'inherit' | 'stderr';
  transport: Transport | undefined;
}

/** One engine setting (see lib/settings.ts for what each field means). */
export type OptionSpec = Setting<keyof MPMSOptions>;

/**
 * Every setting of `MPMSOptions`, in one list: validation, defaults, CLI flags and the option
 * table of docs/api.md all come from here. Read-only; useful to build your own CLI or config
 * loader on the same rules.
 */
export const OPTION_SPECS: readonly OptionSpec[] = settings<keyof MPMSOptions>([
  { name: 'worker', kind: 'module', required: true, defaultText: '(required)', description: 'path (relative to cwd) or URL of the worker module' },
  { name: 'export', kind: 'string', default: 'default', description: 'name of the task function export', cli: { flag: 'export' } },
  { name: 'collector', kind: 'function', defaultText: 'none', description: '(meta, result) => void | Promise<void>, called once per outcome, one at a time, in order (see docs/guarantees.md, "User code")' },
  { name: 'processes', kind: 'int>=1', derive: () => os.availableParallelism(), defaultText: 'os.availableParallelism()', description: 'child processes', cli: { flag: 'processes', short: 'p' } },
  { name: 'threads', kind: 'int>=1', default: 2, description: 'worker threads per child process', cli: { flag: 'threads', short: 't' } },
  { name: 'concurrency', kind: 'int>=1', default: 1, description: 'tasks one thread runs at once (async workers)', cli: { flag: 'concurrency' } },
  { name: 'taskQueueMaxsize', kind: 'int>=1', derive: (o) => (o.processes as number) * (o.threads as number) * 3 + 30, defaultText: 'processes * threads * 3 + 30', description: 'tasks the master holds waiting for a thread', cli: { flag: 'task-queue-maxsize' } },
  { name: 'putTimeout', kind: 'ms', defaultText: 'none (wait forever)', description: 'ms put() may wait for room, then QueueFullError' },
  { name: 'meta', kind: 'object', default: {}, description: 'user keys copied into every meta' },
  { name: 'lifecycle', kind: 'int>=1', defaultText: 'none', description: 'soft: a thread retires after this many tasks', cli: { flag: 'lifecycle' } },
  { name: 'lifecycleDuration', kind: 'ms', defaultText: 'none', description: 'soft: a thread retires after this many ms', cli: { flag: 'lifecycle-duration' } },
  { name: 'lifecycleJitter', kind: 'fraction', default: 0, description: 'each thread\'s lifecycle limits vary by up to ± this fraction', cli: { flag: 'lifecycle-jitter' } },
  { name: 'lifecycleMemory', kind: 'mib', defaultText: 'none', description: 'soft: a thread retires when its heap exceeds this many MiB after a task', cli: { flag: 'lifecycle-memory' } },
  { name: 'processMemoryLimit', kind: 'mib', defaultText: 'none', description: 'soft: a child retires when its RSS exceeds this many MiB', cli: { flag: 'process-memory-limit' } },
  { name: 'lifecycleDurationHard', kind: 'ms', defaultText: 'none', description: 'hard: a child older than this is killed (its running tasks: timeout)', cli: { flag: 'lifecycle-duration-hard' } },
  { name: 'taskTimeout', kind: 'ms', defaultText: 'none', description: 'hard: a task running longer than this settles timeout', cli: { flag: 'task-timeout' } },
  { name: 'retries', kind: 'int>=0', default: 0, description: 're-runs of a task whose outcome is among retryOn (by default: its worker crashed or it timed out)', cli: { flag: 'retries' } },
  { name: 'retryOn', kind: 'statuses', default: ['crashed', 'timeout'], description: "*(added)* outcomes that are retried: 'crashed' | 'timeout' | 'error' (a thrown UnrecoverableError never is)" },
  { name: 'retryDelay', kind: 'ms>=0', default: 0, description: '*(added)* ms before the first retry (±20% jitter); the task holds no thread and no queue slot meanwhile', cli: { flag: 'retry-delay' } },
  { name: 'retryBackoff', kind: 'number>=1', default: 2, description: '*(added)* factor by which each retry delay grows' },
  { name: 'retryMaxDelay', kind: 'ms', default: Number.POSITIVE_INFINITY, defaultText: 'none', description: '*(added)* cap of a retry delay in ms' },
  { name: 'abortGrace', kind: 'ms', default: 500, description: "*(added)* ms between a task's signal aborting and its thread being terminated if it has not returned", cli: { flag: 'abort-grace' } },
  { name: 'resultQueueMaxsize', kind: 'int>=1', derive: (o) => o.taskQueueMaxsize, defaultText: 'taskQueueMaxsize', description: 'outcomes waiting for the collector/iterator; dispatch pauses while full' },
  { name: 'subprocCheckInterval', kind: 'ms', default: 1000, description: 'ms between health checks of the children' },
  { name: 'workerGracefulDieTimeout', kind: 'ms', default: 5000, description: 'ms after which a gracefully dying process that still runs tasks logs a warning (its tasks are never cut: a soft restart)' },
  { name: 'workerGracefulDieErrors', kind: 'string[]', default: ['WorkerGracefulDie'], description: 'error names that trigger graceful die' },
  { name: 'hookTimeout', kind: 'ms', default: 30000, description: 'ms each initializer or finalizer may run', cli: { flag: 'hook-timeout' } },
  /**
   * A retiring thread with nothing pending exits at once, so this bounds only threads whose tasks
   * left work running; it costs no recycling speed (measured: bench/restart-storm.mjs, see
   * docs/guarantees.md), only the memory of a lingering thread meanwhile. 5 s lets an ordinary
   * upload or write finish; longer work belongs in `keepAlive` (bounded by `hookTimeout`).
   */
  {
    name: 'threadDrainTimeout',
    kind: 'ms',
    default: 5000,
    description: 'ms a retiring thread lets unawaited background work finish, then cuts it (logged, counted)',
    cli: { flag: 'thread-drain-timeout' },
  },
  { name: 'initArgs', kind: 'cloneable', defaultText: 'undefined', description: 'structured-cloneable value handed to every hook as ctx.initArgs' },
  { name: 'name', kind: 'string', default: 'mpms', description: 'base name for process titles, thread names and logs', cli: { flag: 'name' } },
  { name: 'logger', kind: 'logger', defaultText: "pino at level 'warn' to stderr", description: 'a pino logger' },
  { name: 'workerStdout', kind: 'stdout', default: 'inherit', description: "where workers' stdout goes: 'inherit' (the master's stdout) or 'stderr'" },
  { name: 'transport', kind: 'transport', defaultText: 'local (child processes)', description: "where tasks go: bullmqTransport({ connection, queue }) from 'mpms/bullmq' sends them to `mpms worker` engines over Redis" },
  { name: 'handleSignals', kind: 'boolean', default: false, description: 'SIGINT/SIGTERM -> gracefulShutdown; a second signal -> terminate' },
]);

/**
 * Validates every setting at once and fills in defaults.
 * @throws ConfigError listing every problem found, not just the first.
 */
export function resolveOptions(input: MPMSOptions): ResolvedOptions {
  if (input === null || typeof input !== 'object') throw new ConfigError(['options must be an object with at least `worker`']);
  const out = resolveSettings<ResolvedOptions>(OPTION_SPECS, input as unknown as Record<string, unknown>);
  if (input.worker instanceof URL) out.worker = input.worker.href;
  return out;
}
