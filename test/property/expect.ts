/**
 * Which outcomes each task of a scenario may have, from the contract. A task's statuses are its
 * own (what its behaviour gives: ok, error, timeout, crashed), plus what the run may legitimately
 * do to it from outside: a sibling that kills the thread or process they share (crashed), the
 * ending (cancelled, except under join), its own AbortSignal (cancelled). Nothing else — in
 * particular nothing the user's callbacks do (a throwing collector, listener or reader never
 * changes an outcome), no soft restart (soft limits never interrupt a task), and no give-up of
 * the engine (every child death in this model has a task to blame: the engine keeps serving).
 */
import { allTasks, isEndless, type Scenario, type Status, type Task } from './model.js';

/**
 * A task's nominal run time (ms): what it sleeps or spins, before any lag. Infinity for tasks
 * that never end by themselves.
 */
export function nominalMs(t: Task, sc: Scenario): number {
  const T = sc.settings.taskTimeout;
  switch (t.kind) {
    case 'sleep':
    case 'long':
      return t.ms;
    case 'near':
      return T === undefined ? 20 : Math.round(T * (1 + t.pct / 100));
    case 'spin':
      return Infinity;
    case 'grandchild':
      return t.after === 'hang' ? Infinity : 0;
    default:
      return 0;
  }
}

/** A tight timeout (< 100 ms): on a loaded machine any task may reach it, whatever it does. */
export function tightTimeout(sc: Scenario): boolean {
  return sc.settings.taskTimeout !== undefined && sc.settings.taskTimeout < 100;
}

/**
 * Margin (ms) within which a task's end and its timeout race: a task that sleeps at least
 * taskTimeout − MARGIN may be timed out. Tasks of the model far below their timeout must be ok.
 */
const MARGIN = 250;

/** Whether this task may be timed out by its own taskTimeout. */
function mayTimeOut(t: Task, sc: Scenario): boolean {
  const T = sc.settings.taskTimeout;
  if (T === undefined) return false;
  return tightTimeout(sc) || nominalMs(t, sc) >= T - MARGIN;
}

/**
 * Whether this task may outlive the abort of its attempt (its timeout, its signal, a shutdown's
 * deadline) by more than the margin: then its thread is terminated 500 ms after the abort
 * (architecture.md, "Hard timeouts"), under every task sharing that thread.
 */
function outlivesAbort(t: Task, sc: Scenario): boolean {
  const T = sc.settings.taskTimeout;
  const d = nominalMs(t, sc);
  if (isEndless(t)) return true;
  if (T !== undefined && d > T + MARGIN) return true;
  return t.abortAfterMs !== undefined && d > t.abortAfterMs + MARGIN;
}

/** Tasks that kill or get terminated their own thread: every task running in that thread goes with it. */
export function threadKillers(sc: Scenario): Task[] {
  return allTasks(sc).filter((t) => t.kind === 'exit' || outlivesAbort(t, sc));
}

/** Tasks that kill their own process: every task running in that child goes with it. */
export function processKillers(sc: Scenario): Task[] {
  return allTasks(sc).filter((t) => t.kind === 'sigkill' || t.kind === 'abort');
}

/** The statuses a task's own behaviour gives it, at its own limits. */
export function ownStatuses(t: Task, sc: Scenario): Status[] {
  const own = ((): Status[] => {
    switch (t.kind) {
      case 'return':
      case 'sleep':
      case 'leak':
      case 'long':
      case 'near':
        return ['ok'];
      case 'throw':
      case 'gracefulDie':
      case 'unsendable':
      case 'badThrow':
        return ['error'];
      // Decoded (ok) where the stack allows, else a SerializationError naming the task.
      case 'deep':
        return ['ok', 'error'];
      // biome-ignore lint/suspicious/noFallthroughSwitchClause: a hanging one is ended as a spin is
      case 'grandchild':
        if (t.after === 'return') return ['ok'];
      // Without a taskTimeout an endless task under join() always has a signal (spinAllowed): 'cancelled' is added for it.
      case 'spin':
        return sc.settings.taskTimeout !== undefined ? ['timeout', 'crashed'] : ['crashed'];
      case 'exit':
      case 'sigkill':
      case 'abort':
        return ['crashed'];
    }
  })();
  if (mayTimeOut(t, sc) && !own.includes('timeout')) own.push('timeout');
  return own;
}

/**
 * What siblings may do to a task, from outside:
 * - `crashed` when a process killer is in the run (a SIGKILL also takes an outcome the child had
 *   not yet written to the master: a documented residual window, even at P1×T1×C1); when a
 *   thread killer is in the run and a thread runs several tasks at once (concurrency > 1);
 *   when a task that outlives its abort shares a child with other threads (its thread may not
 *   die: then the child goes); and when a graceful die's deadline may cut a long sibling;
 * - `timeout` when a task spinning synchronously blocks a thread that runs other tasks too.
 * At P×T×1 with thread killers only, nothing: a thread that dies holds only its own task.
 */
export function collateral(sc: Scenario): Set<Status> {
  const s = sc.settings;
  const out = new Set<Status>();
  const tk = threadKillers(sc);
  if (processKillers(sc).length) out.add('crashed');
  if (s.concurrency > 1 && tk.length) out.add('crashed');
  if (s.threads > 1 && tk.some((t) => isEndless(t) || outlivesAbort(t, sc))) out.add('crashed');
  const tasks = allTasks(sc);
  const dying = tasks.some((t) => t.kind === 'gracefulDie');
  if (
    dying &&
    (s.threads > 1 || s.concurrency > 1) &&
    tasks.some((t) => nominalMs(t, sc) > s.workerGracefulDieTimeout - 100)
  )
    out.add('crashed');
  if (s.taskTimeout !== undefined && s.concurrency > 1 && tasks.some((t) => t.kind === 'spin')) out.add('timeout');
  return out;
}

/**
 * The statuses task `t` may settle with in scenario `sc`: its own, what siblings may do to it,
 * `cancelled` by any ending but join() (and by its own AbortSignal); exactly `cancelled` when
 * its signal had fired before submit() (it cannot have started).
 */
export function allowedStatuses(t: Task, sc: Scenario): Set<Status> {
  if (t.abortAfterMs !== undefined && t.abortAfterMs < 0) return new Set<Status>(['cancelled']);
  const set = new Set<Status>([...ownStatuses(t, sc), ...collateral(sc)]);
  if (sc.ending.kind !== 'join') set.add('cancelled');
  if (t.abortAfterMs !== undefined) set.add('cancelled');
  return set;
}

/** Soft limits set in the run (each retires a thread or child without interrupting its tasks). */
export function softLimits(sc: Scenario): string[] {
  const s = sc.settings;
  const names = ['lifecycle', 'lifecycleDuration', 'lifecycleMemory', 'processMemoryLimit'] as const;
  const set = names.filter((k) => s[k] !== undefined);
  return [...set, ...(allTasks(sc).some((t) => t.kind === 'gracefulDie') ? ['graceful die'] : [])];
}

/** The value an ok outcome of task `t` (put with index `i`) must carry, as plainOutcome reports it. */
export function expectedValue(t: Task, i: number, sc: Scenario): unknown {
  switch (t.kind) {
    case 'sleep':
    case 'long':
    case 'near':
      return nominalMs(t, sc);
    case 'deep':
      return { depth: t.depth };
    default:
      return i;
  }
}

/** The error name an `error` outcome of task `t` must carry (undefined: any). */
export function expectedErrorName(t: Task): string | undefined {
  switch (t.kind) {
    case 'throw':
      return 'RangeError';
    case 'gracefulDie':
      return 'WorkerGracefulDie';
    case 'unsendable':
    case 'deep':
      return 'SerializationError';
    default:
      return undefined;
  }
}
