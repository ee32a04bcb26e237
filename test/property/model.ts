/**
 * The scenario model of the property suite: what a run of the engine is made of — settings, a
 * task list whose tasks each have a behaviour (the worker's side), the user's side (who reads
 * the outcomes and how, follow-up puts, listeners), and an ending — and the fast-check
 * arbitraries that generate it. Each run is drawn from one of several profiles, each biased
 * towards one class of trouble (a crawler, a reader that leaves, tasks at the timeout
 * boundary, soft limits with long tasks, a poison task, values that cannot cross, throwing
 * callbacks, a signal during a put loop); every invariant is checked on every run.
 * The time bound a run must end within is in bound.ts, the outcomes each task may have in expect.ts.
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
  /**
   * Spawns a long-lived grandchild (`sleep 30`; `detached`: in its own process group, out of
   * reach of a group kill), records its pid in the run's directory, then returns or hangs
   * (awaits for ever, its thread kept alive).
   */
  | { kind: 'grandchild'; after: 'return' | 'hang'; detached?: boolean }
  /** Sleeps taskTimeout × (1 + pct/100), pct in −20…20: it ends just before or just after its timeout fires. */
  | { kind: 'near'; pct: number }
  /** Sleeps `ms` (400–2500 ms): longer than soft limits, hook timeouts and graceful-die timeouts. */
  | { kind: 'long'; ms: number }
  /** Keeps `mb` MiB of heap for the rest of its thread's life (a leak), then returns: trips lifecycleMemory / processMemoryLimit. */
  | { kind: 'leak'; mb: number }
  /** Returns an array nested `depth` deep (6,000 overflows the master's decoder on Node 20–24). */
  | { kind: 'deep'; depth: number }
  /** Throws something that cannot be cloned as it is: an Error whose `stack` is a function, one with a throwing getter, one whose message is a Symbol. */
  | { kind: 'badThrow'; how: 'fnStack' | 'throwingGetter' | 'symbolMessage' };

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
  /** Outcomes that may wait for the reader (default: taskQueueMaxsize). */
  resultQueueMaxsize?: number;
  lifecycle?: number;
  /** Soft: a thread retires after this many ms (jittered by lifecycleJitter). */
  lifecycleDuration?: number;
  lifecycleJitter?: number;
  /** Soft: a thread retires when its heap exceeds this many MiB after a task (a thread's heap is ~6 MiB idle). */
  lifecycleMemory?: number;
  /** Soft: a child retires when its RSS exceeds this many MiB (checked every second; a child is ~55 MiB + ~9 per thread idle). */
  processMemoryLimit?: number;
  taskTimeout?: number;
  retries: number;
  hookTimeout: number;
  workerGracefulDieTimeout: number;
  /** Only with a small queue (taskQueueMaxsize ≤ 3): a put() may then reject with QueueFullError. */
  putTimeout?: number;
}

/**
 * The settings of a hand-written (fixed) scenario: P1×T2, one task at a time per thread, a small
 * queue, no retries and short hook and graceful-die bounds, so that a run stays small; `over`
 * sets what the scenario is about.
 */
export function fixedSettings(over: Partial<Settings> = {}): Settings {
  return {
    processes: 1,
    threads: 2,
    concurrency: 1,
    taskQueueMaxsize: 4,
    retries: 0,
    hookTimeout: 300,
    workerGracefulDieTimeout: 300,
    ...over,
  };
}

export type Ending =
  | { kind: 'join' }
  /** The ending fires once `afterPuts` puts were accepted (or all settled), or after `stallMs`, whichever first. */
  | { kind: 'graceful'; timeout: number; afterPuts: number; stallMs: number }
  | { kind: 'terminate'; afterPuts: number; stallMs: number }
  /**
   * The engine runs in a real master script (test/fixtures/property-master.mjs) with
   * `handleSignals: true`, whose plain put loop then join()s; the test sends the script `signal`
   * (Ctrl+C is SIGINT) once `afterPuts` puts were accepted or `stallMs` after it started,
   * whichever first (if it has not ended by then): a graceful shutdown of
   * SIGNAL_SHUTDOWN_TIMEOUT_MS. With `secondAfterMs`, the same signal again that long after the
   * first (→ terminate()). The script must exit by itself, code 0, after printing its summary.
   */
  | { kind: 'signal'; signal: 'SIGTERM' | 'SIGINT'; afterPuts: number; stallMs: number; secondAfterMs?: number };

/** Follow-up puts, crawler style: the k-th outcome read puts `fanout[k % fanout.length]` more, taken in order from `tasks` until none is left. */
export interface FollowUps {
  fanout: number[];
  tasks: Task[];
}

/**
 * Who reads the outcomes (absent: a synchronous collector).
 * - collector `sync` (returns nothing), `async` (awaits a microtask), `slow` (awaits `delayMs`);
 *   with `throwEvery` every n-th call throws (sync) or rejects (async); follow-ups are awaited
 *   in an async collector, fired and forgotten from a sync one;
 * - iterator: `for await … of m.iterResults()`, started before the puts (or, `late`, only after
 *   every seed put returned: the mistake shape), reading each outcome `delayMs` late, leaving
 *   after `stop.after` outcomes by `break` or by a throw in its loop body, putting follow-ups;
 * - none: nobody reads; outcomes are seen only as 'task' events.
 */
export type Consumer =
  | { kind: 'collector'; mode: 'sync' | 'async' | 'slow'; delayMs?: number; throwEvery?: number; followUps?: FollowUps }
  | {
      kind: 'iterator';
      delayMs?: number;
      late?: boolean;
      stop?: { after: number; how: 'break' | 'throw' };
      followUps?: FollowUps;
    }
  | { kind: 'none' };

/** Listeners that throw: every `taskThrowEvery`-th 'task' event, and every 'restart' event. */
export interface Listeners {
  taskThrowEvery?: number;
  restartThrows?: boolean;
}

export const PROFILES = [
  'general',
  'crawler',
  'reader',
  'boundary',
  'soft',
  'poison',
  'badValues',
  'callbacks',
  'signal',
] as const;
export type Profile = (typeof PROFILES)[number];

export interface Scenario {
  /** The profile that drew it (for statistics and reading; the checks never look at it). */
  profile?: Profile;
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
  consumer?: Consumer;
  listeners?: Listeners;
  /** Run the engine in a real master script even when nothing else requires it. */
  script?: boolean;
}

export type Status = 'ok' | 'error' | 'timeout' | 'crashed' | 'cancelled';

/** The task put with index `i`: the seeds first, then the follow-ups in the order they were put. */
export function taskAt(sc: Scenario, i: number): Task {
  if (i < sc.tasks.length) return sc.tasks[i]!;
  return followUps(sc)?.tasks[i - sc.tasks.length] as Task;
}

export function followUps(sc: Scenario): FollowUps | undefined {
  const c = sc.consumer;
  return c && c.kind !== 'none' && c.followUps?.tasks.length ? c.followUps : undefined;
}

/** Every task the run may put: the seeds and the follow-ups. */
export function allTasks(sc: Scenario): Task[] {
  return [...sc.tasks, ...(followUps(sc)?.tasks ?? [])];
}

/**
 * The engine runs in a real master script (a subprocess) when the run may threaten the master
 * itself — a signal, a throwing listener, a result it may fail to decode, a thrown value that
 * cannot be cloned — so that "the master stays alive" is observed (its exit code, its stderr)
 * instead of taking the test process down; and on a random share of other runs.
 */
export function needsScript(sc: Scenario): boolean {
  if (sc.ending.kind === 'signal' || sc.script) return true;
  if (sc.listeners?.taskThrowEvery || sc.listeners?.restartThrows) return true;
  return allTasks(sc).some((t) => t.kind === 'deep' || t.kind === 'badThrow');
}

// ---- arbitraries -----------------------------------------------------------------------------------

/** Every choice may shrink to its first branch (an absent knob, join(), the default reader, a returning task): counter-examples come out minimal. */
const SHRINK = { withCrossShrink: true };

/** A value of `arb` one time in `1 + rarity`, else undefined. */
const sometimes = <T>(arb: fc.Arbitrary<T>, rarity = 3): fc.Arbitrary<T | undefined> =>
  fc.oneof(SHRINK, { arbitrary: fc.constant(undefined), weight: rarity }, { arbitrary: arb, weight: 1 });

const taskTimeoutArb = fc.oneof(
  SHRINK,
  { arbitrary: fc.integer({ min: 300, max: 800 }), weight: 3 },
  // Tight: every task sits at the boundary (the 30 ms, and 1 ms).
  { arbitrary: fc.oneof(SHRINK, fc.constantFrom(1, 5), fc.integer({ min: 10, max: 60 })), weight: 1 },
);

interface SettingsRanges {
  processes?: [number, number];
  threads?: [number, number];
  concurrency?: [number, number];
  retries?: [number, number];
  queue?: [number, number];
}

/** The settings, every knob optional as a user would leave it; ranges narrowed by a profile. */
function settingsArb(
  r: SettingsRanges = {},
  over: Partial<Record<keyof Settings, fc.Arbitrary<unknown>>> = {},
): fc.Arbitrary<Settings> {
  const int = (range: [number, number] | undefined, min: number, max: number) =>
    fc.integer({ min: range?.[0] ?? min, max: range?.[1] ?? max });
  return fc
    .record({
      processes: int(r.processes, 1, 3),
      threads: int(r.threads, 1, 4),
      concurrency: int(r.concurrency, 1, 4),
      taskQueueMaxsize: int(r.queue, 1, 6),
      resultQueueMaxsize: sometimes(fc.integer({ min: 1, max: 6 }), 2),
      lifecycle: sometimes(fc.integer({ min: 1, max: 5 }), 1),
      // Not shorter: every idle thread retires on this timer too, and P×T threads cycling faster
      // would only measure thread start-up on a 2-core box.
      lifecycleDuration: sometimes(fc.integer({ min: 500, max: 3000 }), 1),
      lifecycleJitter: sometimes(
        fc.integer({ min: 0, max: 50 }).map((p) => p / 100),
        1,
      ),
      lifecycleMemory: sometimes(fc.integer({ min: 4, max: 12 }), 5),
      processMemoryLimit: sometimes(fc.integer({ min: 45, max: 150 }), 5),
      taskTimeout: sometimes(taskTimeoutArb, 1),
      retries: int(r.retries, 0, 3),
      hookTimeout: fc.integer({ min: 200, max: 600 }),
      workerGracefulDieTimeout: fc.integer({ min: 200, max: 1500 }),
      putTimeout: sometimes(fc.integer({ min: 50, max: 300 }), 1),
      ...over,
    })
    .map((s) => dropUndefined(s as Settings));
}

function dropUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** Initializers fail rarely (such a run ends at start()); a hang is rarer than a throw. */
const initFaultArb: fc.Arbitrary<HookFault | undefined> = fc.oneof(
  SHRINK,
  { arbitrary: fc.constant(undefined), weight: 45 },
  { arbitrary: fc.constant('throw' as const), weight: 2 },
  { arbitrary: fc.constant('hang' as const), weight: 1 },
  { arbitrary: fc.constant('hangIdle' as const), weight: 1 },
);
const finalFaultArb: fc.Arbitrary<HookFault | undefined> = fc.oneof(
  SHRINK,
  { arbitrary: fc.constant(undefined), weight: 12 },
  { arbitrary: fc.constant('throw' as const), weight: 2 },
  { arbitrary: fc.constant('hang' as const), weight: 1 },
  { arbitrary: fc.constant('hangIdle' as const), weight: 1 },
);
const hooksArb: fc.Arbitrary<Hooks> = fc
  .record({
    processInitializer: initFaultArb,
    threadInitializer: initFaultArb,
    threadFinalizer: finalFaultArb,
    processFinalizer: finalFaultArb,
  })
  .map((h) => dropUndefined(h) as Hooks);
const noHooks: fc.Arbitrary<Hooks> = fc.constant({});

/** About one task in six gets an AbortSignal: already aborted (-1), or aborted 0–300 ms after submit(). */
const abortArb: fc.Arbitrary<number | undefined> = fc.oneof(
  SHRINK,
  { arbitrary: fc.constant(undefined), weight: 10 },
  { arbitrary: fc.constant(-1), weight: 1 },
  { arbitrary: fc.integer({ min: 0, max: 300 }), weight: 1 },
);

const B = {
  return: fc.constant({ kind: 'return' as const }),
  throw: fc.constant({ kind: 'throw' as const }),
  sleep: fc.integer({ min: 5, max: 50 }).map((ms) => ({ kind: 'sleep' as const, ms })),
  spin: fc.constant({ kind: 'spin' as const }),
  exit: fc.constantFrom(0, 1, 3).map((code) => ({ kind: 'exit' as const, code })),
  sigkill: fc.constant({ kind: 'sigkill' as const }),
  gracefulDie: fc.constant({ kind: 'gracefulDie' as const }),
  unsendable: fc.constant({ kind: 'unsendable' as const }),
  abort: fc.constant({ kind: 'abort' as const }),
  grandchild: fc
    .record({
      after: fc.constantFrom('return' as const, 'hang' as const),
      detached: fc.oneof(
        SHRINK,
        { arbitrary: fc.constant(false), weight: 2 },
        { arbitrary: fc.constant(true), weight: 1 },
      ),
    })
    .map(({ after, detached }) => ({ kind: 'grandchild' as const, after, ...(detached ? { detached } : {}) })),
  near: fc.integer({ min: -20, max: 20 }).map((pct) => ({ kind: 'near' as const, pct })),
  long: fc.integer({ min: 400, max: 2500 }).map((ms) => ({ kind: 'long' as const, ms })),
  leak: fc.integer({ min: 1, max: 4 }).map((mb) => ({ kind: 'leak' as const, mb })),
  deep: fc.constantFrom(6000, 50_000).map((depth) => ({ kind: 'deep' as const, depth })),
  badThrow: fc
    .constantFrom('fnStack' as const, 'throwingGetter' as const, 'symbolMessage' as const)
    .map((how) => ({ kind: 'badThrow' as const, how })),
};
type Weights = Partial<Record<Kind, number>>;

function behaviourArb(w: Weights): fc.Arbitrary<Behaviour> {
  return fc.oneof(
    SHRINK,
    ...Object.entries(w).map(([k, weight]) => ({
      arbitrary: B[k as Kind] as fc.Arbitrary<Behaviour>,
      weight: weight!,
    })),
  );
}

function taskArb(w: Weights, signals = true): fc.Arbitrary<Task> {
  return fc
    .record({ b: behaviourArb(w), abortAfterMs: signals ? abortArb : fc.constant(undefined) })
    .map(({ b, abortAfterMs }) => (abortAfterMs === undefined ? b : { ...b, abortAfterMs }));
}

/** The worker's side as today's model drew it, and the new behaviours at low weight. */
const GENERAL: Weights = {
  return: 8,
  throw: 2,
  sleep: 4,
  spin: 1,
  exit: 1,
  sigkill: 1,
  gracefulDie: 1,
  unsendable: 1,
  abort: 1,
  grandchild: 2,
  near: 1,
  long: 1,
  leak: 1,
};
/** Tasks that end by themselves, quickly, and harm nothing. */
const CHEAP: Weights = { return: 6, sleep: 3, throw: 1, unsendable: 1 };

const endingArb = (w: { join: number; graceful: number; terminate: number; signal: number }): fc.Arbitrary<Ending> =>
  fc.oneof(
    SHRINK,
    { arbitrary: fc.constant({ kind: 'join' as const }), weight: w.join },
    {
      arbitrary: fc.record({
        kind: fc.constant('graceful' as const),
        timeout: fc.integer({ min: 200, max: 1500 }),
        afterPuts: fc.integer({ min: 0, max: 8 }),
        stallMs: fc.integer({ min: 0, max: 500 }),
      }),
      weight: w.graceful,
    },
    {
      arbitrary: fc.record({
        kind: fc.constant('terminate' as const),
        afterPuts: fc.integer({ min: 0, max: 8 }),
        stallMs: fc.integer({ min: 0, max: 500 }),
      }),
      weight: w.terminate,
    },
    { arbitrary: signalEndingArb, weight: w.signal },
  );

const signalEndingArb: fc.Arbitrary<Ending> = fc
  .record({
    kind: fc.constant('signal' as const),
    signal: fc.constantFrom('SIGINT' as const, 'SIGTERM' as const),
    afterPuts: fc.integer({ min: 0, max: 8 }),
    stallMs: fc.integer({ min: 0, max: 500 }),
    secondAfterMs: sometimes(fc.integer({ min: 0, max: 300 }), 4),
  })
  .map((e) => dropUndefined(e));

/** About one run in four calls close() while it puts. */
const closeArb: fc.Arbitrary<Scenario['close']> = sometimes(
  fc.record({
    beforeTask: fc.integer({ min: 0, max: 24 }),
    delayMs: fc.oneof(SHRINK, fc.constant(0), fc.integer({ min: 1, max: 300 })),
  }),
  3,
);

const followUpsArb = (poolMax: number): fc.Arbitrary<FollowUps> =>
  fc.record({
    fanout: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 4 }),
    tasks: fc.array(taskArb({ return: 5, sleep: 3, throw: 1, near: 1, unsendable: 1 }, false), {
      minLength: 1,
      maxLength: poolMax,
    }),
  });

const collectorArb = (follow: boolean): fc.Arbitrary<Consumer> =>
  fc
    .record({
      kind: fc.constant('collector' as const),
      mode: fc.constantFrom('sync' as const, 'async' as const, 'slow' as const),
      delayMs: fc.integer({ min: 1, max: 40 }),
      throwEvery: sometimes(fc.integer({ min: 1, max: 4 }), 2),
      followUps: follow ? followUpsArb(30) : fc.constant(undefined),
    })
    .map((c) => dropUndefined(c.mode === 'slow' ? c : { ...c, delayMs: undefined }));

const iteratorArb = (follow: boolean): fc.Arbitrary<Consumer> =>
  fc
    .record({
      kind: fc.constant('iterator' as const),
      delayMs: sometimes(fc.integer({ min: 1, max: 40 }), 1),
      late: sometimes(fc.constant(true), 2),
      stop: sometimes(
        fc.record({ after: fc.integer({ min: 1, max: 12 }), how: fc.constantFrom('break' as const, 'throw' as const) }),
        1,
      ),
      followUps: follow ? followUpsArb(30) : fc.constant(undefined),
    })
    .map((c) => dropUndefined(c));

/** The general profile's reader: mostly today's synchronous collector. */
const generalConsumerArb: fc.Arbitrary<Consumer | undefined> = fc.oneof(
  SHRINK,
  { arbitrary: fc.constant(undefined), weight: 8 },
  { arbitrary: collectorArb(false), weight: 2 },
  { arbitrary: iteratorArb(false), weight: 2 },
  { arbitrary: fc.constant({ kind: 'none' as const }), weight: 1 },
);

const listenersArb: fc.Arbitrary<Listeners> = fc
  .record({
    taskThrowEvery: sometimes(fc.integer({ min: 1, max: 5 }), 1),
    restartThrows: sometimes(fc.constant(true), 1),
  })
  .map((l) => dropUndefined(l));

interface Parts {
  settings: Settings;
  tasks: Task[];
  ending: Ending;
  hooks: Hooks;
  close: Scenario['close'];
  consumer: Consumer | undefined;
  listeners: Listeners | undefined;
  script: boolean;
}

const scriptArb = fc.oneof(
  SHRINK,
  { arbitrary: fc.constant(false), weight: 5 },
  { arbitrary: fc.constant(true), weight: 1 },
);

function profileArb(profile: Profile, parts: { [K in keyof Parts]: fc.Arbitrary<Parts[K]> }): fc.Arbitrary<Scenario> {
  return fc.record(parts).map((p) => finish(profile, p));
}

const none = <T>() => fc.constant(undefined as T | undefined);
/** Profiles with long or many tasks: a jitter ≤ 0.2, so lifecycleDuration retirements stay ≥ 0.8 of it apart. */
const smallJitter = sometimes(
  fc.integer({ min: 0, max: 20 }).map((p) => p / 100),
  1,
);

/** Today's model, every new knob at low weight. */
const general = profileArb('general', {
  settings: settingsArb({ retries: [0, 1] }),
  tasks: fc.array(taskArb(GENERAL), { maxLength: 25, size: 'medium' }),
  ending: endingArb({ join: 3, graceful: 2, terminate: 1, signal: 1 }),
  hooks: hooksArb,
  close: closeArb,
  consumer: generalConsumerArb,
  listeners: sometimes(listenersArb, 8),
  script: scriptArb,
});

/** A crawler: each outcome read puts 0–3 more (awaited in the collector or the loop body), small queues. */
const crawler = profileArb('crawler', {
  settings: settingsArb(
    { processes: [1, 2], threads: [1, 2], concurrency: [1, 2], retries: [0, 1] },
    {
      resultQueueMaxsize: sometimes(fc.integer({ min: 1, max: 6 }), 1),
      lifecycleMemory: none(),
      processMemoryLimit: none(),
      taskTimeout: sometimes(fc.integer({ min: 300, max: 800 }), 2),
      putTimeout: none(),
    },
  ),
  tasks: fc.array(taskArb(CHEAP, false), { minLength: 1, maxLength: 6 }),
  ending: endingArb({ join: 6, graceful: 1, terminate: 1, signal: 1 }),
  hooks: noHooks,
  close: none(),
  consumer: fc
    .oneof(SHRINK, collectorArb(true), iteratorArb(true))
    .map((c) => (c.kind === 'iterator' ? dropUndefined({ ...c, late: undefined }) : c)),
  listeners: none(),
  script: scriptArb,
});

/** A reader that is slow, leaves early (break or throw), comes late, or never comes; small result queues. */
const reader = profileArb('reader', {
  settings: settingsArb(
    { processes: [1, 2], threads: [1, 2], retries: [0, 1] },
    {
      resultQueueMaxsize: fc.integer({ min: 1, max: 6 }),
      lifecycleMemory: none(),
      processMemoryLimit: none(),
      putTimeout: none(),
    },
  ),
  tasks: fc.array(taskArb({ ...CHEAP, near: 1 }), { minLength: 5, maxLength: 25 }),
  ending: endingArb({ join: 6, graceful: 1, terminate: 1, signal: 1 }),
  hooks: noHooks,
  close: none(),
  consumer: fc.oneof(
    SHRINK,
    { arbitrary: iteratorArb(false), weight: 4 },
    { arbitrary: collectorArb(false), weight: 1 },
    { arbitrary: fc.constant({ kind: 'none' as const }), weight: 1 },
  ),
  listeners: none(),
  script: scriptArb,
});

/**
 * Tasks whose duration sits within ±20 % of the taskTimeout, with retries and concurrency: mostly
 * only cheap tasks (then up to 100 at a tight timeout: a race at the boundary is rare per task),
 * sometimes with a thread or process killer among them (then 25).
 */
const boundary = profileArb('boundary', {
  settings: settingsArb(
    { processes: [1, 2], threads: [1, 2], retries: [0, 3] },
    {
      taskTimeout: fc.oneof(
        SHRINK,
        fc.integer({ min: 300, max: 800 }),
        fc.constantFrom(1, 5),
        fc.integer({ min: 10, max: 60 }),
      ),
      lifecycleMemory: none(),
      processMemoryLimit: none(),
      lifecycleJitter: smallJitter,
    },
  ),
  tasks: fc.oneof(
    SHRINK,
    {
      arbitrary: fc.array(taskArb({ near: 12, return: 2, sleep: 1, throw: 1 }), {
        minLength: 1,
        maxLength: 100,
        size: 'max',
      }),
      weight: 3,
    },
    {
      arbitrary: fc.array(taskArb({ near: 12, return: 2, sleep: 1, throw: 1, exit: 1, sigkill: 1 }), {
        minLength: 1,
        maxLength: 25,
      }),
      weight: 1,
    },
  ),
  ending: endingArb({ join: 5, graceful: 1, terminate: 1, signal: 0 }),
  hooks: noHooks,
  close: none(),
  consumer: generalConsumerArb,
  listeners: none(),
  script: scriptArb,
});

/** No hooks mostly; now and then finalizers that throw or hang (a run's ending must bound them). */
const finalizerFaultsArb: fc.Arbitrary<Hooks> = fc.oneof(
  SHRINK,
  { arbitrary: noHooks, weight: 3 },
  {
    arbitrary: fc
      .record({ threadFinalizer: finalFaultArb, processFinalizer: finalFaultArb })
      .map((h) => dropUndefined(h) as Hooks),
    weight: 1,
  },
);

/** Soft limits (count, age, heap, RSS) with long tasks and leaks; mostly no hard limit. */
const soft = profileArb('soft', {
  settings: settingsArb(
    { retries: [0, 1] },
    {
      lifecycle: sometimes(fc.integer({ min: 1, max: 5 }), 1),
      lifecycleDuration: sometimes(fc.integer({ min: 500, max: 2000 }), 1),
      lifecycleMemory: sometimes(fc.integer({ min: 4, max: 12 }), 1),
      // A third of the runs below a child's idle RSS (it retires at every check), a third above.
      processMemoryLimit: fc.oneof(
        SHRINK,
        fc.constant(undefined),
        fc.integer({ min: 45, max: 70 }),
        fc.integer({ min: 71, max: 120 }),
      ),
      taskTimeout: sometimes(fc.integer({ min: 300, max: 800 }), 4),
      hookTimeout: fc.integer({ min: 200, max: 1000 }),
      lifecycleJitter: smallJitter,
    },
  ),
  tasks: fc.array(taskArb({ long: 3, leak: 3, return: 4, sleep: 2, throw: 1, gracefulDie: 1 }, false), {
    minLength: 1,
    maxLength: 12,
  }),
  ending: endingArb({ join: 6, graceful: 1, terminate: 0, signal: 1 }),
  hooks: finalizerFaultsArb,
  close: none(),
  consumer: generalConsumerArb,
  listeners: none(),
  script: scriptArb,
});

/** One or two tasks that kill their own process, at P1×T1 with retries: everything else must be served. */
const poison = profileArb('poison', {
  settings: settingsArb(
    { processes: [1, 1], threads: [1, 1], concurrency: [1, 2], retries: [1, 8] },
    {
      lifecycle: none(),
      lifecycleDuration: none(),
      lifecycleMemory: none(),
      processMemoryLimit: none(),
      putTimeout: none(),
    },
  ),
  tasks: fc
    .tuple(
      fc.array(taskArb(CHEAP, false), { minLength: 2, maxLength: 20 }),
      fc.array(fc.oneof(SHRINK, B.sigkill, B.abort), { minLength: 1, maxLength: 2 }),
      fc.nat(),
    )
    .map(([cheap, bad, at]) => {
      const out: Task[] = [...cheap];
      for (const [i, b] of bad.entries()) out.splice((at + i * 7) % (out.length + 1), 0, b);
      return out;
    }),
  ending: endingArb({ join: 6, graceful: 1, terminate: 0, signal: 1 }),
  hooks: noHooks,
  close: none(),
  consumer: generalConsumerArb,
  listeners: none(),
  script: scriptArb,
});

/** Results the master may fail to decode, thrown values that cannot be cloned, among ordinary tasks. */
const badValues = profileArb('badValues', {
  settings: settingsArb(
    { processes: [1, 2], threads: [1, 2], concurrency: [1, 2], retries: [0, 1] },
    {
      lifecycleMemory: none(),
      processMemoryLimit: none(),
      lifecycleDuration: none(),
    },
  ),
  tasks: fc.array(taskArb({ ...CHEAP, deep: 2, badThrow: 3 }, false), { minLength: 1, maxLength: 16 }),
  ending: endingArb({ join: 6, graceful: 1, terminate: 1, signal: 0 }),
  hooks: noHooks,
  close: none(),
  consumer: generalConsumerArb,
  listeners: none(),
  script: fc.constant(false),
});

/** Listeners and collectors that throw, with restarts happening. */
const callbacks = profileArb('callbacks', {
  settings: settingsArb(
    { retries: [0, 1] },
    { lifecycle: sometimes(fc.integer({ min: 1, max: 3 }), 0), lifecycleMemory: none(), processMemoryLimit: none() },
  ),
  tasks: fc.array(taskArb({ ...CHEAP, exit: 1, sigkill: 1 }), { minLength: 1, maxLength: 16 }),
  ending: endingArb({ join: 5, graceful: 1, terminate: 1, signal: 1 }),
  hooks: noHooks,
  close: none(),
  consumer: fc.oneof(
    SHRINK,
    { arbitrary: fc.constant(undefined), weight: 2 },
    {
      arbitrary: collectorArb(false).map((c) => (c.kind === 'collector' ? { ...c, throwEvery: c.throwEvery ?? 2 } : c)),
      weight: 2,
    },
    { arbitrary: iteratorArb(false), weight: 1 },
  ),
  listeners: listenersArb.map((l) => (l.taskThrowEvery || l.restartThrows ? l : { taskThrowEvery: 1 })),
  script: fc.constant(true),
});

/** Ctrl+C / SIGTERM to a real master script while its plain `for … await m.put()` loop waits for room. */
const signal = profileArb('signal', {
  settings: settingsArb(
    { processes: [1, 2], threads: [1, 2], concurrency: [1, 2], queue: [1, 4] },
    {
      lifecycleMemory: none(),
      processMemoryLimit: none(),
      putTimeout: none(),
    },
  ),
  tasks: fc.array(taskArb({ sleep: 4, long: 1, return: 2, throw: 1, near: 1 }, false), { minLength: 3, maxLength: 25 }),
  ending: signalEndingArb,
  hooks: finalizerFaultsArb,
  close: none(),
  consumer: generalConsumerArb,
  listeners: none(),
  script: fc.constant(true),
});

const ARBS: Record<Profile, { arb: fc.Arbitrary<Scenario>; weight: number }> = {
  general: { arb: general, weight: 4 },
  crawler: { arb: crawler, weight: 2 },
  reader: { arb: reader, weight: 2 },
  boundary: { arb: boundary, weight: 2 },
  soft: { arb: soft, weight: 2 },
  poison: { arb: poison, weight: 1 },
  badValues: { arb: badValues, weight: 1 },
  callbacks: { arb: callbacks, weight: 1 },
  signal: { arb: signal, weight: 1 },
};

/** Scenarios from the given profiles (all by default), each with its weight. */
export function scenarioArb(only: readonly Profile[] = PROFILES): fc.Arbitrary<Scenario> {
  const chosen = only.map((p) => ({ arbitrary: ARBS[p].arb, weight: ARBS[p].weight }));
  return fc.oneof(...chosen);
}

// ---- normalisation: what a drawn scenario becomes (map, never filter: shrinking stays possible) ----

/** Behaviours that never end by themselves: a spin (synchronous), a grandchild task that hangs (asynchronous). */
export function isEndless(t: Behaviour): boolean {
  return t.kind === 'spin' || (t.kind === 'grandchild' && t.after === 'hang');
}

/**
 * A task may run forever only when something is certain to stop it: a taskTimeout, an ending
 * with a short deadline (gracefulShutdown's timeout, terminate), or its own AbortSignal. (A
 * signal's graceful shutdown would stop it too, but only after SIGNAL_SHUTDOWN_TIMEOUT_MS:
 * 10 s per run is too dear, so those runs get endless tasks only as join() does.)
 */
export function spinAllowed(settings: Settings, ending: Ending, task?: Task): boolean {
  return (
    settings.taskTimeout !== undefined ||
    ending.kind === 'graceful' ||
    ending.kind === 'terminate' ||
    task?.abortAfterMs !== undefined
  );
}

/** Tasks that run long enough to matter: cheap runs may hold more of them. */
function isCheap(t: Task): boolean {
  return (
    t.kind === 'return' || t.kind === 'throw' || t.kind === 'sleep' || t.kind === 'near' || t.kind === 'unsendable'
  );
}

/**
 * Tasks in a run, at most: fewer when there are many threads, so a run's cost stays bounded
 * (P×T threads start, retire and stop in every run); up to 100 cheap tasks at a tight timeout
 * (a race at the timeout boundary is rare per task), 25 per slot (P×T×concurrency); at most 4 long tasks.
 */
export function maxTasks(s: Settings, tasks: Task[]): number {
  const threads = s.processes * s.threads;
  const base = threads <= 4 ? 25 : threads <= 8 ? 16 : 10;
  if (s.taskTimeout !== undefined && s.taskTimeout < 100 && threads <= 4 && tasks.every(isCheap))
    return Math.min(100, 25 * threads * s.concurrency);
  return base;
}

/** What a task becomes where its behaviour does not apply. */
function fitTask(t: Task, s: Settings, ending: Ending, longSoFar: { n: number }): Task {
  const keep = t.abortAfterMs === undefined ? {} : { abortAfterMs: t.abortAfterMs };
  if (isEndless(t) && !spinAllowed(s, ending, t)) return { kind: 'sleep', ms: 50, ...keep };
  if (t.kind === 'near' && s.taskTimeout === undefined) return { kind: 'sleep', ms: 20, ...keep };
  if (t.kind === 'leak' && s.lifecycleMemory === undefined && s.processMemoryLimit === undefined)
    return { kind: 'sleep', ms: 10, ...keep };
  if (t.kind === 'long' && ++longSoFar.n > 4) return { kind: 'sleep', ms: 30, ...keep };
  return t;
}

/**
 * Whether a child of the run may be SIGKILLed (by a task, or by terminate(), or a second signal):
 * a detached grandchild spawned within the watchdog's 250 ms recording period before that is
 * not covered (guarantees.md, "No orphans"), so such runs spawn none.
 */
function killsChildren(tasks: Task[], ending: Ending): boolean {
  return (
    tasks.some((t) => t.kind === 'sigkill' || t.kind === 'abort') ||
    ending.kind === 'terminate' ||
    (ending.kind === 'signal' && ending.secondAfterMs !== undefined)
  );
}

function finish(profile: Profile, p: Parts): Scenario {
  let settings = p.settings;
  // putTimeout only on runs with a small queue.
  if (settings.putTimeout !== undefined && settings.taskQueueMaxsize > 3)
    settings = dropUndefined({ ...settings, putTimeout: undefined });
  const long = { n: 0 };
  const attached = killsChildren(p.tasks, p.ending);
  const tasks = p.tasks
    .slice(0, maxTasks(settings, p.tasks))
    .map((t) => fitTask(t, settings, p.ending, long))
    .map(
      (t): Task =>
        attached && t.kind === 'grandchild' && t.detached ? dropUndefined({ ...t, detached: undefined }) : t,
    );
  let consumer = p.consumer;
  if (consumer && consumer.kind !== 'none' && consumer.followUps) {
    const f = consumer.followUps;
    consumer = { ...consumer, followUps: { ...f, tasks: f.tasks.map((t) => fitTask(t, settings, p.ending, long)) } };
  }
  const listeners = p.listeners && Object.keys(p.listeners).length ? p.listeners : undefined;
  return {
    profile,
    settings,
    ending: p.ending,
    ...(Object.keys(p.hooks).length ? { hooks: p.hooks } : {}),
    ...(p.close ? { close: p.close } : {}),
    ...(consumer ? { consumer } : {}),
    ...(listeners ? { listeners } : {}),
    ...(p.script ? { script: true } : {}),
    tasks,
  };
}

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
export function hookInitArgs(
  sc: Scenario,
): { mpmsFaults: Record<string, { kind: 'throw' | 'hang' }>; busyHooks: string[] } | undefined {
  const entries = Object.entries(sc.hooks ?? {}).filter(([, f]) => f !== undefined) as [HookName, HookFault][];
  if (!entries.length) return undefined;
  return {
    mpmsFaults: Object.fromEntries(entries.map(([h, f]) => [h, { kind: f === 'throw' ? 'throw' : 'hang' }])),
    busyHooks: entries.filter(([, f]) => f === 'hang').map(([h]) => h),
  };
}

export { taskArgs } from './drive.mjs';
