/** Public data shapes: what a task's outcome, the summary and the metrics look like. */
import type { Reason, Status } from './protocol.js';

/** The five outcomes; every accepted task gets exactly one. */
export type TaskStatus = Status;

/** What the collector and the iterator receive with every result. */
export interface Meta {
  /** The id `put()`/`submit()` resolved with: 1, 2, 3... in acceptance order. */
  taskId: number;
  /** The arguments as given to `put()`. */
  args: unknown[];
  /** The outcome. `result` is the return value when `'ok'`, else an Error. */
  status: TaskStatus;
  /** Runs started for this task (1 unless `retries` re-ran it; 0 when it never started). */
  attempts: number;
  /** Epoch ms when the last attempt started running in a thread. */
  startedAt?: number;
  /** Epoch ms when the outcome was decided. */
  endedAt?: number;
  /** ms the last attempt ran. */
  runMs?: number;
  /** ms from acceptance by `put()` until the last attempt started. */
  waitMs?: number;
  /** The child process slot that ran (or held) the last attempt. */
  processIndex?: number;
  /** The thread slot, within that child, that ran the last attempt. */
  threadIndex?: number;
  /** OS pid of that child process. */
  pid?: number;
  /** The worker engine that ran it (`host:pid`), when the task went through a transport (scale-out). */
  worker?: string;
  /** Keys from the `meta` option and from `submit(args, { meta })`. */
  [userKey: string]: unknown;
}

/** One outcome, as yielded by `iterResults()`. */
export interface TaskResult {
  meta: Meta;
  /** The return value when `meta.status === 'ok'`, else an Error (see `Meta.status`). */
  result: unknown;
}

/** Counts of outcomes; `total === ok + error + timeout + crashed + cancelled` always. */
export interface Summary {
  total: number;
  ok: number;
  error: number;
  timeout: number;
  crashed: number;
  cancelled: number;
  /** ms from `start()` to the end of the run. */
  durationMs: number;
  /**
   * Tasks that never started and were cancelled by a shutdown, with their arguments, so they can
   * be saved or re-queued. Set on the summary `join()`, `gracefulShutdown()` and `terminate()` return.
   */
  unstarted?: Array<{ taskId: number; args: unknown[] }>;
}

/** Percentiles of a distribution in ms (0 while there is no sample). */
export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** Samples so far (the Prometheus summary's `_count`). */
  count: number;
  /** Their sum in ms (the Prometheus summary's `_sum`, in seconds there). */
  sum: number;
}

/**
 * Why a thread or process was replaced: `crash` (it died), `lifecycle` (a soft limit: tasks,
 * duration, memory), `hard` (`lifecycleDurationHard`, or a thread terminated for a stuck task),
 * `gracefulDie` (a task threw a graceful-die error), `initFailure` (a hook or the module failed at start).
 */
export type RestartReason = Reason;

/** A snapshot of the engine, from `metrics()`. */
export interface Metrics {
  /** Tasks accepted and waiting in the master's queue. */
  queued: number;
  /** Tasks sent to a child and not yet settled (running, or waiting in the child's window). */
  running: number;
  /** Tasks with an outcome. */
  finished: number;
  /** *(added)* Tasks waiting out a retry delay (in no queue and on no thread). */
  delayed: number;
  /** *(added)* Unsettled tasks that reported progress in the last 5 s. */
  progressing: number;
  /** Tasks accepted. */
  total: number;
  /** Child processes that have reported ready and not exited. */
  processesAlive: number;
  /** Threads the children report ready and not exited (live, not `processes * threads`). */
  threadsAlive: number;
  /** Replacements so far, by reason. */
  restarts: Record<RestartReason, number>;
  /** Outcomes so far, by status. */
  outcomes: Record<TaskStatus, number>;
  /**
   * Retiring threads that exited with background work still pending (a timer, a socket, a file
   * operation a task started without awaiting), cut by `threadDrainTimeout` or a shutdown's deadline.
   * Each is also logged as a warning naming what was pending. *(added)*
   */
  cutOnExit: number;
  /** How long tasks ran (last attempt). */
  runMs: Percentiles;
  /** How long tasks waited from `put()` to the start of their last attempt. */
  waitMs: Percentiles;
}

/** What a running task sees through `taskContext()`. */
export interface TaskContext {
  /** The task's id, as `put()` returned it. */
  taskId: number;
  /** Aborts when the task times out, is cancelled, or the engine shuts down. */
  readonly signal: AbortSignal;
  /** 1 for the first run, 2 for the first retry, ... */
  attempt: number;
  /**
   * *(added)* Reports progress (any structured-cloneable value): the master emits
   * `'progress'` `(meta, value)` and calls `run(args, { onProgress })`. Never blocks; when the
   * task reports faster than it can be carried, only the latest value is delivered.
   */
  progress(value: unknown): void;
  /** Makes the thread's retirement wait (bounded by `hookTimeout`) for work the task started but did not await. */
  keepAlive(promise: Promise<unknown>): void;
  /** This child process's slot (0 .. processes - 1). */
  processIndex: number;
  /** This thread's slot in its child (0 .. threads - 1). */
  threadIndex: number;
  /** What `processInitializer` returned in this child. */
  processData: unknown;
}

/** What every hook receives. */
export interface HookContext {
  /** The engine's `name`. */
  name: string;
  /** The child process slot. */
  processIndex: number;
  /** -1 in process hooks. */
  threadIndex: number;
  /** The `initArgs` setting. */
  initArgs: unknown;
  /** What `processInitializer` returned (undefined in `processInitializer` itself). */
  processData: unknown;
}

/** Per-task options of `submit()`. */
export interface SubmitOptions {
  /** Aborting it cancels the task: `cancelled` if it has not started, else its context signal aborts. */
  signal?: AbortSignal;
  /** Hard limit for this task in ms, overriding `taskTimeout`. */
  timeout?: number;
  /** Keys merged into this task's meta. */
  meta?: Record<string, unknown>;
  /** *(added)* The export of the worker module this task calls; default the engine's `export`. */
  export?: string;
  /** *(added)* Re-runs for this task, overriding the engine's `retries`. */
  retries?: number;
  /** *(added)* Outcomes retried for this task, overriding the engine's `retryOn`. */
  retryOn?: Array<'crashed' | 'timeout' | 'error'>;
  /** *(added)* ms before this task's first retry, overriding the engine's `retryDelay`. */
  retryDelay?: number;
  /** *(added)* Called with each progress value this task reports (latest wins when they come fast). */
  onProgress?: (value: unknown, info: ProgressInfo) => void;
}

/** *(added)* One task running now, from `m.running()`. */
export interface RunningTask {
  taskId: number;
  /** 1 for the first run, 2 for the first retry, ... */
  attempt: number;
  /** The export it calls. */
  export: string;
  processIndex: number;
  threadIndex: number;
  pid: number;
  /** Epoch ms this attempt started in its thread. */
  startedAt: number;
  /** ms it has run so far. */
  runMs: number;
}

/** *(added)* What the master knows of a task when it reports progress. */
export interface ProgressInfo {
  taskId: number;
  attempt: number;
  args: unknown[];
  processIndex?: number;
  [userKey: string]: unknown;
}
