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
  | { kind: 'unsendable' }
  /** SIGABRT to its own process, as process.abort() does (which a worker thread may not call). */
  | { kind: 'abort' }
  /** Spawns a long-lived grandchild (`sleep 30`), records its pid in the run's directory, then returns or hangs (awaits for ever, its thread kept alive). */
  | { kind: 'grandchild'; then: 'return' | 'hang' };

export type Kind = Behaviour['kind'];

/**
 * One task: its behaviour, and optionally an AbortSignal (it is then given with
 * `submit(args, { signal })`): `abortAfterMs` ≥ 0 aborts it that long after submit() is called;
 * -1 hands it a signal already aborted (so it cannot have started: it must settle `cancelled`).
 */
export type Task = Behaviour & { abortAfterMs?: number };

export const HOOKS = ['processInitializer', 'threadInitializer', 'threadFinalizer', 'processFinalizer'] as const;
export type HookName = (typeof HOOKS)[number];
/**
 * A hook's behaviour, performed by `faultyHook` (mpms/testing) in the fixture; absent = ok.
 * - throw: the hook throws;
 * - hang: it never settles while a live handle keeps its event loop busy (a hook stuck on I/O):
 *   only the hookTimeout ends it;
 * - hangIdle: it awaits a promise nothing will settle, with nothing else pending (a hook with a
 *   lost callback): in a thread the event loop may drain and the thread exit before the hookTimeout.
 */
export type HookFault = 'throw' | 'hang' | 'hangIdle';
export type Hooks = Partial<Record<HookName, HookFault>>;

export interface Settings {
  processes: number;
  threads: number;
  concurrency: number;
  taskQueueMaxsize: number;
  lifecycle?: number;
  /** Soft: a thread retires after this many ms (jittered by lifecycleJitter). */
  lifecycleDuration?: number;
  lifecycleJitter?: number;
  taskTimeout?: number;
  retries: number;
  hookTimeout: number;
  workerGracefulDieTimeout: number;
  /** Only with a small queue (taskQueueMaxsize ≤ 3): a put() may then reject with QueueFullError. */
  putTimeout?: number;
}

export type Ending =
  | { kind: 'join' }
  /** The ending fires once `afterPuts` puts were accepted (or all settled), or after `stallMs`, whichever first. */
  | { kind: 'graceful'; timeout: number; afterPuts: number; stallMs: number }
  | { kind: 'terminate'; afterPuts: number; stallMs: number }
  /**
   * The engine runs in a real master script (test/fixtures/property-master.mjs) with
   * `handleSignals: true`, which puts the tasks and then join()s; the test sends the script
   * SIGTERM once `afterPuts` puts were accepted or `stallMs` after it started, whichever first
   * (if it has not ended by then): a graceful shutdown of SIGNAL_SHUTDOWN_TIMEOUT_MS.
   */
  | { kind: 'sigterm'; afterPuts: number; stallMs: number };

export interface Scenario {
  settings: Settings;
  tasks: Task[];
  ending: Ending;
  /** Hooks that throw or hang (absent: every hook is ok). */
  hooks?: Hooks;
  /**
   * close() is called when the putting loop reaches task `beforeTask` (delayMs 0), or `delayMs`
   * after that while the loop goes on (a put() may be waiting for room then). Every put() issued
   * after it must reject, and that task has no outcome.
   */
  close?: { beforeTask: number; delayMs: number };
}

export type Status = 'ok' | 'error' | 'timeout' | 'crashed' | 'cancelled';

const settingsArb: fc.Arbitrary<Settings> = fc.record(
  {
    processes: fc.integer({ min: 1, max: 3 }),
    threads: fc.integer({ min: 1, max: 4 }),
    concurrency: fc.integer({ min: 1, max: 2 }),
    taskQueueMaxsize: fc.integer({ min: 1, max: 6 }),
    lifecycle: fc.integer({ min: 1, max: 5 }),
    // Not shorter: every idle thread retires on this timer too, and P×T threads cycling faster
    // would only measure thread start-up on a 2-core box.
    lifecycleDuration: fc.integer({ min: 500, max: 3000 }),
    lifecycleJitter: fc.integer({ min: 0, max: 50 }).map((p) => p / 100),
    taskTimeout: fc.integer({ min: 300, max: 800 }),
    retries: fc.integer({ min: 0, max: 1 }),
    hookTimeout: fc.integer({ min: 200, max: 600 }),
    workerGracefulDieTimeout: fc.integer({ min: 200, max: 1500 }),
    putTimeout: fc.integer({ min: 50, max: 300 }),
  },
  { requiredKeys: ['processes', 'threads', 'concurrency', 'taskQueueMaxsize', 'retries', 'hookTimeout', 'workerGracefulDieTimeout'] },
).map((s) => {
  // putTimeout only on runs with a small queue (map, not filter: shrinking stays possible).
  if (s.putTimeout === undefined || s.taskQueueMaxsize <= 3) return s;
  const { putTimeout: _dropped, ...rest } = s;
  return rest;
});

/** Initializers fail rarely (such a run ends at start()); a hang is rarer than a throw. */
const initFaultArb: fc.Arbitrary<HookFault | undefined> = fc.oneof(
  { arbitrary: fc.constant(undefined), weight: 45 },
  { arbitrary: fc.constant('throw' as const), weight: 2 },
  { arbitrary: fc.constant('hang' as const), weight: 1 },
  { arbitrary: fc.constant('hangIdle' as const), weight: 1 },
);
const finalFaultArb: fc.Arbitrary<HookFault | undefined> = fc.oneof(
  { arbitrary: fc.constant(undefined), weight: 12 },
  { arbitrary: fc.constant('throw' as const), weight: 2 },
  { arbitrary: fc.constant('hang' as const), weight: 1 },
  { arbitrary: fc.constant('hangIdle' as const), weight: 1 },
);
const hooksArb: fc.Arbitrary<Hooks> = fc
  .record({ processInitializer: initFaultArb, threadInitializer: initFaultArb, threadFinalizer: finalFaultArb, processFinalizer: finalFaultArb })
  .map((h) => Object.fromEntries(Object.entries(h).filter(([, f]) => f !== undefined)) as Hooks);

/** About one task in six gets an AbortSignal: already aborted (-1), or aborted 0–300 ms after submit(). */
const abortArb: fc.Arbitrary<number | undefined> = fc.oneof(
  { arbitrary: fc.constant(undefined), weight: 10 },
  { arbitrary: fc.constant(-1), weight: 1 },
  { arbitrary: fc.integer({ min: 0, max: 300 }), weight: 1 },
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
  { arbitrary: fc.constant({ kind: 'abort' as const }), weight: 1 },
  { arbitrary: fc.constantFrom('return' as const, 'hang' as const).map((then) => ({ kind: 'grandchild' as const, then })), weight: 2 },
);

const endingArb: fc.Arbitrary<Ending> = fc.oneof(
  { arbitrary: fc.constant({ kind: 'join' as const }), weight: 3 },
  {
    arbitrary: fc.record({ kind: fc.constant('graceful' as const), timeout: fc.integer({ min: 200, max: 1500 }), afterPuts: fc.integer({ min: 0, max: 8 }), stallMs: fc.integer({ min: 0, max: 500 }) }),
    weight: 2,
  },
  { arbitrary: fc.record({ kind: fc.constant('terminate' as const), afterPuts: fc.integer({ min: 0, max: 8 }), stallMs: fc.integer({ min: 0, max: 500 }) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('sigterm' as const), afterPuts: fc.integer({ min: 0, max: 8 }), stallMs: fc.integer({ min: 0, max: 500 }) }), weight: 1 },
);

/** About one run in four calls close() while it puts. */
const closeArb: fc.Arbitrary<Scenario['close']> = fc.oneof(
  { arbitrary: fc.constant(undefined), weight: 3 },
  { arbitrary: fc.record({ beforeTask: fc.integer({ min: 0, max: 24 }), delayMs: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 300 })) }), weight: 1 },
);

const taskArb: fc.Arbitrary<Task> = fc
  .record({ b: behaviourArb, abortAfterMs: abortArb })
  .map(({ b, abortAfterMs }) => (abortAfterMs === undefined ? b : { ...b, abortAfterMs }));

/** Behaviours that never end by themselves: a spin (synchronous), a grandchild task that hangs (asynchronous). */
export function isEndless(t: Behaviour): boolean {
  return t.kind === 'spin' || (t.kind === 'grandchild' && t.then === 'hang');
}

/**
 * A task may run forever only when something is certain to stop it: a taskTimeout, an ending
 * with a short deadline (gracefulShutdown's timeout, terminate), or its own AbortSignal. (A
 * SIGTERM's graceful shutdown would stop it too, but only after SIGNAL_SHUTDOWN_TIMEOUT_MS:
 * 10 s per run is too dear, so those runs get endless tasks only as join() does.)
 * Otherwise an endless task becomes a 50 ms sleep — done with `map`, not `filter`, so
 * shrinking the settings stays possible.
 */
export function spinAllowed(settings: Settings, ending: Ending, task?: Task): boolean {
  return settings.taskTimeout !== undefined || ending.kind === 'graceful' || ending.kind === 'terminate' || task?.abortAfterMs !== undefined;
}

/**
 * Tasks in a run, at most: fewer when there are many threads, so a run's cost stays bounded
 * (P×T threads start, retire and stop in every run).
 */
export function maxTasks(s: Settings): number {
  const threads = s.processes * s.threads;
  return threads <= 4 ? 25 : threads <= 8 ? 16 : 10;
}

export const scenarioArb: fc.Arbitrary<Scenario> = fc
  .record({ settings: settingsArb, tasks: fc.array(taskArb, { maxLength: 25, size: 'medium' }), ending: endingArb, hooks: hooksArb, close: closeArb })
  .map(({ settings, tasks, ending, hooks, close }) => ({
    settings,
    ending,
    ...(Object.keys(hooks).length ? { hooks } : {}),
    ...(close ? { close } : {}),
    tasks: tasks.slice(0, maxTasks(settings)).map((t): Task => (isEndless(t) && !spinAllowed(settings, ending, t) ? { kind: 'sleep', ms: 50 } : t)),
  }));

/** The initializer that makes start() fail, if any (the process initializer runs first). */
export function failingInitializer(sc: Scenario): 'processInitializer' | 'threadInitializer' | undefined {
  if (sc.hooks?.processInitializer) return 'processInitializer';
  if (sc.hooks?.threadInitializer) return 'threadInitializer';
  return undefined;
}

/**
 * `initArgs` for the fixture: `faultyHook` performs `initArgs.mpmsFaults[hook]` (a `hang` fault
 * for both hang and hangIdle); the fixture keeps a live handle open while the hooks listed in
 * `initArgs.busyHooks` run.
 */
export function hookInitArgs(sc: Scenario): { mpmsFaults: Record<string, { kind: 'throw' | 'hang' }>; busyHooks: string[] } | undefined {
  const entries = Object.entries(sc.hooks ?? {}).filter(([, f]) => f !== undefined) as [HookName, HookFault][];
  if (!entries.length) return undefined;
  return {
    mpmsFaults: Object.fromEntries(entries.map(([h, f]) => [h, { kind: f === 'throw' ? 'throw' : 'hang' }])),
    busyHooks: entries.filter(([, f]) => f === 'hang').map(([h]) => h),
  };
}

export { taskArgs } from './drive.mjs';

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
/** A task spawning a process (its grandchild) from a thread, on a busy box. */
const T_SPAWN = 300;
/** The graceful shutdown a SIGTERM starts (handleSignals): SIGNAL_SHUTDOWN_TIMEOUT_MS, engine.ts. */
const SIGNAL_SHUTDOWN = 10_000;
/** A master script ending after its summary: pino flushed, the event loop drained, the exit seen. */
const T_SCRIPT_EXIT = 1000;
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
/** The latest an AbortSignal of the model fires after submit() was called. */
const ABORT_MAX = 300;

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
 * The bound (ms) within which a run — from the first put() after start() to the ending's
 * promise resolving — must end. Derivation:
 *
 * 1. Work phase (only `join()` waits for the tasks; for the other endings it is cut short by
 *    the trigger, at most `stallMs` after the first put). Serially, as if a single thread were
 *    left — parallelism only makes it shorter:
 *    - return / throw / unsendable / sleep: T_TASK (+ the sleep);
 *    - exit: its thread is replaced: T_THREAD per attempt;
 *    - sigkill: its child is replaced after the back-off: T_PROC + PROC_BACKOFF per attempt;
 *    - spin (join only with a taskTimeout or its own AbortSignal): with a taskTimeout,
 *      taskTimeout + TIMEOUT_KILL, then its thread (or, if the thread will not die, its child)
 *      is replaced: + T_PROC, per attempt; with a signal, the abort (≤ ABORT_MAX after its
 *      submit) + TIMEOUT_KILL (the same 500 ms grace) + T_PROC, once (cancelled is not retried);
 *      both terms when it has both (their sum bounds whichever fires first);
 *    - gracefulDie: its child waits up to workerGracefulDieTimeout for running tasks, then is
 *      replaced at once: + T_PROC; + 2·hookTimeout when a finalizer is faulty (the old child
 *      runs them; the replacement does not wait, counted anyway);
 *    where a crashing or timing-out task has 1 + retries attempts; plus, with a lifecycle, one
 *    thread replacement per `lifecycle` tasks (soft retirements), + hookTimeout each when the
 *    threadFinalizer is faulty;
 *    - with a putTimeout, each put() may wait up to putTimeout for room (then QueueFullError),
 *      during which the putting loop does not advance: + putTimeout per task.
 *    (An abort of a task that is not spinning adds nothing: it only settles it sooner; a task
 *    that ignores it — sleep ≤ 50 ms — ends before the 500 ms grace would end its thread.)
 *    - abort (SIGABRT to its process): as sigkill;
 *    - grandchild: T_TASK + T_SPAWN; one that then hangs is stopped as a spin is (+ those terms);
 *    - with a lifecycleDuration d (jittered down to d·(1 − jitter)), each thread retires at
 *      least every d·(1 − jitter) ms and is replaced within T_THREAD (the replacement starts
 *      before the old thread leaves, so a faulty finalizer does not delay it): a thread works
 *      at least d·(1 − jitter) of every d·(1 − jitter) + T_THREAD ms, so the work phase
 *      stretches by that ratio, plus one replacement.
 *    For `sigterm` the work phase ends at the signal (stallMs after the script started, at the
 *    latest) as for the other endings; a script that ends before it simply ended sooner.
 * 2. Teardown: the sum of the engine's step bounds (architecture.md, "Shutdown"):
 *    stop intake 100 + cancel queued 1000
 *    + stop children: grace + 500 + 2·hookTimeout + 2000, where grace is hookTimeout for join,
 *      the timeout for gracefulShutdown (SIGNAL_SHUTDOWN for a SIGTERM); 3000 for terminate. The 2·hookTimeout is where a
 *      throwing or hanging thread/process finalizer is paid for: each is bounded by hookTimeout.
 *    + kill what is left 3000 + settle what is left 1000
 *    + drain the collector: ~0 (the suite's collector is synchronous)
 *    + for `sigterm`, the script's own exit after its summary: T_SCRIPT_EXIT.
 * 3. SLACK for the harness and a loaded machine.
 */
export function runBoundMs(sc: Scenario): number {
  const s = sc.settings;
  const attempts = 1 + s.retries;
  const faultyFinalizer = !!(sc.hooks?.threadFinalizer || sc.hooks?.processFinalizer);
  let work = 0;
  if (sc.ending.kind === 'join') {
    for (const b of sc.tasks) {
      switch (b.kind) {
        case 'return': case 'throw': case 'unsendable': work += T_TASK; break;
        case 'sleep': work += T_TASK + b.ms; break;
        case 'exit': work += attempts * T_THREAD; break;
        case 'sigkill': case 'abort': work += attempts * (T_PROC + PROC_BACKOFF); break;
        case 'grandchild': work += T_TASK + T_SPAWN; if (b.then !== 'hang') break;
        // falls through: a hanging grandchild task is stopped as a spin is
        case 'spin':
          if (s.taskTimeout !== undefined) work += attempts * (s.taskTimeout + TIMEOUT_KILL + T_PROC);
          if (b.abortAfterMs !== undefined) work += Math.max(0, b.abortAfterMs) + TIMEOUT_KILL + T_PROC;
          break;
        case 'gracefulDie': work += s.workerGracefulDieTimeout + T_PROC + (faultyFinalizer ? 2 * s.hookTimeout : 0); break;
      }
      if (s.putTimeout !== undefined) work += s.putTimeout;
    }
    if (s.lifecycle !== undefined) work += Math.ceil(sc.tasks.length / s.lifecycle) * (T_THREAD + (sc.hooks?.threadFinalizer ? s.hookTimeout : 0));
    if (s.lifecycleDuration !== undefined) {
      const life = Math.max(1, s.lifecycleDuration * (1 - (s.lifecycleJitter ?? 0)));
      work = Math.ceil((work * (life + T_THREAD)) / life) + T_THREAD;
    }
  } else {
    work = sc.ending.stallMs;
  }
  const grace = sc.ending.kind === 'join' ? s.hookTimeout : sc.ending.kind === 'graceful' ? sc.ending.timeout : SIGNAL_SHUTDOWN;
  const stopChildren = sc.ending.kind === 'terminate' ? 3000 : grace + 500 + 2 * s.hookTimeout + 2000;
  const teardown = 100 + 1000 + stopChildren + 3000 + 1000 + (sc.ending.kind === 'sigterm' ? T_SCRIPT_EXIT : 0);
  return work + teardown + SLACK;
}

// ---- outcomes each behaviour may have -------------------------------------------------------------

/** Behaviours that can take their siblings down: their thread or process dies, or is terminated. */
const CRASHERS: ReadonlySet<Kind> = new Set(['exit', 'sigkill', 'abort', 'spin']);
/** Behaviours whose process dies: a crash loop of them may make the engine give up. */
const PROCESS_KILLERS: ReadonlySet<Kind> = new Set(['sigkill', 'abort']);

/**
 * The statuses a task `b` may settle with in scenario `sc`, from the contract:
 * - a task ends as its behaviour says (ok / error / timeout / crashed) unless something else
 *   ends it first: a sibling that kills its thread or process (→ crashed), the shutdown
 *   (→ cancelled; under join only if the engine gave up after a crash loop, i.e. sigkills),
 *   or a spinning sibling on the same thread under a taskTimeout (→ timeout);
 * - with no crashing behaviour anywhere in the run (exit, sigkill, spin) and a join() ending,
 *   the outcome is exactly the behaviour's: return/sleep → ok; throw/gracefulDie/unsendable → error;
 * - a task with an AbortSignal may also be `cancelled` (aborted before it started, or while it
 *   ran); one whose signal was aborted before submit() cannot have started: exactly `cancelled`;
 * - hook faults add nothing: a failing initializer ends the run at start() (no task), and a
 *   throwing or hanging finalizer must not change any task's outcome.
 */
export function allowedStatuses(b: Task, sc: Scenario): Set<Status> {
  if (b.abortAfterMs !== undefined && b.abortAfterMs < 0) return new Set<Status>(['cancelled']);
  const crashers = hasCrashers(sc);
  const killers = sc.tasks.some((t) => PROCESS_KILLERS.has(t.kind));
  const endless = sc.tasks.some(isEndless);
  const own: Status[] = (() => {
    switch (b.kind) {
      case 'return': case 'sleep': return ['ok'];
      case 'throw': case 'gracefulDie': case 'unsendable': return ['error'];
      case 'grandchild': if (b.then === 'return') return ['ok'];
      // falls through: a hanging one is ended as a spin is
      // Without a taskTimeout an endless task under join() always has a signal (spinAllowed): 'cancelled' below.
      case 'spin': return sc.settings.taskTimeout !== undefined ? ['timeout', 'crashed'] : ['crashed'];
      case 'exit': case 'sigkill': case 'abort': return ['crashed'];
    }
  })();
  const set = new Set<Status>(own);
  if (crashers) set.add('crashed');
  if (sc.ending.kind !== 'join' || killers) set.add('cancelled');
  if (sc.settings.taskTimeout !== undefined && endless) set.add('timeout');
  if (b.abortAfterMs !== undefined) set.add('cancelled');
  return set;
}

/** Tasks that take siblings down: crashing behaviours, and endless ones (their thread is terminated under its siblings). */
export function hasCrashers(sc: Scenario): boolean {
  return sc.tasks.some((t) => CRASHERS.has(t.kind) || isEndless(t));
}

/** Whether a crash loop (processes dying before finishing a task) may make the engine give up. */
export function hasProcessKillers(sc: Scenario): boolean {
  return sc.tasks.some((t) => PROCESS_KILLERS.has(t.kind));
}
