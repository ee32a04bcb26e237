/**
 * The time bounds of the property suite: within how long start() must reject when an
 * initializer fails, and within how long a run must end, both derived from the scenario's
 * settings (guarantee 2: "join() and every shutdown finish within a bound computable from the
 * settings"). Generous on purpose (a busy 2-core machine), never infinite.
 */

import { nominalMs } from './expect.js';
import { allTasks, failingInitializer, followUps, needsScript, type Scenario, type Task } from './model.js';

/** A worker_thread replaced (terminated, a new one started, the module loaded) on a busy 2-core box. */
const T_THREAD = 2000;
/** A child replaced (fork, boot, its threads ready) on a busy 2-core box. */
const T_PROC = 4000;
/** The restart policy's back-off for one failed child: 100·2^(n-1) ms, n ≤ 4 before it gives up. */
const PROC_BACKOFF = 800;
/** The child's watchdog tick plus the abort grace before a timed-out task's thread is terminated (architecture.md). */
const TIMEOUT_KILL = 20 + 500;
/** Dispatch and IPC of one short task, both hops, on a busy box. */
const T_TASK = 100;
/** A task spawning a process (its grandchild) from a thread, on a busy box. */
const T_SPAWN = 300;
/** Encoding (in the thread) and decoding (in the master) a deeply nested result, or failing to. */
const T_DEEP = 500;
/** The graceful shutdown a signal starts (handleSignals): SIGNAL_SHUTDOWN_TIMEOUT_MS, engine.ts. */
const SIGNAL_SHUTDOWN = 10_000;
/** A master script ending after its summary: pino flushed, the event loop drained, the exit seen. */
const T_SCRIPT_EXIT = 1000;
/** How often a child compares its RSS with processMemoryLimit (lib/child/entry.ts). */
const RSS_CHECK = 1000;
/** Event-loop lag, the ps sampling of the harness, timers firing late. */
const SLACK = 3000;

/** The relay's back-off between failed thread starts: 100·2^(n-1) ms, the 5th failure is fatal (lib/child/relay.ts). */
const THREAD_START_BACKOFF = 100 + 200 + 400 + 800;
/** Failed thread starts in a row after which a child reports its start failed. */
const THREAD_START_TRIES = 5;
/** A thread terminated by its child (worker.terminate() of a thread that hangs in its initializer). */
const T_TERMINATE = 200;
/** start() kills what it forked and waits for the exits before rejecting (engine.ts: waitExits 3000). */
const START_KILL_WAIT = 3000;

/**
 * The bound (ms) within which start() must reject when an initializer throws or hangs, from the
 * call to the rejection. Derivation:
 * - processInitializer (runs first, in each child, bounded by hookTimeout; a failure is fatal at
 *   once, no retry): fork and boot T_PROC + hookTimeout;
 * - threadInitializer: every thread start fails; a start is bounded by the relay's start timer
 *   (2·hookTimeout, covering the module load and the initializer's own hookTimeout) plus the
 *   terminate T_TERMINATE; a child reports failure after THREAD_START_TRIES failures in a row
 *   (its threads count together, so more threads only fail sooner), backed off
 *   100+200+400+800 ms: T_PROC + 5·(2·hookTimeout + T_TERMINATE) + 1500;
 * - either way capped by start()'s own bound, 2·(hookTimeout + 10 000 load allowance) + 5 000 (engine.ts);
 * - then start() kills what it forked and waits up to START_KILL_WAIT for the exits;
 * - SLACK.
 */
export function startFailBoundMs(sc: Scenario): number {
  const h = sc.settings.hookTimeout;
  const failing = failingInitializer(sc);
  const untilFailure =
    failing === 'processInitializer'
      ? T_PROC + h
      : T_PROC + THREAD_START_TRIES * (2 * h + T_TERMINATE) + THREAD_START_BACKOFF;
  return Math.min(untilFailure, 2 * (h + 10_000) + 5_000) + START_KILL_WAIT + SLACK;
}

/**
 * The cost (ms) of one task, serially, as if a single thread were left:
 * - return / throw / unsendable / badThrow / leak: T_TASK (a bad thrown value may cost its
 *   thread on a faulty engine: + T_THREAD, so the bound stays the correct engine's plus that);
 *   deep: + T_DEEP; sleep / long / near: + their sleep;
 * - a task its own taskTimeout may end (near, long, spin, hanging grandchild) costs, per
 *   attempt, the timeout plus TIMEOUT_KILL plus T_PROC (its thread, or if the thread will not
 *   die its child, replaced); a near task returns within 0.2 × taskTimeout of its timeout, so
 *   per attempt 1.2 × taskTimeout + T_TASK;
 * - exit: its thread is replaced: T_THREAD per attempt;
 * - sigkill / abort: its child is replaced after the back-off: T_PROC + PROC_BACKOFF per attempt;
 * - spin or hanging grandchild with an AbortSignal: the abort (≤ its abortAfterMs) +
 *   TIMEOUT_KILL + T_PROC, once (cancelled is not retried);
 * - gracefulDie: its child waits up to workerGracefulDieTimeout for running tasks, then is
 *   replaced at once: + T_PROC; + 2·hookTimeout when a finalizer is faulty;
 * - grandchild: T_TASK + T_SPAWN;
 * - with a putTimeout, its put() may wait up to putTimeout for room: + putTimeout.
 * (An abort of a task that is not spinning adds nothing: it only settles it sooner.)
 */
function taskCostMs(b: Task, sc: Scenario): number {
  const s = sc.settings;
  const attempts = 1 + s.retries;
  const T = s.taskTimeout;
  const faultyFinalizer = !!(sc.hooks?.threadFinalizer || sc.hooks?.processFinalizer);
  let work = 0;
  switch (b.kind) {
    case 'return':
    case 'throw':
    case 'unsendable':
    case 'leak':
      work += T_TASK;
      break;
    case 'badThrow':
      work += T_TASK + T_THREAD;
      break;
    case 'deep':
      work += T_TASK + T_DEEP + T_THREAD;
      break;
    case 'sleep':
      work += T_TASK + b.ms;
      break;
    case 'near':
      work += T === undefined ? T_TASK + 20 : attempts * (1.2 * T + T_TASK);
      break;
    case 'long':
      work += T !== undefined && b.ms > T ? attempts * (T + TIMEOUT_KILL + T_PROC) : T_TASK + b.ms;
      break;
    case 'exit':
      work += attempts * T_THREAD;
      break;
    case 'sigkill':
    case 'abort':
      work += attempts * (T_PROC + PROC_BACKOFF);
      break;
    // biome-ignore lint/suspicious/noFallthroughSwitchClause: a hanging grandchild task is stopped as a spin is
    case 'grandchild':
      work += T_TASK + T_SPAWN;
      if (b.after !== 'hang') break;
    case 'spin':
      if (T !== undefined) work += attempts * (T + TIMEOUT_KILL + T_PROC);
      if (b.abortAfterMs !== undefined) work += Math.max(0, b.abortAfterMs) + TIMEOUT_KILL + T_PROC;
      break;
    case 'gracefulDie':
      work += s.workerGracefulDieTimeout + T_PROC + (faultyFinalizer ? 2 * s.hookTimeout : 0);
      break;
  }
  if (s.putTimeout !== undefined) work += s.putTimeout;
  return work;
}

/** The longest a task of the run may run by itself (a soft retirement waits for it). */
function longestTaskMs(sc: Scenario): number {
  const T = sc.settings.taskTimeout;
  let longest = T_TASK;
  for (const t of allTasks(sc)) {
    const d = nominalMs(t, sc);
    longest = Math.max(longest, T !== undefined ? Math.min(d, T + TIMEOUT_KILL) : Number.isFinite(d) ? d : 0);
  }
  return longest;
}

/**
 * The work phase of a join() run: every task (the seeds and every follow-up the run may put)
 * served serially, as if a single thread were left — parallelism only makes it shorter — plus
 * the soft restarts:
 * - with a lifecycle, one thread replacement per `lifecycle` tasks, + hookTimeout each when the
 *   threadFinalizer is faulty; with a lifecycleMemory, as if every task retired its thread (not
 *   both: a thread retires once);
 * - with a lifecycleDuration d (jittered down to d·(1 − jitter)), each thread retires at least
 *   every d·(1 − jitter) ms and is replaced within T_THREAD (the replacement starts before the
 *   old thread leaves): a thread works at least d·(1 − jitter) of every d·(1 − jitter) +
 *   T_THREAD ms, so the work stretches by T_THREAD / (d·(1 − jitter)), plus one replacement;
 * - with a processMemoryLimit, a child may retire at each RSS check, the first RSS_CHECK ms after
 *   it is ready; the retiring child finishes its running tasks (work counted above) while its
 *   replacement boots (T_PROC): the work stretches by T_PROC / RSS_CHECK, plus one retirement
 *   (its replacement, its finalizers 2·hookTimeout, the longest task it lets finish).
 * The stretches add (each is time lost to one kind of replacement), they do not multiply.
 */
function joinWorkMs(sc: Scenario): number {
  const s = sc.settings;
  const tasks = allTasks(sc);
  let work = tasks.reduce((sum, t) => sum + taskCostMs(t, sc), 0);
  const finalizer = sc.hooks?.threadFinalizer ? s.hookTimeout : 0;
  // A thread retires at most once per task, whichever count or heap limit says so.
  const byCount =
    s.lifecycleMemory !== undefined
      ? tasks.length
      : s.lifecycle !== undefined
        ? Math.ceil(tasks.length / s.lifecycle)
        : 0;
  work += byCount * (T_THREAD + finalizer);
  let stretch = 0;
  let once = 0;
  if (s.lifecycleDuration !== undefined) {
    stretch += T_THREAD / Math.max(1, s.lifecycleDuration * (1 - (s.lifecycleJitter ?? 0)));
    once += T_THREAD;
  }
  if (s.processMemoryLimit !== undefined) {
    stretch += T_PROC / RSS_CHECK;
    once += T_PROC + 2 * s.hookTimeout + longestTaskMs(sc);
  }
  return Math.ceil(work * (1 + stretch)) + once;
}

/**
 * What the user's side adds: a reader that waits `delayMs` per outcome reads every outcome the
 * run may have that much later (the seeds and every follow-up); follow-ups are in the work phase.
 */
function readerMs(sc: Scenario): number {
  const c = sc.consumer;
  if (!c || c.kind === 'none' || !c.delayMs) return 0;
  return c.delayMs * (sc.tasks.length + (followUps(sc)?.tasks.length ?? 0));
}

/**
 * The bound (ms) within which a run — from the first put() after start() to the ending's
 * promise resolving and the reader done (for a script: to its exit) — must end:
 *
 * 1. Work phase: only `join()` waits for the tasks (joinWorkMs); for the other endings it is cut
 *    short by the trigger, at most `stallMs` after the first put (a script that ends before its
 *    signal simply ended sooner). Plus the reader's delays (readerMs), whatever the ending.
 * 2. Teardown: the sum of the engine's step bounds (architecture.md, "Shutdown"):
 *    stop intake 100 + cancel queued 1000
 *    + stop children: grace + 500 + 2·hookTimeout + 2000, where grace is hookTimeout for join,
 *      the timeout for gracefulShutdown (SIGNAL_SHUTDOWN for a signal); 3000 for terminate. The
 *      2·hookTimeout is where a throwing or hanging thread/process finalizer is paid for; a soft
 *      retirement still under way lets its longest task finish (+ longestTaskMs with soft limits)
 *    + kill what is left 3000 + settle what is left 1000
 *    + drain the collector (its delays are in readerMs)
 *    + for a run in a master script, the script's own exit after its summary: T_SCRIPT_EXIT.
 * 3. SLACK for the harness and a loaded machine.
 */
export function runBoundMs(sc: Scenario): number {
  const s = sc.settings;
  const e = sc.ending;
  const work = (e.kind === 'join' ? joinWorkMs(sc) : e.stallMs) + readerMs(sc);
  const grace = e.kind === 'join' ? s.hookTimeout : e.kind === 'graceful' ? e.timeout : SIGNAL_SHUTDOWN;
  const soft = s.lifecycle ?? s.lifecycleDuration ?? s.lifecycleMemory ?? s.processMemoryLimit;
  const stopChildren =
    e.kind === 'terminate'
      ? 3000
      : grace + 500 + 2 * s.hookTimeout + 2000 + (soft !== undefined ? longestTaskMs(sc) : 0);
  const teardown = 100 + 1000 + stopChildren + 3000 + 1000 + (needsScript(sc) ? T_SCRIPT_EXIT : 0);
  return Math.ceil(work + teardown + SLACK);
}
