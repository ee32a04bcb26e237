/** Public data shapes: what a task's outcome, the summary and the metrics look like. */

/** The five outcomes; every accepted task gets exactly one. */
export type TaskStatus = 'ok' | 'error' | 'timeout' | 'crashed' | 'cancelled';

/** What the collector and the iterator receive with every result. */
export interface Meta {
  taskId: number;
  args: unknown[];
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
  processIndex?: number;
  threadIndex?: number;
  pid?: number;
  /** The worker engine that ran it (`host:pid`), when the task went through a transport (scale-out). */
  worker?: string;
  [userKey: string]: unknown;
}

/** One outcome, as yielded by `iterResults()`. */
export interface TaskResult {
  meta: Meta;
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
  durationMs: number;
}

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export type RestartReason = 'crash' | 'lifecycle' | 'hard' | 'gracefulDie' | 'initFailure';

/** A snapshot of the engine, from `metrics()`. */
export interface Metrics {
  queued: number;
  running: number;
  finished: number;
  total: number;
  processesAlive: number;
  threadsAlive: number;
  restarts: Record<RestartReason, number>;
  outcomes: Record<TaskStatus, number>;
  runMs: Percentiles;
  waitMs: Percentiles;
}

/** What a running task sees through `taskContext()`. */
export interface TaskContext {
  taskId: number;
  /** Aborts when the task times out, is cancelled, or the engine shuts down. */
  readonly signal: AbortSignal;
  /** 1 for the first run, 2 for the first retry, ... */
  attempt: number;
  /** Makes the thread's retirement wait (bounded by `hookTimeout`) for work the task started but did not await. */
  keepAlive(promise: Promise<unknown>): void;
  processIndex: number;
  threadIndex: number;
  processData: unknown;
}

/** What every hook receives. */
export interface HookContext {
  name: string;
  processIndex: number;
  /** -1 in process hooks. */
  threadIndex: number;
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
}
