/**
 * The child's thread supervisor: every thread start and restart of a child is decided here —
 * the first generation, a successor started ahead of a soft retirement (standby), the
 * replacement of a thread that retired or died, back-off after failed starts (the shared
 * policy, shared/backoff.ts) and giving up (the child reports `fatal`). The relay reports what
 * happened (a thread is ready, retiring, exited); it never starts a thread itself.
 */
import {
  type ChildInit,
  type ErrorWire,
  type FromChild,
  type FromThread,
  type Reason,
  type StartPhase,
  type ThreadInit,
  type ToThread,
  taskIdFields,
  toErrorWire,
} from '../protocol.js';
import { Backoff } from '../shared/backoff.js';
import { LOAD_ALLOWANCE_MS, withTimeout } from '../shared/bounded.js';
import { startFailed } from '../shared/outcomes.js';
import { startLogFile } from '../shared/start-log.js';
import { IdleCores } from './idle-cores.js';
import { ThreadSlot, UTILIZATION_SPAN_MS } from './thread-slot.js';

/** What the supervisor needs of its relay. */
export interface SupervisorHost {
  readonly init: ChildInit;
  readonly threadInit: Omit<ThreadInit, 'slots' | 'threadIndex' | 'startLog'>;
  log(level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): void;
  /** To the master: restarts, the count of threads alive, cut background work, giving up. */
  send(msg: FromChild): void;
  stopping(): boolean;
  onMessage(slot: ThreadSlot, msg: FromThread): void;
  /** A thread exited: the relay accounts for its tasks, then tells the supervisor (`exited`). */
  onExit(slot: ThreadSlot, code: number): void;
  /** Terminates a thread, the whole child if it will not die (the relay's watchdog). */
  kill(slot: ThreadSlot): void;
}

/** What every thread of a child starts with, before the supervisor adds its own (slot, limits, start log). */
export function threadSettings(init: ChildInit, processData: unknown): SupervisorHost['threadInit'] {
  return {
    module: init.module,
    exportName: init.exportName,
    processIndex: init.processIndex,
    name: init.name,
    concurrency: init.concurrency,
    hookTimeout: init.hookTimeout,
    initArgs: init.initArgs,
    processData,
    lifecycle: 0,
    lifecycleDuration: 0,
    lifecycleMemory: init.lifecycleMemory ?? 0,
    gracefulDieErrors: init.gracefulDieErrors,
    drainMs: init.drainMs,
  };
}

export class ThreadSupervisor {
  /** The thread serving each slot. */
  readonly threads: ThreadSlot[] = [];
  /** Retired threads still finishing (running tasks, finalizers, background work). */
  readonly leaving = new Set<ThreadSlot>();
  /** Successors started ahead of their predecessor's retirement, not yet in its place. */
  readonly standby = new Set<ThreadSlot>();
  /**
   * How long a thread's boot (spawn to ready) takes here, pessimistically: a slow boot counts
   * at once, faster ones lower it slowly. It sets how early a successor starts, and a late one
   * leaves a slot idle while one standing by a little longer costs only memory and idle CPU
   * (see startSuccessor). Boots vary several-fold under load.
   */
  private bootMs = 0;
  private readonly idleCores = new IdleCores();
  private spawnSeq = 0;
  private readonly backoff = new Backoff();
  /** Resolves when every thread of the first generation is ready; rejects if they cannot start. */
  readonly started: Promise<void>;
  private markStarted!: () => void;
  private failStart!: (err: { phase: StartPhase; error: ErrorWire }) => void;
  private isStarted = false;
  /** Threads that can run tasks, as last told to the master (see `threads` in protocol.ts). */
  private reportedAlive = 0;

  constructor(private readonly host: SupervisorHost) {
    this.started = new Promise((resolve, reject) => {
      this.markStarted = resolve;
      this.failStart = reject;
    });
  }

  /** Starts the first generation. */
  startAll(): void {
    for (let i = 0; i < this.host.init.threads; i++) this.spawn(i);
  }

  /** Every thread not yet exited or forgotten: serving, leaving, on standby. */
  all(): ThreadSlot[] {
    return [...this.threads, ...this.leaving, ...this.standby];
  }

  /** Threads not yet exited (starting ones too): a stop waits for all of them. */
  get alive(): number {
    return this.threads.filter((t) => !t.exited).length + this.leaving.size + this.standby.size;
  }

  /** A thread said it is ready: the failure streak is over; serving its slot, its duration starts. */
  private ready(slot: ThreadSlot): void {
    this.backoff.reset();
    this.bootMs = Math.max(Date.now() - slot.spawnedAt, this.bootMs * 0.9);
    if (this.threads[slot.index] === slot) this.serving(slot);
  }

  /**
   * `slot` is ready and serves its slot: its lifecycleDuration runs from now, and its successor
   * is scheduled a lead ahead of its end. Not from its ready: a successor on standby may wait
   * long (its predecessor finishing a long task), and a duration counted from its ready
   * retired it while it stood by, so the restart it was started for ran cold.
   */
  private serving(slot: ThreadSlot): void {
    if (slot.lifecycleDuration <= 0 || slot.durationTimer) return;
    const lead = Math.max(0, slot.lifecycleDuration - this.successorLeadMs);
    slot.successorTimer = setTimeout(() => this.startSuccessor(slot), lead);
    slot.successorTimer.unref();
    // Sent to the thread, which retires between tasks (a soft limit), as on its other limits.
    slot.durationTimer = setTimeout(() => {
      if (!slot.retiring && !slot.exited && !this.host.stopping()) {
        slot.send({ t: 'retire', reason: 'lifecycle', detail: `${slot.lifecycleDuration} ms` });
      }
    }, slot.lifecycleDuration);
    slot.durationTimer.unref();
  }

  /** A thread finished tasks: near the end of its lifecycle (in tasks), its successor starts about a boot ahead. */
  worked(slot: ThreadSlot): void {
    if (slot.lifecycle > 0 || slot.lifecycleDuration > 0) this.idleCores.tick(Date.now());
    const left = (slot.lifecycle - slot.consumed) * slot.runTime.ms;
    if (slot.lifecycle > 0 && !slot.aheadDecided && left <= this.successorLeadMs * slot.concurrency) {
      this.startSuccessor(slot);
    }
  }

  /**
   * A thread retires (a soft limit): its replacement takes its place before it leaves. Returns
   * whether the replacement was already ready (`warm`), or undefined when none is started (it
   * was not serving its slot, or the child stops).
   */
  private retiring(slot: ThreadSlot): boolean | undefined {
    // Read while its event loop still runs: its successor inherits it (see ThreadSlot.utilization).
    slot.utilization();
    if (this.host.stopping() || this.threads[slot.index] !== slot) return undefined;
    this.leaving.add(slot);
    return this.replace(slot);
  }

  /**
   * A thread said it retires (a soft limit; `firstNotice`: not said before): its replacement is
   * in place before it leaves — started ahead of time (a successor on standby), it is usually
   * ready already, and capacity does not dip. The master hears of the restart.
   */
  onRetiring(slot: ThreadSlot, reason: Reason, detail: string | undefined): void {
    const firstNotice = !slot.retiring;
    slot.retiring = true;
    if (!firstNotice) return;
    const warm = this.retiring(slot);
    if (warm !== undefined) this.host.send({ t: 'restart', threadIndex: slot.index, reason, detail, warm });
  }

  /** Starts a thread for slot `index`; `before`, the thread it replaces, hands down what it learnt. */
  private startThread(index: number, before: ThreadSlot | undefined): ThreadSlot {
    const slot = new ThreadSlot(
      index,
      {
        ...this.host.threadInit,
        lifecycle: this.jittered(this.host.init.lifecycle),
        lifecycleDuration: this.jittered(this.host.init.lifecycleDuration),
        startLog: startLogFile(this.host.init.startLogDir, process.pid, index, this.spawnSeq++),
      },
      this.host.init.concurrency,
    );
    // The replacement inherits what its predecessor learnt of task run times, so its window is
    // right from its first refill instead of ramping up from the pessimistic default.
    if (before) {
      slot.runTime.inherit(before.runTime);
      slot.inheritedUtilization = before.utilization() ?? before.inheritedUtilization;
    }
    // Boot + module load + threadInitializer (which bounds itself by hookTimeout).
    const readyBound = this.host.init.hookTimeout + LOAD_ALLOWANCE_MS;
    const startTimer = setTimeout(() => {
      if (slot.ready || slot.exited) return;
      this.host.log('error', `thread ${index} did not become ready within ${readyBound} ms; terminating it`);
      slot.failedStart = 'threadStart';
      void slot.worker.terminate();
    }, readyBound);
    startTimer.unref();
    slot.worker.on('message', (msg: FromThread) => this.host.onMessage(slot, msg));
    // A message this process cannot read (e.g. nested deeper than its stack) may have carried
    // outcomes: a fault of the thread, ended so that its exit settles or hands back all it held.
    slot.worker.on('messageerror', (err) => {
      slot.lastError = new Error(`a message from it could not be read: ${err?.message}`);
      this.host.log('error', `thread ${index}: ${slot.lastError.message}; terminating it`, { threadIndex: index });
      void withTimeout(slot.worker.terminate(), 2000, `terminating thread ${index}`).catch(() => process.exit(70));
    });
    slot.worker.on('error', (err) => {
      slot.lastError = err;
      this.host.log('warn', `thread ${index} raised an uncaught error: ${err?.message}`, { threadIndex: index, err: toErrorWire(err) });
    });
    slot.worker.on('exit', (code) => {
      clearTimeout(startTimer);
      clearTimeout(slot.successorTimer);
      clearTimeout(slot.durationTimer);
      clearTimeout(slot.drainKill);
      this.host.onExit(slot, code);
    });
    return slot;
  }

  /**
   * Starts the thread that will take `slot`'s place when its lifecycle ends, so that it is
   * ready by then and capacity does not dip for a thread's boot (tens of ms) at every soft
   * restart. It waits on standby, taking no tasks, until `slot` retires (or dies).
   *
   * Only where there is CPU to boot it with: a thread that mostly waits (I/O-like tasks), or a
   * machine with a core to spare. When every core is busy, a boot ahead gains nothing — it
   * competes with the work for the same cores — and a successor started early that is never
   * used (the run ends first) is a boot wasted: measured at P2×T4 with 0.2 ms CPU tasks, a
   * boot took ~200 ms there, successors were started a whole lifecycle ahead, and recycling
   * cost 2× the CPU per restart. Whether a thread mostly waits is read over ≥ 100 ms of its
   * work, or its predecessor's (see ThreadSlot.utilization): over its first few ms a thread
   * that waits can read as busy (its start-up), and its restart then ran cold.
   */
  private startSuccessor(slot: ThreadSlot): void {
    if (slot.successor || slot.aheadDecided || slot.retiring || slot.exited || this.host.stopping()) return;
    // Itself still on standby (its lifecycle in tasks has not begun): asked again when it takes
    // its place, see replace().
    if (this.threads[slot.index] !== slot) {
      slot.successorDue = true;
      return;
    }
    if (this.idleCores.now() < SPARE_CORES) {
      const utilization = slot.utilization();
      if (utilization === undefined) {
        // Decided too early to tell waiting from working (a first-generation thread a few ms
        // into its work): asked again at its next outcome, or, for a lifecycleDuration, soon.
        if (slot.lifecycleDuration > 0) {
          clearTimeout(slot.successorTimer);
          slot.successorTimer = setTimeout(() => this.startSuccessor(slot), UTILIZATION_SPAN_MS);
          slot.successorTimer.unref();
        }
        return;
      }
      if (utilization > WAITING_UTILIZATION) {
        slot.aheadDecided = true;
        return;
      }
    }
    slot.aheadDecided = true;
    const next = this.startThread(slot.index, slot);
    slot.successor = next;
    this.standby.add(next);
  }

  /** How much work (ms) a thread has left when its successor starts. */
  private get successorLeadMs(): number {
    return Math.max(SUCCESSOR_LEAD * this.bootMs, MIN_SUCCESSOR_LEAD_MS);
  }

  private spawn(index: number): void {
    this.threads[index] = this.startThread(index, this.threads[index]);
  }

  private jittered(value: number | undefined): number {
    if (!value) return 0;
    const j = this.host.init.lifecycleJitter;
    return Math.max(1, Math.round(value * (1 + (j ? (Math.random() * 2 - 1) * j : 0))));
  }

  /** Puts `slot`'s successor in its place, or a new thread when none is alive on standby. */
  private replace(slot: ThreadSlot): boolean {
    const next = slot.successor;
    slot.successor = undefined;
    clearTimeout(slot.successorTimer);
    if (next && !next.exited && !next.retiring) {
      this.standby.delete(next);
      this.threads[slot.index] = next;
      // The work it takes over is its predecessor's: so is its utilization, until it has its own.
      next.inheritedUtilization = slot.utilization() ?? slot.inheritedUtilization;
      if (next.ready) {
        next.markWorking();
        this.serving(next);
      }
      if (next.successorDue) this.startSuccessor(next);
      return next.ready;
    }
    this.spawn(slot.index);
    return false;
  }

  /** Forgets an exited thread as leaving or standing by. */
  private forget(slot: ThreadSlot): void {
    this.leaving.delete(slot);
    this.standby.delete(slot);
  }

  /** Whether `slot` serves its slot index in a child that is not stopping: its death is replaced. */
  private serves(slot: ThreadSlot): boolean {
    return this.threads[slot.index] === slot && !this.host.stopping();
  }

  /**
   * A thread exited, and the relay has accounted for the attempts it held (`started`: the ids
   * of those it had started). An exit that was not a retirement's is logged and reported; a
   * thread that served its slot is replaced.
   */
  exited(slot: ThreadSlot, code: number, started: number[]): void {
    this.forget(slot);
    if (slot.draining && code !== 0) this.reportCut(slot, slot.draining, `it was ended (code ${code}) while draining`);
    const reason = slot.hardKilled ? 'hard' : slot.failedStart ? 'initFailure' : 'crash';
    const normal = slot.retiring && code === 0;
    if (!normal) {
      const fields = { threadIndex: slot.index, ...taskIdFields(started) };
      const level = slot.failedStart ? 'error' : 'warn';
      this.host.log(level, `thread ${slot.index} exited with code ${code} (${reason})`, fields);
    }
    this.reportThreads();
    if (this.serves(slot)) {
      if (!normal) this.host.send({ t: 'restart', threadIndex: slot.index, reason });
      this.died(slot);
    }
  }

  /** Replaces a thread that died: at once if it had started, else after a back-off, or gives up. */
  private died(slot: ThreadSlot): void {
    if (slot.ready) {
      this.replace(slot);
      return;
    }
    const step = this.backoff.failed();
    if (step.giveUp) {
      const error = slot.fatal ?? startFailed(`thread ${slot.index} exited with no ready signal`);
      const phase = slot.failedStart ?? 'threadStart';
      const n = this.backoff.failures;
      const what = `thread of process ${this.host.init.processIndex} failed to start ${n} times in a row`;
      this.giveUp(phase, startFailed(`${what} (last: ${phase}: ${error.message})`, error));
      return;
    }
    setTimeout(() => {
      if (!this.host.stopping() && this.threads[slot.index] === slot) this.spawn(slot.index);
    }, step.delayMs).unref();
  }

  /**
   * At most `threads` retired threads of this child drain background work at once: threads that
   * recycle faster than their tasks' background work ends (or whose module keeps a handle open
   * that no finalizer closes) would otherwise pile up, each an isolate's worth of memory. The
   * oldest is told to stop now; it cuts its work with the same warning.
   */
  private boundDraining(): void {
    if (this.host.stopping()) return;
    const draining = [...this.leaving].filter((t) => t.draining && !t.exited && !t.cutReported && !t.drainCutAsked);
    for (let i = 0; i < draining.length - this.host.init.threads; i++) {
      const oldest = draining[i]!;
      oldest.drainCutAsked = true;
      const detail = 'too many retired threads draining';
      const msg: ToThread = { t: 'retire', reason: 'lifecycle', detail, deadlineAt: Date.now() };
      oldest.send(msg);
      this.endDrainBy(oldest, Date.now());
    }
  }

  /**
   * A draining thread ends its drain itself at its deadline; one whose event loop is blocked (a
   * background callback stuck in synchronous code) cannot, and is terminated a little later
   * (reported as cut on its exit).
   */
  private endDrainBy(slot: ThreadSlot, deadlineAt: number): void {
    clearTimeout(slot.drainKill);
    slot.drainKill = setTimeout(() => {
      if (!slot.exited) this.host.kill(slot);
    }, Math.max(0, deadlineAt - Date.now()) + DRAIN_KILL_AFTER_MS);
    slot.drainKill.unref();
  }

  /** A thread is ready: it takes tasks (or stands by), and the first generation may be complete. */
  onReady(slot: ThreadSlot): void {
    slot.ready = true;
    slot.markWorking();
    this.ready(slot);
    this.reportThreads();
    if (!this.isStarted && this.threads.every((t) => t.ready)) {
      this.isStarted = true;
      this.markStarted();
    }
  }

  /** A thread failed before it was ready: it is ended (its exit decides what follows, see died()). */
  onFatal(slot: ThreadSlot, phase: StartPhase, error: ErrorWire): void {
    slot.failedStart = phase;
    slot.fatal = error;
    this.host.log('error', `thread ${slot.index} failed in ${phase}: ${error.message}`, { threadIndex: slot.index });
    // A missing module or export will not fix itself: report at once instead of retrying.
    if (!this.isStarted && (phase === 'load' || phase === 'export')) this.failStart({ phase, error });
    void slot.worker.terminate();
  }

  /** A retired thread drains background work after its finalizer, until `deadlineAt` at most. */
  onDraining(slot: ThreadSlot, pending: string[], deadlineAt: number): void {
    slot.draining = pending;
    this.endDrainBy(slot, deadlineAt);
    this.boundDraining();
  }

  /** Background work a retiring thread left pending was cut by its exit: said, once, to the master. */
  reportCut(slot: ThreadSlot, pending: string[], detail: string): void {
    if (slot.cutReported) return;
    slot.cutReported = true;
    this.host.send({ t: 'cut', threadIndex: slot.index, pending, detail });
  }

  /** Tells the master how many threads can run tasks, when that changed (see `threads` in protocol.ts). */
  private reportThreads(): void {
    let alive = 0;
    for (const slot of this.all()) if (slot.ready && !slot.exited && !this.standby.has(slot)) alive++;
    if (alive === this.reportedAlive) return;
    this.reportedAlive = alive;
    this.host.send({ t: 'threads', alive });
  }

  /** Threads of a slot keep failing to start: the child cannot work. */
  private giveUp(phase: StartPhase, error: ErrorWire): void {
    if (this.isStarted) this.host.send({ t: 'fatal', phase, error });
    else this.failStart({ phase, error });
  }
}

/** A draining thread still alive this long after its drain deadline is terminated (see endDrainBy). */
const DRAIN_KILL_AFTER_MS = 1000;
/**
 * A successor starts when its predecessor has about this many boot times of work left, and
 * never less than MIN_SUCCESSOR_LEAD_MS: boots vary several-fold under load (25 ms to 700 ms
 * within seconds, measured with four test files beside a CPU-bound benchmark on 2 cores), and
 * 1.5 × an average boot left restarts cold there. Starting early costs a standby's memory for
 * a while, and only idle CPU (see startSuccessor).
 */
const SUCCESSOR_LEAD = 2;
const MIN_SUCCESSOR_LEAD_MS = 500;
/**
 * At or below this event-loop utilization a thread mostly waits (I/O-like tasks), and its
 * successor starts ahead even when no core is idle. Measured: 0.06–0.18 with 2 ms sleeps at
 * P2×T4; 0.41–0.78 with 0.2 ms CPU tasks there (threads waiting for their next task count as idle).
 */
const WAITING_UTILIZATION = 0.25;
/**
 * Idle cores (machine-wide, over the last 250–500 ms) enough to boot a successor on. Measured
 * at decision time: 0.81–0.91 with one busy thread on 2 cores, 0–0.03 at P2×T4 with CPU tasks.
 */
const SPARE_CORES = 0.5;
