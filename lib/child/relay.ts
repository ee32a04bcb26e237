/**
 * The child's relay: holds the tasks the master sent, hands them to its threads within each
 * thread's window, enforces hard timeouts from the threads' shared slots, and sends outcomes
 * back in batches. Which thread serves each slot, and every restart, is the thread
 * supervisor's (thread-supervisor.ts): the relay reports to it what its threads did.
 *
 * Crash accounting is exact on both levels without a message per task: a dead thread's started
 * tasks are read from the shared slots (consumed count), a dead process's from the threads'
 * start logs, which the master reads (shared/start-log.ts).
 */
import { Code, fromTaskColumns, taskIdFields, toOutcomeColumns, toErrorWire, type ChildInit, type ErrorWire, type FromChild, type FromThread, type Reason, type ResultWire, type TaskWire, type ThreadInit, type ToChild } from '../protocol.js';
import type { AttemptKey, StartPhase, ToThread } from '../protocol.js';
import fs from 'node:fs';
import { Ring } from '../shared/ring.js';
import { ThreadSlot } from './thread-slot.js';
import { TaskWatchdog } from './task-watchdog.js';
import { ThreadSupervisor } from './thread-supervisor.js';
import { cancelled, crashed, timedOut, unsendable } from '../shared/outcomes.js';
import { HOLD_MS } from '../shared/windows.js';

interface Held {
  task: TaskWire;
  /** The thread it was handed to, or null while it waits in the relay queue. */
  thread: ThreadSlot | null;
}

type Send = (msg: FromChild, cb?: (err: Error | null) => void) => void;

export class Relay {
  private readonly queue = new Ring<TaskWire>(64);
  private readonly held = new Map<number, Held>();
  private done: ResultWire[] = [];
  private returned: number[] = [];
  private deadLogs: string[] = [];
  private sending = false;
  private readonly afterSend = () => {
    this.sending = false;
    this.assign();
    this.flushOrHold();
  };
  /** When the oldest outcome held back (see flushOrHold) finished; 0 when none is held. */
  private heldSince = 0;
  private holdTimer: NodeJS.Timeout | undefined;
  private readonly holdExpired = () => {
    this.holdTimer = undefined;
    this.flush();
  };
  private timed = 0;
  private readonly watchdog: TaskWatchdog;
  private rr = 0;
  private stopping: { leftover: Code; onThreadsGone: () => void } | undefined;
  readonly threadInit: Omit<ThreadInit, 'slots' | 'threadIndex' | 'startLog'>;
  private readonly sup: ThreadSupervisor;
  /** Resolves when every thread of the first generation is ready; rejects if they cannot start. */
  readonly ready: Promise<void>;
  private markReady!: () => void;
  private failStart!: (err: { phase: StartPhase; error: ErrorWire }) => void;
  private isReady = false;
  /** Called with a process-level reason when this child must retire (graceful die). */
  onRetire: ((reason: Reason, detail: string) => void) | undefined;

  constructor(
    private readonly init: ChildInit,
    processData: unknown,
    private readonly send: Send,
    private readonly log: (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void,
  ) {
    this.threadInit = {
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
    this.ready = new Promise((resolve, reject) => {
      this.markReady = resolve;
      this.failStart = reject;
    });
    this.watchdog = new TaskWatchdog({
      init,
      log,
      timedCount: () => this.timed,
      heldTask: (id, attempt, slot) => {
        const h = this.held.get(id);
        return h && h.thread === slot && h.task[3] === attempt ? h.task : undefined;
      },
      serving: () => this.sup.threads,
      leaving: () => this.sup.leaving,
      abortTask: (id, code, reason, since) => this.abortTask(id, code, reason, since),
      flush: () => this.flush(),
    });
    this.sup = new ThreadSupervisor({
      init,
      threadInit: this.threadInit,
      log,
      stopping: () => this.stopping !== undefined,
      onMessage: (slot, msg) => this.onThreadMessage(slot, msg),
      onExit: (slot, code) => this.onThreadExit(slot, code),
      giveUp: (phase, error) => (this.isReady ? this.send({ t: 'fatal', phase, error }) : this.failStart({ phase, error })),
      kill: (slot) => this.watchdog.kill(slot),
    });
    this.sup.startAll();
  }

  /** Threads not yet exited (starting ones too): a stop waits for all of them. */
  get threadsAlive(): number {
    return this.sup.alive;
  }

  private reportedAlive = 0;

  /** Tells the master how many threads can run tasks, when that changed (see `threads` in protocol.ts). */
  private reportThreads(): void {
    let alive = 0;
    for (const slot of this.allThreads()) if (slot.ready && !slot.exited && !this.sup.standby.has(slot)) alive++;
    if (alive === this.reportedAlive) return;
    this.reportedAlive = alive;
    this.send({ t: 'threads', alive });
  }

  handle(msg: ToChild): void {
    switch (msg.t) {
      case 'tasks':
        // Sent before the master learnt that this child stops: handed straight back, unstarted.
        if (this.stopping) {
          for (const task of fromTaskColumns(msg.tasks)) this.returned.push(task[0]);
          this.flush();
          return;
        }
        for (const task of fromTaskColumns(msg.tasks)) {
          this.held.set(task[0], { task, thread: null });
          this.queue.push(task);
          if (task[2] > 0) this.timed++;
        }
        if (this.timed > 0) this.watchdog.arm();
        this.assign();
        return;
      case 'abort':
        for (const id of msg.ids) this.abortTask(id, msg.code, msg.reason);
        this.flush();
        return;
      case 'stop':
        this.stop(msg.graceMs, msg.leftover, msg.reason);
        return;
      case 'init':
        return;
    }
  }

  // ---- threads ------------------------------------------------------------------------------

  private onThreadMessage(slot: ThreadSlot, msg: FromThread): void {
    switch (msg.t) {
      case 'done':
        return this.onDone(slot, msg.done);
      case 'progress':
        this.send(msg);
        return;
      case 'ready':
        slot.ready = true;
        slot.markWorking();
        this.sup.ready(slot);
        this.reportThreads();
        if (!this.isReady && this.sup.threads.every((t) => t.ready)) {
          this.isReady = true;
          this.markReady();
        }
        this.assign();
        return;
      case 'retiring':
        return this.onThreadRetiring(slot, msg.reason, msg.returned, msg.detail);
      case 'fatal':
        slot.failedStart = msg.phase;
        slot.fatal = msg.error;
        this.log('error', `thread ${slot.index} failed in ${msg.phase}: ${msg.error.message}`, { threadIndex: slot.index });
        // A missing module or export will not fix itself: report at once instead of retrying.
        if (!this.isReady && (msg.phase === 'load' || msg.phase === 'export')) this.failStart({ phase: msg.phase, error: msg.error });
        void slot.worker.terminate();
        return;
      case 'log':
        return this.log(msg.level as 'info', msg.msg, { ...msg.fields, threadIndex: slot.index });
      case 'draining':
        slot.draining = msg.pending;
        this.sup.endDrainBy(slot, msg.deadlineAt);
        return this.sup.boundDraining();
      case 'cut':
        return this.reportCut(slot, msg.pending, `its drain deadline came after ${msg.waitedMs} ms`);
    }
  }

  /** Background work a retiring thread left pending was cut by its exit: said, once, to the master. */
  private reportCut(slot: ThreadSlot, pending: string[], detail: string): void {
    if (slot.cutReported) return;
    slot.cutReported = true;
    this.send({ t: 'cut', threadIndex: slot.index, pending, detail });
  }

  private onDone(slot: ThreadSlot, results: ResultWire[]): void {
    for (const r of results) {
      const h = this.held.get(r[0]);
      // Settled here already (timeout, abort), or an earlier attempt's late outcome: dropped.
      if (!h || h.thread !== slot || h.task[3] !== r[5]) continue;
      this.held.delete(r[0]);
      slot.inflight--;
      if (h.task[2] > 0) this.timed--;
      if (r[3] > 0) slot.runTime.observe(r[4] - r[3]);
      this.done.push(r);
      if (r[1] === Code.Error && this.init.gracefulDieErrors.includes((r[2] as ErrorWire).name)) {
        this.onRetire?.('gracefulDie', `task ${r[0]} threw ${(r[2] as ErrorWire).name}`);
      }
    }
    slot.trim((task) => this.isOn(task, slot));
    this.sup.worked(slot);
    this.assign();
    this.flushOrHold();
  }

  private onThreadRetiring(slot: ThreadSlot, reason: Reason, returned: AttemptKey[], detail?: string): void {
    const firstNotice = !slot.retiring;
    slot.retiring = true;
    for (const [id, attempt] of returned) {
      const h = this.held.get(id);
      if (!h || h.thread !== slot || h.task[3] !== attempt) continue;
      slot.inflight--;
      this.unhandToQueue(id, h);
    }
    if (firstNotice) {
      // The replacement is in place before the old thread leaves; started ahead of time (a
      // successor on standby), it is usually ready already, and capacity does not dip.
      const warm = this.sup.retiring(slot);
      if (warm !== undefined) this.send({ t: 'restart', threadIndex: slot.index, reason, detail, warm });
    }
    this.assign();
    this.flush();
  }

  /** Puts a task handed to a thread back at the front of the queue (or back to the master when stopping). */
  private unhandToQueue(id: number, h: Held): void {
    h.thread = null;
    if (this.stopping) {
      this.held.delete(id);
      if (h.task[2] > 0) this.timed--;
      this.returned.push(id);
    } else {
      this.queue.unshift(h.task);
    }
  }

  /** Whether this attempt is held here and handed to `slot`. */
  private isOn(task: TaskWire, slot: ThreadSlot): boolean {
    const h = this.held.get(task[0]);
    return h !== undefined && h.task === task && h.thread === slot;
  }

  private onThreadExit(slot: ThreadSlot, code: number): void {
    slot.exited = true;
    this.deadLogs.push(slot.startLog);
    this.sup.forget(slot);
    this.watchdog.aborting.delete(slot);
    if (slot.draining && code !== 0) this.reportCut(slot, slot.draining, `it was ended (code ${code}) while draining`);
    const { started } = slot.partition((task) => this.isOn(task, slot));
    const startedSet = new Set(started);
    const crashedReason = slot.hardKilled ? 'hard' : slot.failedStart ? 'initFailure' : 'crash';
    for (const [id, h] of this.held) {
      if (h.thread !== slot) continue;
      if (startedSet.has(h.task)) {
        const why = slot.lastError ? `: ${slot.lastError.message}` : '';
        const message = slot.hardKilled
          ? `thread ${slot.index} was terminated because a sibling task on it exceeded its time limit`
          : `thread ${slot.index} of process ${this.init.processIndex} exited with code ${code} while running task ${id}${why}`;
        const err = crashed(message, 'thread', code);
        this.settle(id, Code.Crashed, err, 0);
      } else {
        slot.inflight--;
        this.unhandToQueue(id, h);
      }
    }
    const normal = slot.retiring && code === 0;
    if (!normal) {
      const fields = { threadIndex: slot.index, ...taskIdFields(started.map((t) => t[0])) };
      const level = slot.failedStart ? 'error' : 'warn';
      this.log(level, `thread ${slot.index} exited with code ${code} (${crashedReason})`, fields);
    }
    this.reportThreads();
    if (this.sup.serves(slot)) {
      if (!normal) this.send({ t: 'restart', threadIndex: slot.index, reason: crashedReason });
      this.sup.died(slot);
    }
    if (this.stopping && this.threadsAlive === 0) this.stopping.onThreadsGone();
    this.assign();
    this.flush();
  }

  // ---- flow ---------------------------------------------------------------------------------

  private assign(): void {
    if (this.stopping || this.queue.length === 0) return;
    const n = this.sup.threads.length;
    for (let k = 0; k < n && this.queue.length > 0; k++) {
      const slot = this.sup.threads[(this.rr + k) % n]!;
      let credit = slot.credit;
      if (credit <= 0) continue;
      const batch: TaskWire[] = [];
      while (credit-- > 0 && this.queue.length > 0) {
        const task = this.queue.shift()!;
        this.held.get(task[0])!.thread = slot;
        batch.push(task);
      }
      slot.inflight += batch.length;
      slot.post(batch);
    }
    this.rr = (this.rr + 1) % n;
  }

  /**
   * Sends finished outcomes now, or holds them back a little to leave with the next ones: each
   * message wakes the master (and its refill wakes this child), and on a busy machine a wake-up
   * costs ~100–200 µs of CPU — as much as the work of a short task. They are held only while
   * the threads have queued work to go on with until the next outcome is expected plus a hop
   * (so no thread runs dry waiting for the refill this message asks for), and never longer
   * than HOLD_MS: a lone task's outcome, or the last of a job, leaves at once.
   */
  private flushOrHold(): void {
    // Short tasks fill a message within a hop anyway (and batch while a write is under way):
    // holding them would only add latency.
    if (this.done.length === 0 || this.done.length >= HOLD_BATCH || this.returned.length > 0 || this.stopping) {
      this.flush();
      return;
    }
    const now = Date.now();
    const { fedMs, nextMs } = this.outlook();
    // Held only if the next outcome is due within the bound: the flush then rides on its
    // arrival (this child is awake for it anyway) instead of on a timer of its own, which
    // would be one more wake-up. The timer only bounds a hold when outcomes come late.
    const until = (this.heldSince || now) + HOLD_MS;
    if (fedMs > 0 && now + nextMs <= until) {
      if (this.heldSince === 0) {
        this.heldSince = now;
        this.holdTimer = setTimeout(this.holdExpired, HOLD_MS);
      }
      return;
    }
    this.flush();
  }

  /**
   * `fedMs`: how long (ms) the threads can go on with the tasks queued for them (in them and
   * here, not running) beyond the next outcome expected and a refill's hop; ≤ 0 when an
   * outcome held now could leave a thread idle. `nextMs`: when the next outcome is expected.
   */
  private outlook(): { fedMs: number; nextMs: number } {
    let queued = this.queue.length;
    let perMs = 0; // tasks the threads finish per ms
    let slots = 0;
    for (const slot of this.sup.threads) {
      if (!slot.ready || slot.retiring || slot.exited) continue;
      // Its average still the initial guess (1 ms): no-op tasks would read as ms-scale.
      if (slot.runTime.observed < HOLD_MIN_OBSERVED) return { fedMs: 0, nextMs: Infinity };
      queued += Math.max(0, slot.inflight - slot.concurrency);
      perMs += slot.concurrency / Math.max(slot.runTime.ms, 0.001);
      slots += slot.concurrency;
    }
    // Sub-ms tasks: outcomes come in numbers and each message carries many; a hold would only
    // add latency (measured: round trips under a no-op flood, p50 +1–4 ms).
    if (perMs === 0 || queued === 0 || slots / perMs < HOLD_MIN_RUN_MS) return { fedMs: 0, nextMs: Infinity };
    return { fedMs: (queued - 1) / perMs - HOLD_HOP_MS, nextMs: 1 / perMs };
  }

  /**
   * Sends the pending outcomes to the master. While a send is under way they coalesce, and the
   * next batch leaves one event-loop turn after the write completed.
   */
  flush(): void {
    // While a send is under way, held outcomes stay held: they leave right after it (afterSend
    // finds their hold expired), never a whole HOLD_MS later.
    if (this.sending) return;
    if (this.heldSince !== 0) {
      this.heldSince = 0;
      clearTimeout(this.holdTimer);
      this.holdTimer = undefined;
    }
    if (this.done.length === 0 && this.returned.length === 0) return;
    const msg: FromChild = { t: 'batch' };
    const pending = this.done;
    if (pending.length) msg.done = toOutcomeColumns(pending);
    if (this.returned.length) msg.returned = this.returned;
    this.done = [];
    this.returned = [];
    this.sending = true;
    // Start logs of threads that died: their crashed outcomes are in this batch, so once it is
    // written the master no longer needs the logs.
    const logs = this.deadLogs;
    this.deadLogs = [];
    const after = (err: Error | null) => {
      if (err) return; // the master is gone; the disconnect handler ends this process
      for (const file of logs) fs.rmSync(file, { force: true });
      setImmediate(this.afterSend);
    };
    try {
      this.send(msg, after);
    } catch (err) {
      this.sendSplit(msg, pending, err as Error, after);
    }
  }

  /** A batch failed to serialize: send its outcomes one by one, replacing each unsendable one. */
  private sendSplit(msg: Extract<FromChild, { t: 'batch' }>, pending: ResultWire[], err: Error, after: (err: Error | null) => void): void {
    this.log('debug', `batch could not be sent whole (${err.message}); sending outcomes one by one`);
    delete msg.done;
    for (const r of pending) {
      try {
        this.send({ t: 'batch', done: toOutcomeColumns([r]) });
      } catch (e) {
        const wire = unsendable(`the result of task ${r[0]} cannot be sent to the master: ${(e as Error).message}`);
        this.send({ t: 'batch', done: toOutcomeColumns([[r[0], Code.Error, wire, r[3], r[4], r[5], r[6]]]) });
      }
    }
    this.send(msg, after);
  }

  // ---- hard limits --------------------------------------------------------------------------

  /** Settles a held task here and now; its thread (if any) no longer counts it. */
  private settle(id: number, code: Code, error: ErrorWire, startedAt: number): void {
    const h = this.held.get(id);
    if (!h) return;
    this.held.delete(id);
    if (h.task[2] > 0) this.timed--;
    if (h.thread) h.thread.inflight--;
    else {
      this.queue.remove(h.task);
    }
    this.done.push([id, code, error, startedAt, Date.now(), h.task[3], h.thread?.index ?? -1]);
  }

  /**
   * Ends an attempt here and now with `code` (a timeout, a cancellation, a stop's leftover),
   * and aborts it in its thread. An attempt that has already finished in its thread is left
   * alone: its own outcome is on its way and stands. Whether it started, and when, is read once
   * (ThreadSlot.stateOf) — or, for a timeout, is what the watchdog saw: `seenRunningSince`.
   */
  private abortTask(id: number, code: Code, reason: string, seenRunningSince = 0): void {
    const h = this.held.get(id);
    if (!h) return;
    const slot = h.thread;
    let startedAt = seenRunningSince;
    // Its place in the thread's queue, taken before settling (which lets the order list forget it).
    const pos = slot ? slot.positionOf(h.task) : -1;
    if (slot && !startedAt) {
      const state = slot.stateOf(h.task, pos);
      if (state?.at === 'left') return;
      if (state?.at === 'running') startedAt = state.startedAt;
    }
    // The result always matches the status: each outcome has its own error class.
    const error: ErrorWire =
      code === Code.Timeout
        ? timedOut(reason, h.task[2])
        : code === Code.Crashed
          ? crashed(reason, 'process')
          : cancelled(reason);
    this.settle(id, code, error, startedAt);
    if (slot && !slot.exited) {
      slot.send({ t: 'abort', id, attempt: h.task[3], reason });
      // Watched until it is gone from the thread: running now, or started before the abort
      // message reached the thread (a race), a task that ignores its signal must not hold the
      // thread for ever.
      slot.aborted.set(h.task, { pos, at: Date.now() });
      this.watchdog.aborting.add(slot);
      this.watchdog.arm();
    }
  }

  // ---- stopping -----------------------------------------------------------------------------

  /**
   * The child's part of a shutdown, as ordered steps: hand back unstarted tasks, let threads
   * finish and run their finalizers within `graceMs`, then abort and terminate what is left.
   * Resolves once every thread is gone.
   *
   * A soft retirement (graceful die, processMemoryLimit) passes `Infinity`: running tasks are
   * never cut, only their own time limits apply. A later call (a shutdown, a hard limit) may
   * bring the deadline forward, never push it back.
   */
  stop(graceMs: number, leftover: Code, reason: string): Promise<void> {
    if (this.stopping) {
      this.setDeadline(graceMs, leftover, reason);
      return this.stopped!;
    }
    let resolveGone!: () => void;
    const gone = new Promise<void>((r) => (resolveGone = r));
    this.stopping = { leftover, onThreadsGone: resolveGone };
    for (const task of this.queue.drain()) {
      this.held.delete(task[0]);
      if (task[2] > 0) this.timed--;
      this.returned.push(task[0]);
    }
    for (const slot of this.allThreads()) {
      if (slot.exited) continue;
      slot.send({ t: 'retire', reason: 'lifecycle', detail: reason });
    }
    this.flush();
    if (this.threadsAlive === 0) resolveGone();
    this.setDeadline(graceMs, leftover, reason);
    this.stopped = gone.then(() => clearTimeout(this.deadlineTimer));
    return this.stopped;
  }
  private stopped: Promise<void> | undefined;
  private deadlineAt = Infinity;
  private deadlineTimer: NodeJS.Timeout | undefined;

  private setDeadline(graceMs: number, leftover: Code, reason: string): void {
    if (!Number.isFinite(graceMs) || Date.now() + graceMs >= this.deadlineAt) return;
    this.deadlineAt = Date.now() + graceMs;
    clearTimeout(this.deadlineTimer);
    this.deadlineTimer = setTimeout(() => this.deadline(leftover, reason), graceMs);
    // Threads must be gone by then (deadline()): a retiring thread's drain of background work
    // ends by then, and says what it cut.
    for (const slot of this.allThreads()) {
      if (slot.exited) continue;
      const msg: ToThread = { t: 'retire', reason: 'lifecycle', detail: reason, deadlineAt: this.deadlineAt };
      slot.send(msg);
    }
  }

  private deadline(leftover: Code, reason: string): void {
    const message = `task was still running when its process stopped (${reason})`;
    // A thread stuck in a task never answered `retire`, so what it holds unstarted is still
    // here: its consumed count tells which; those go back to the master, never settled.
    for (const slot of this.allThreads()) {
      if (slot.exited) continue;
      const { unstarted } = slot.partition((task) => this.isOn(task, slot));
      for (const task of unstarted) {
        slot.inflight--;
        this.unhandToQueue(task[0], this.held.get(task[0])!);
      }
    }
    for (const [id, h] of [...this.held]) {
      if (!h.thread) continue;
      this.abortTask(id, leftover, message);
    }
    this.flush();
    // Aborted tasks had their chance in the grace; threads still alive now are ended.
    setTimeout(() => {
      for (const slot of this.allThreads()) if (!slot.exited) this.watchdog.kill(slot);
    }, Math.min(this.init.abortGraceMs, 1000)).unref();
  }

  private allThreads(): ThreadSlot[] {
    return this.sup.all();
  }

  /** Waits (bounded) until every pending outcome has been written to the master. */
  async drainOutbox(ms: number): Promise<void> {
    const until = Date.now() + ms;
    while ((this.sending || this.done.length || this.returned.length) && Date.now() < until) {
      this.flush();
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

/** What a refill takes to arrive once outcomes leave (master wake-up, pump, write, read), with margin. */
const HOLD_HOP_MS = 2;
/** Outcomes that leave at once however much work is queued: a message this full is worth its wake-up. */
const HOLD_BATCH = 16;
/** Outcomes are held only for tasks that take this long on average (ms): see outlook(). */
const HOLD_MIN_RUN_MS = 0.5;
/**
 * Nor before each thread's average rests on this many of its tasks (its own or its
 * predecessor's): the average starts at 1 ms, and the first outcomes of a job of tiny tasks
 * were held (a child SIGKILLed early in a run then took finished outcomes with it).
 */
const HOLD_MIN_OBSERVED = 32;
