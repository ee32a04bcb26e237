/**
 * The scenario model of the property suite: what a run of the engine is made of (settings, a
 * task list whose tasks each have a behaviour, an ending), the fast-check arbitraries that
 * generate it, the time bound a run must end within, and which outcomes each behaviour may have.
 */
import fc from 'fast-check';

export type Behaviour =
  | { kind: 'return' }
  | { kind: 'throw' }
  | { kind: 'sleep'; ms: number }
  | { kind: 'spin' }
  | { kind: 'exit'; code: number }
  | { kind: 'sigkill' }
  | { kind: 'gracefulDie' }
  | { kind: 'unsendable' };

export type Kind = Behaviour['kind'];

export interface Settings {
  processes: number;
  threads: number;
  concurrency: number;
  taskQueueMaxsize: number;
  lifecycle?: number;
  taskTimeout?: number;
  retries: number;
  hookTimeout: number;
  workerGracefulDieTimeout: number;
}

export type Ending =
  | { kind: 'join' }
  /** The ending fires once `afterPuts` puts were accepted (or all settled), or after `stallMs`, whichever first. */
  | { kind: 'graceful'; timeout: number; afterPuts: number; stallMs: number }
  | { kind: 'terminate'; afterPuts: number; stallMs: number };

export interface Scenario {
  settings: Settings;
  tasks: Behaviour[];
  ending: Ending;
}

export type Status = 'ok' | 'error' | 'timeout' | 'crashed' | 'cancelled';

const settingsArb: fc.Arbitrary<Settings> = fc.record(
  {
    processes: fc.integer({ min: 1, max: 2 }),
    threads: fc.integer({ min: 1, max: 3 }),
    concurrency: fc.integer({ min: 1, max: 2 }),
    taskQueueMaxsize: fc.integer({ min: 1, max: 6 }),
    lifecycle: fc.integer({ min: 1, max: 5 }),
    taskTimeout: fc.integer({ min: 300, max: 800 }),
    retries: fc.integer({ min: 0, max: 1 }),
    hookTimeout: fc.integer({ min: 300, max: 2000 }),
    workerGracefulDieTimeout: fc.integer({ min: 200, max: 1500 }),
  },
  { requiredKeys: ['processes', 'threads', 'concurrency', 'taskQueueMaxsize', 'retries', 'hookTimeout', 'workerGracefulDieTimeout'] },
);

const behaviourArb: fc.Arbitrary<Behaviour> = fc.oneof(
  { arbitrary: fc.constant({ kind: 'return' as const }), weight: 8 },
  { arbitrary: fc.constant({ kind: 'throw' as const }), weight: 2 },
  { arbitrary: fc.integer({ min: 5, max: 50 }).map((ms) => ({ kind: 'sleep' as const, ms })), weight: 4 },
  { arbitrary: fc.constant({ kind: 'spin' as const }), weight: 1 },
  { arbitrary: fc.constantFrom(0, 1, 3).map((code) => ({ kind: 'exit' as const, code })), weight: 1 },
  { arbitrary: fc.constant({ kind: 'sigkill' as const }), weight: 1 },
  { arbitrary: fc.constant({ kind: 'gracefulDie' as const }), weight: 1 },
  { arbitrary: fc.constant({ kind: 'unsendable' as const }), weight: 1 },
);

const endingArb: fc.Arbitrary<Ending> = fc.oneof(
  { arbitrary: fc.constant({ kind: 'join' as const }), weight: 3 },
  {
    arbitrary: fc.record({ kind: fc.constant('graceful' as const), timeout: fc.integer({ min: 200, max: 1500 }), afterPuts: fc.integer({ min: 0, max: 8 }), stallMs: fc.integer({ min: 0, max: 500 }) }),
    weight: 2,
  },
  { arbitrary: fc.record({ kind: fc.constant('terminate' as const), afterPuts: fc.integer({ min: 0, max: 8 }), stallMs: fc.integer({ min: 0, max: 500 }) }), weight: 1 },
);

/**
 * A task may spin forever only when something is certain to stop it: a taskTimeout, or an
 * ending with a deadline (gracefulShutdown's timeout, terminate). Otherwise a spin becomes a
 * 50 ms sleep — done with `map`, not `filter`, so shrinking the settings stays possible.
 */
export function spinAllowed(settings: Settings, ending: Ending): boolean {
  return settings.taskTimeout !== undefined || ending.kind !== 'join';
}

export const scenarioArb: fc.Arbitrary<Scenario> = fc
  .record({ settings: settingsArb, tasks: fc.array(behaviourArb, { maxLength: 25, size: 'medium' }), ending: endingArb })
  .map(({ settings, tasks, ending }) => ({
    settings,
    ending,
    tasks: spinAllowed(settings, ending) ? tasks : tasks.map((b): Behaviour => (b.kind === 'spin' ? { kind: 'sleep', ms: 50 } : b)),
  }));

/** The arguments a task is put with: its behaviour, and a value the result can be checked against. */
export function taskArgs(b: Behaviour, index: number): [Kind, number] {
  switch (b.kind) {
    case 'sleep': return ['sleep', b.ms];
    case 'exit': return ['exit', b.code];
    default: return [b.kind, index];
  }
}

// ---- the time bound ----------------------------------------------------------------------------

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
/** Event-loop lag, the ps sampling of the harness, timers firing late. */
const SLACK = 3000;

/**
 * The bound (ms) within which a run — from the first put() after start() to the ending's
 * promise resolving — must end. Derivation:
 *
 * 1. Work phase (only `join()` waits for the tasks; for the other endings it is cut short by
 *    the trigger, at most `stallMs` after the first put). Serially, as if a single thread were
 *    left — parallelism only makes it shorter:
 *    - return / throw / unsendable / sleep: T_TASK (+ the sleep);
 *    - exit: its thread is replaced: T_THREAD per attempt;
 *    - sigkill: its child is replaced after the back-off: T_PROC + PROC_BACKOFF per attempt;
 *    - spin (join only with a taskTimeout): taskTimeout + TIMEOUT_KILL, then its thread (or, if
 *      the thread will not die, its child) is replaced: + T_PROC, per attempt;
 *    - gracefulDie: its child waits up to workerGracefulDieTimeout for running tasks, then is
 *      replaced at once: + T_PROC;
 *    where a crashing or timing-out task has 1 + retries attempts; plus, with a lifecycle, one
 *    thread replacement per `lifecycle` tasks (soft retirements).
 * 2. Teardown: the sum of the engine's step bounds (architecture.md, "Shutdown"):
 *    stop intake 100 + cancel queued 1000
 *    + stop children: grace + 500 + 2·hookTimeout + 2000, where grace is hookTimeout for join
 *      and the timeout for gracefulShutdown; 3000 for terminate
 *    + kill what is left 3000 + settle what is left 1000
 *    + drain the collector: ~0 (the suite's collector is synchronous).
 * 3. SLACK for the harness and a loaded machine.
 */
export function runBoundMs(sc: Scenario): number {
  const s = sc.settings;
  const attempts = 1 + s.retries;
  let work = 0;
  if (sc.ending.kind === 'join') {
    for (const b of sc.tasks) {
      switch (b.kind) {
        case 'return': case 'throw': case 'unsendable': work += T_TASK; break;
        case 'sleep': work += T_TASK + b.ms; break;
        case 'exit': work += attempts * T_THREAD; break;
        case 'sigkill': work += attempts * (T_PROC + PROC_BACKOFF); break;
        case 'spin': work += attempts * ((s.taskTimeout ?? 0) + TIMEOUT_KILL + T_PROC); break;
        case 'gracefulDie': work += s.workerGracefulDieTimeout + T_PROC; break;
      }
    }
    if (s.lifecycle !== undefined) work += Math.ceil(sc.tasks.length / s.lifecycle) * T_THREAD;
  } else {
    work = sc.ending.stallMs;
  }
  const stopChildren = sc.ending.kind === 'terminate' ? 3000 : (sc.ending.kind === 'join' ? s.hookTimeout : sc.ending.timeout) + 500 + 2 * s.hookTimeout + 2000;
  const teardown = 100 + 1000 + stopChildren + 3000 + 1000;
  return work + teardown + SLACK;
}

// ---- outcomes each behaviour may have -------------------------------------------------------------

const CRASHERS: ReadonlySet<Kind> = new Set(['exit', 'sigkill', 'spin']);

/**
 * The statuses a task of behaviour `b` may settle with in scenario `sc`, from the contract:
 * - a task ends as its behaviour says (ok / error / timeout / crashed) unless something else
 *   ends it first: a sibling that kills its thread or process (→ crashed), the shutdown
 *   (→ cancelled; under join only if the engine gave up after a crash loop, i.e. sigkills),
 *   or a spinning sibling on the same thread under a taskTimeout (→ timeout);
 * - with no crashing behaviour anywhere in the run (exit, sigkill, spin) and a join() ending,
 *   the outcome is exactly the behaviour's: return/sleep → ok; throw/gracefulDie/unsendable → error.
 */
export function allowedStatuses(b: Behaviour, sc: Scenario): Set<Status> {
  const kinds = new Set(sc.tasks.map((t) => t.kind));
  const crashers = [...kinds].some((k) => CRASHERS.has(k));
  const own: Status[] = (() => {
    switch (b.kind) {
      case 'return': case 'sleep': return ['ok'];
      case 'throw': case 'gracefulDie': case 'unsendable': return ['error'];
      case 'spin': return sc.settings.taskTimeout !== undefined ? ['timeout', 'crashed'] : ['crashed'];
      case 'exit': case 'sigkill': return ['crashed'];
    }
  })();
  const set = new Set<Status>(own);
  if (crashers) set.add('crashed');
  if (sc.ending.kind !== 'join' || kinds.has('sigkill')) set.add('cancelled');
  if (sc.settings.taskTimeout !== undefined && kinds.has('spin')) set.add('timeout');
  if (sc.ending.kind !== 'join' && b.kind === 'spin') set.add('cancelled');
  return set;
}

export function hasCrashers(sc: Scenario): boolean {
  return sc.tasks.some((t) => CRASHERS.has(t.kind));
}
