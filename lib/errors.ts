/**
 * The error classes of mpms. Every outcome that is not `ok` carries one of these (or the
 * worker's own error, rebuilt), and every bad call rejects with one of these.
 *
 * Classes do not survive a process or thread boundary, so each class sets a stable `name`:
 * code on the far side matches by name (see `workerGracefulDieErrors`).
 */
import type { StartPhase } from './protocol.js';

/** Thrown by a task to make its whole process stop taking tasks and retire gracefully. */
export class WorkerGracefulDie extends Error {
  override name = 'WorkerGracefulDie';
}

/**
 * *(added)* Thrown by a task to say that running it again cannot help: its outcome is `error`
 * at once, whatever `retries`/`retryOn` say. Matched by name, so a worker may throw its own
 * class of that name (or import this one from 'mpms').
 */
export class UnrecoverableError extends Error {
  override name = 'UnrecoverableError';
}

/** Outcome `timeout`: a hard limit (`taskTimeout`, `submit({ timeout })`, `lifecycleDurationHard`) fired. */
export class TaskTimeoutError extends Error {
  override name = 'TaskTimeoutError';
  /** The limit that fired, in ms. */
  readonly timeoutMs: number;
  constructor(message: string, timeoutMs: number) {
    super(message);
    this.timeoutMs = timeoutMs;
  }
}

/** Outcome `crashed`: the thread or the child process running the task died under it. */
export class WorkerCrashedError extends Error {
  override name = 'WorkerCrashedError';
  /** Exit code of the thread or process, when it exited with one. */
  readonly exitCode: number | null;
  /** Signal that ended the process, when one did (e.g. `SIGKILL`, `SIGABRT`, `SIGSEGV`). */
  readonly signal: NodeJS.Signals | null;
  /** Whether the thread or the whole child process died. */
  readonly scope: 'thread' | 'process';
  constructor(message: string, opts: { exitCode: number | null; signal: NodeJS.Signals | null; scope: 'thread' | 'process' }) {
    super(message);
    this.exitCode = opts.exitCode;
    this.signal = opts.signal;
    this.scope = opts.scope;
  }
}

/** Outcome `cancelled`: the task never ran, or was aborted, because of shutdown or an AbortSignal. */
export class TaskCancelledError extends Error {
  override name = 'TaskCancelledError';
}

/** `put()`/`submit()` waited `putTimeout` ms for room in the bounded queue and found none. */
export class QueueFullError extends Error {
  override name = 'QueueFullError';
}

/** One or more settings are wrong; `problems` lists every one of them. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  /** Every problem found, one sentence each. */
  readonly problems: string[];
  constructor(problems: string[]) {
    super(problems.length === 1 ? `mpms: ${problems[0]}` : `mpms: ${problems.length} bad settings:\n  - ${problems.join('\n  - ')}`);
    this.problems = problems;
  }
}

/** An argument or a result that cannot cross to or from a child (structured clone failed). */
export class SerializationError extends Error {
  override name = 'SerializationError';
}

/** The engine is in a state where the call cannot be served (not started, closed, stopped). */
export class EngineStateError extends Error {
  override name = 'EngineStateError';
}

/** A child process or thread could not start: missing module/export, a throwing module, a failing initializer. */
export class WorkerStartError extends Error {
  override name = 'WorkerStartError';
  /**
   * Where it failed, when a child or thread said so: `load` (importing the module), `export`
   * (no such function), `processInitializer`, `threadInitializer`, `threadStart`.
   */
  phase?: StartPhase;
}
