/**
 * Every message between master, child and thread, declared once and imported by all three.
 *
 *   master --(IPC, advanced serialization)--> child --(MessagePort)--> thread
 *
 * Tasks and results travel as tuples, not objects: they cross two structured-clone hops per
 * task, and tuples are the cheapest shape to clone. Batches carry many of them per message.
 */
import v8 from 'node:v8';

/** Outcome codes on the wire; index into `STATUS_BY_CODE`. */
export const Code = { Ok: 0, Error: 1, Timeout: 2, Crashed: 3, Cancelled: 4 } as const;
export type Code = (typeof Code)[keyof typeof Code];

/** The five outcome statuses, in code order: the one list (`TaskStatus` in types.ts derives from it). */
export const STATUS_BY_CODE = ['ok', 'error', 'timeout', 'crashed', 'cancelled'] as const;
export type Status = (typeof STATUS_BY_CODE)[number];

/** A zeroed count per status. */
export function countByStatus(): Record<Status, number> {
  return { ok: 0, error: 0, timeout: 0, crashed: 0, cancelled: 0 };
}

/**
 * A task on the wire: [taskId, args, timeoutMs (0 = none, ABORTABLE), attempt]. `args` travels as is when
 * every argument is a primitive (a lone primitive argument as itself, not wrapped in an array:
 * one allocation fewer per task on each of the three (de)serializations); otherwise as the bytes
 * of `v8.serialize(args)`, made once in the master and read once in the thread. That keeps full
 * fidelity (a Buffer stays a Buffer, which postMessage alone would turn into a Uint8Array) and
 * costs the child nothing: it relays bytes.
 */
export type TaskWire = [id: number, args: WireArgs, timeoutMs: number, attempt: number, exportName?: string];

/** A task's arguments on the wire: all of them (primitives), their serialized bytes, or a lone primitive. */
export type WireArgs = unknown[] | Uint8Array | string | number | boolean | bigint | null | undefined;

/**
 * `TaskWire[2]` for a task without a time limit that may still be aborted (it has an
 * AbortSignal): like a timed task, its thread may be terminated under it.
 */
export const ABORTABLE = -1;

/** Set on a ResultWire code when its value travels as `v8.serialize` bytes (see TaskWire). */
export const SERIALIZED = 8;

/**
 * An outcome on the wire: [taskId, code, value, startedAt, endedAt, attempt, threadIndex].
 * `value` is the result for `Ok` (as bytes when `code & SERIALIZED`), an `ErrorWire` otherwise.
 * `attempt` ties it to one run of the task: a late outcome of an earlier attempt (one that
 * timed out and was retried, maybe on the same thread) must never settle a later one. `startedAt` is 0 when the task never
 * started. The thread writes its own `threadIndex` (-1: decided by the child for a task no thread held), so
 * the child relays outcomes as they are.
 */
export type ResultWire = [id: number, code: number, value: unknown, startedAt: number, endedAt: number, attempt: number, threadIndex: number];

/*
 * Named reads of the wire tuples. The tuples stay (measured: the cheapest shape across the two
 * structured-clone hops); these one-line functions give each position its name and are inlined
 * by the JIT where they run per task, so the relay and the runner read names, not indices.
 */

/** The task id of a `TaskWire`. */
export const taskId = (t: TaskWire): number => t[0];
/** Its arguments, as they travel (see `WireArgs`). */
export const taskArgs = (t: TaskWire): WireArgs => t[1];
/** Its time limit in ms: 0 for none, `ABORTABLE` for none but an AbortSignal; > 0 is a hard limit. */
export const taskTimeout = (t: TaskWire): number => t[2];
/** Which attempt of the task this is (1 for the first run). */
export const taskAttempt = (t: TaskWire): number => t[3];

/** The task id of a `ResultWire`. */
export const resultId = (r: ResultWire): number => r[0];
/** Its `Code` (with `SERIALIZED` set when the value travels as bytes). */
export const resultCode = (r: ResultWire): number => r[1];
/** The result (for `Ok`) or the `ErrorWire`. */
export const resultValue = (r: ResultWire): unknown => r[2];
/** Epoch ms its attempt started; 0 if it never started. */
export const resultStartedAt = (r: ResultWire): number => r[3];
export const resultEndedAt = (r: ResultWire): number => r[4];
/** The attempt it settles: a late outcome of an earlier attempt must not settle a later one. */
export const resultAttempt = (r: ResultWire): number => r[5];
/** The thread that decided it, or -1 when the child did for a task no thread held. */
export const resultThread = (r: ResultWire): number => r[6];

/** The same outcome with another code and value (an outcome that cannot be sent, replaced). */
export function replacedResult(r: ResultWire, code: number, value: unknown): ResultWire {
  return [r[0], code, value, r[3], r[4], r[5], r[6]];
}

/**
 * Tasks crossing the master -> child pipe, as columns (see `OutcomeColumns` for why): the numbers
 * of every task in one Float64Array (`TASK_FIELDS` per task: id, timeoutMs, attempt) and the
 * arguments beside it. The child turns them back into `TaskWire`s, which it holds and hands on.
 */
export interface TaskColumns {
  nums: Float64Array;
  args: WireArgs[];
  /**
   * Per task, the export of the worker module it calls when not the engine's `export`
   * (`submit({ export })`); absent from a batch where no task names one, so it costs nothing unused.
   */
  exports?: (string | undefined)[];
}

export const TASK_FIELDS = 3;

/** The `TaskWire`s of a batch of columns. */
export function fromTaskColumns({ nums, args, exports }: TaskColumns): TaskWire[] {
  const out = new Array<TaskWire>(args.length);
  for (let i = 0, o = 0; i < args.length; i++, o += TASK_FIELDS) out[i] = [nums[o]!, args[i], nums[o + 1]!, nums[o + 2]!];
  if (exports) for (let i = 0; i < exports.length; i++) if (exports[i] !== undefined) out[i]!.push(exports[i]);
  return out;
}

/**
 * Outcomes crossing the child -> master pipe, as columns: the numbers of every outcome in one
 * Float64Array (`OUTCOME_FIELDS` per outcome: id, code, startedAt, endedAt, attempt, threadIndex)
 * and the values beside it. The IPC serializer copies a typed array in one piece; an array of
 * tuples costs it (and the master's garbage collector) one array and six tagged numbers per task.
 */
export interface OutcomeColumns {
  nums: Float64Array;
  values: unknown[];
}

export const OUTCOME_FIELDS = 6;

/** Packs outcomes (as the threads send them) for the master. */
export function toOutcomeColumns(results: readonly ResultWire[]): OutcomeColumns {
  const n = results.length;
  const nums = new Float64Array(n * OUTCOME_FIELDS);
  const values = new Array<unknown>(n);
  for (let i = 0, o = 0; i < n; i++, o += OUTCOME_FIELDS) {
    const r = results[i]!;
    nums[o] = resultId(r);
    nums[o + 1] = resultCode(r);
    nums[o + 2] = resultStartedAt(r);
    nums[o + 3] = resultEndedAt(r);
    nums[o + 4] = resultAttempt(r);
    nums[o + 5] = resultThread(r);
    values[i] = resultValue(r);
  }
  return { nums, values };
}

/**
 * The latest progress value of one attempt: [taskId, attempt, value]. Coalesced on the way
 * (a thread keeps only the latest per task until its next flush), so a task reporting faster
 * than the hops carry never blocks and never floods.
 */
export type ProgressWire = [id: number, attempt: number, value: unknown];

/** An Error flattened so that its name, stack, cause and own fields survive both hops. */
export interface ErrorWire {
  name: string;
  message: string;
  stack?: string;
  cause?: ErrorWire | { value: unknown };
  props?: Record<string, unknown>;
  /**
   * `v8.serialize({ cause, props })`, in place of those two, when either holds more than
   * primitives. A structure too deep for the receiving side's stack then costs only its own task
   * (the master decodes it in settle()), never the message (a batch of outcomes) it travels in.
   */
  packed?: Uint8Array;
}

/** Where a child or thread was when it failed to start. */
export const START_PHASES = ['load', 'export', 'processInitializer', 'threadInitializer', 'threadStart'] as const;
export type StartPhase = (typeof START_PHASES)[number];

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

/** A log line raised in a child or thread, written by the master's logger so all logs share one destination. */
export interface LogMessage {
  t: 'log';
  level: LogLevel;
  msg: string;
  fields?: Record<string, unknown>;
}

/** Log fields naming the tasks a line is about: `taskId` for one, `taskIds` for several. */
export function taskIdFields(ids: number[]): { taskId?: number; taskIds?: number[] } {
  return ids.length === 1 ? { taskId: ids[0]! } : ids.length > 1 ? { taskIds: ids } : {};
}

/**
 * Layout of `ThreadInit.slots` (a Float64Array): [0] = tasks consumed from the head of the
 * thread's queue; then per running slot k: id at `idAt(k)`, attempt at `idAt(k) + 1`, start
 * (epoch ms) at `idAt(k) + 2`. Written by the thread runner, read by the child's thread slot.
 * Order of writes: a task's slot is filled before it is counted consumed, and emptied when it
 * finishes; so a reader that reads the count first, then the slots, sees a consumed task that
 * is in no slot only once it has finished (or was skipped, aborted before it started).
 */
export const SLOTS = {
  bytes: (concurrency: number) => 8 * (1 + 3 * concurrency),
  consumed: 0,
  idAt: (k: number) => 1 + 3 * k,
} as const;

/** Why a thread or process is being replaced: the one list (`RestartReason` in types.ts derives from it). */
export const RESTART_REASONS = ['crash', 'lifecycle', 'hard', 'gracefulDie', 'initFailure'] as const;
export type Reason = (typeof RESTART_REASONS)[number];

/** A zeroed count per restart reason. */
export function countByReason(): Record<Reason, number> {
  return { crash: 0, lifecycle: 0, hard: 0, gracefulDie: 0, initFailure: 0 };
}

/** Settings every child receives once, in its `init` message. */
export interface ChildInit {
  module: string;
  exportName: string;
  processIndex: number;
  name: string;
  threads: number;
  concurrency: number;
  hookTimeout: number;
  initArgs: unknown;
  lifecycle: number | undefined;
  lifecycleDuration: number | undefined;
  lifecycleJitter: number;
  lifecycleMemory: number | undefined;
  processMemoryLimit: number | undefined;
  gracefulDieErrors: string[];
  gracefulDieTimeout: number;
  /** ms the child waits, after a hard limit fired, for the task to return before it terminates the thread. */
  abortGraceMs: number;
  /** Directory of the start logs (see shared/start-log.ts). */
  startLogDir: string;
  /** ms a retiring thread lets background work drain after its finalizer (`threadDrainTimeout`). */
  drainMs: number;
}

/** What each thread receives as `workerData`. */
export interface ThreadInit {
  module: string;
  exportName: string;
  processIndex: number;
  threadIndex: number;
  name: string;
  concurrency: number;
  hookTimeout: number;
  initArgs: unknown;
  processData: unknown;
  /** Tasks after which the thread retires (already jittered), or 0. */
  lifecycle: number;
  /**
   * ms after which the thread retires (already jittered), or 0; timed by the child from when the
   * thread takes its slot (a successor on standby does not age), which then sends `retire`.
   */
  lifecycleDuration: number;
  /** Heap MiB after a task above which the thread retires, or 0. */
  lifecycleMemory: number;
  gracefulDieErrors: string[];
  /** ms a retiring thread lets background work drain after its finalizer (`threadDrainTimeout`). */
  drainMs: number;
  /**
   * Shared with the child (layout: `SLOTS`): a consumed count, then `concurrency` slots of
   * [taskId, attempt, startedAt]. The thread writes a slot
   * before it calls the task function, so the child knows what runs even while the thread is
   * stuck in synchronous code (for timeouts, and for telling crashed from unstarted tasks).
   */
  slots: SharedArrayBuffer;
  /** This thread's start log file (see shared/start-log.ts). */
  startLog: string;
}

// ---- master -> child -------------------------------------------------------------------------

export type ToChild =
  | { t: 'init'; init: ChildInit }
  | { t: 'tasks'; tasks: TaskColumns }
  /** Settle these tasks now with `code` (Timeout or Cancelled), abort their signals, end their threads if they do not stop. */
  | { t: 'abort'; ids: number[]; code: typeof Code.Timeout | typeof Code.Cancelled; reason: string }
  /**
   * Stop: hand back unstarted tasks, let running ones finish within `graceMs`, then settle what
   * still runs with `leftover` (abort, then terminate its thread), run finalizers, exit.
   */
  | { t: 'stop'; graceMs: number; reason: Reason | 'shutdown'; leftover: typeof Code.Timeout | typeof Code.Crashed | typeof Code.Cancelled };

// ---- child -> master -------------------------------------------------------------------------

export type FromChild =
  | { t: 'ready'; pid: number }
  /** Progress reported by tasks (`taskContext().progress()`), relayed as it came from the threads. */
  | { t: 'progress'; items: ProgressWire[] }
  | {
      t: 'batch';
      /** Outcomes decided in this child. */
      done?: OutcomeColumns;
      /** Tasks handed back unstarted (stop, graceful die, retirement): the master re-queues them. */
      returned?: number[];
    }
  | { t: 'fatal'; phase: StartPhase; error: ErrorWire }
  /** `warm`: the replacement was ready when the old thread stopped taking tasks (see MPMSEvents.restart). */
  | { t: 'restart'; threadIndex: number; reason: Reason; detail?: string; warm?: boolean }
  /**
   * Threads of this child that are ready and not yet exited (a retiring one still draining
   * counts). Sent whenever that number changes, before the `restart` that reports a death, so
   * `metrics().threadsAlive` is already right when the master emits the event.
   */
  | { t: 'threads'; alive: number }
  /** The child will take no more tasks (graceful die, memory limit); the master starts its replacement now. */
  | { t: 'retiring'; reason: Reason; detail?: string }
  /**
   * A retiring thread exited with background work still pending (its drain deadline, or a
   * shutdown's, cut it): `pending` names it (`process.getActiveResourcesInfo()` in the thread).
   * Counted in `metrics().cutOnExit`.
   */
  | { t: 'cut'; threadIndex: number; pending: string[]; detail: string }
  | LogMessage;

// ---- child -> thread -------------------------------------------------------------------------

export type ToThread =
  | { t: 'tasks'; tasks: TaskWire[] }
  /** Abort this attempt of the task, if the thread still holds it (waiting or running); else nothing. */
  | { t: 'abort'; id: number; attempt: number; reason: string }
  /**
   * Finish what runs, hand back what waits, run the finalizer, let background work drain, exit.
   * `deadlineAt` (epoch ms, a shutdown's grace): the drain ends by then at the latest. Sent again
   * to a thread that retires already, it shortens the drain.
   */
  | { t: 'retire'; reason: Reason; detail?: string; deadlineAt?: number };

/** One attempt of a task: [taskId, attempt]. */
export type AttemptKey = [id: number, attempt: number];

// ---- thread -> child -------------------------------------------------------------------------

export type FromThread =
  | { t: 'ready' }
  | { t: 'progress'; items: ProgressWire[] }
  | { t: 'done'; done: ResultWire[] }
  /** The thread will take no more tasks; `returned` are the attempts it held unstarted. */
  | { t: 'retiring'; reason: Reason; returned: AttemptKey[]; detail?: string }
  | { t: 'fatal'; phase: StartPhase; error: ErrorWire }
  /**
   * After its finalizer, the retiring thread's event loop still had work (what
   * `process.getActiveResourcesInfo()` listed): it lets it drain, until `deadlineAt` at most.
   */
  | { t: 'draining'; pending: string[]; deadlineAt: number }
  /** The drain deadline came with work still pending (listed): the thread exits now, cutting it. */
  | { t: 'cut'; pending: string[]; waitedMs: number }
  | LogMessage;

// ---- child <-> its watchdog thread (child/watchdog.ts) --------------------------------------

/** What the child's watchdog thread is started with. */
export interface WatchdogData {
  /** The master's pid: once `process.ppid` differs, the master is gone. */
  masterPid: number;
  childPid: number;
  /** ms between checks of `process.ppid`. */
  pollMs: number;
  /** ms between records of the child's descendants. */
  scanMs: number;
}

export type ToWatchdog =
  /** Where to write the descendant record (the start-log directory), once the child knows it. */
  | { t: 'dir'; dir: string }
  /** The child exits cleanly: kill its descendants, then answer `'reaped'`. */
  | { t: 'reap' }
  /** The child saw its IPC channel close: do what a lost master calls for. */
  | { t: 'orphaned' };

// ---- errors across the boundary --------------------------------------------------------------

/**
 * Flattens ANY thrown value into a form that survives structured clone with its name, message,
 * stack and cause. It never throws and what it returns is always sendable: every read of the
 * value is guarded (a throwing getter, a Proxy trap, a Symbol or a function where a string
 * belongs, a cyclic cause), and own fields are kept only as structured clones. A thrown value
 * is user data: one that cannot be read costs its own task a degraded error, never the batch
 * of outcomes it travels in.
 */
export function toErrorWire(err: unknown, what = 'the error'): ErrorWire {
  return pack(flatten(err, 0), what);
}

/**
 * `wire` with its cause and fields as bytes unless they are plainly flat (the common case, left
 * as is). If they cannot be serialized, a SerializationError naming `what` keeps the readable part.
 */
function pack(wire: ErrorWire, what: string): ErrorWire {
  const { cause, props } = wire;
  if (cause === undefined && (props === undefined || allPrimitive(props))) return wire;
  const { name, message, stack } = wire;
  const out: ErrorWire = { name, message };
  if (stack !== undefined) out.stack = stack;
  try {
    out.packed = v8.serialize({ cause, props });
    return out;
  } catch (err) {
    const why = describe(read(() => (err as Error).message) ?? err);
    return { name: 'SerializationError', message: `${what} (${name}: ${message}) cannot be sent: ${why}`, stack };
  }
}

function allPrimitive(props: Record<string, unknown>): boolean {
  for (const key in props) {
    const v = props[key];
    if (v !== null && typeof v === 'object') return false;
  }
  return true;
}

function flatten(err: unknown, depth: number): ErrorWire {
  let isError = false;
  try {
    isError = err instanceof Error;
  } catch {
    // A Proxy whose getPrototypeOf trap throws: read as a non-Error value below.
  }
  if (!isError) {
    const message = `a non-Error value was thrown: ${describe(err)}`;
    return { name: 'NonErrorThrown', message, props: { value: cloneable(err) } };
  }
  const e = err as Error & Record<string, unknown>;
  const wire: ErrorWire = {
    name: textOf(() => e.name, 'Error') || 'Error',
    message: textOf(() => e.message, '(reading its message threw)'),
  };
  const stack = read(() => e.stack);
  if (stack !== undefined) wire.stack = typeof stack === 'string' ? stack : describe(stack);
  const cause = read(() => e.cause);
  if (cause !== undefined && depth < 8) {
    let causeIsError = false;
    try {
      causeIsError = cause instanceof Error;
    } catch {
      // as above
    }
    wire.cause = causeIsError ? flatten(cause, depth + 1) : { value: cloneable(cause) };
  }
  let keys: string[] = [];
  try {
    keys = Object.keys(e);
  } catch {
    // ownKeys trap threw: no own fields.
  }
  const props: Record<string, unknown> = {};
  let any = false;
  for (const key of keys) {
    if (key === 'name' || key === 'message' || key === 'stack' || key === 'cause') continue;
    let value: unknown;
    try {
      value = e[key];
    } catch (getterErr) {
      value = `(reading this field threw: ${describe(read(() => (getterErr as Error).message) ?? getterErr)})`;
    }
    props[key] = cloneable(value);
    any = true;
  }
  if (any) wire.props = props;
  return wire;
}

/** `get()`, or undefined if reading it throws. */
function read(get: () => unknown): unknown {
  try {
    return get();
  } catch {
    return undefined;
  }
}

/** A string field of an error (name, message) as a string, whatever it holds; `fallback` if reading it throws. */
function textOf(get: () => unknown, fallback: string): string {
  let value: unknown;
  try {
    value = get();
  } catch {
    return fallback;
  }
  if (typeof value === 'string') return value;
  return value === undefined ? '' : describe(value);
}

function describe(value: unknown): string {
  try {
    return typeof value === 'string' ? JSON.stringify(value) : String(value);
  } catch {
    try {
      return Object.prototype.toString.call(value);
    } catch {
      return typeof value;
    }
  }
}

/**
 * A structured clone of `value`, or its description when it cannot be cloned. The clone, not the
 * value: a getter or a Proxy may answer differently the next time the value is read.
 */
function cloneable(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return typeof value === 'function' || typeof value === 'symbol' ? describe(value) : value;
  try {
    return structuredClone(value);
  } catch {
    return describe(value);
  }
}
