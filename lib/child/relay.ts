/**
 * The child's relay: takes the master's messages, keeps the account of every attempt the child
 * holds, and settles here what must be settled here (a timeout, an abort, a thread's death, a
 * stop's leftovers). Each of its other jobs has its own module:
 *   held-tasks.ts         where each attempt is (queued, or handed to a thread) and the handing out
 *   outbox.ts             outcomes and hand-backs to the master, in batches (and the hold)
 *   thread-supervisor.ts  which thread serves each slot, and every thread start and restart
 *   task-watchdog.ts      hard time limits, and threads that will not let an aborted task go
 *   stopping.ts           the child's part of a shutdown
 *
 * Crash accounting is exact on both levels without a message per task: a dead thread's started
 * tasks are read from the shared slots (consumed count), a dead process's from the threads'
 * start logs, which the master reads (shared/start-log.ts).
 */
import {
  type AttemptKey,
  type ChildInit,
  Code,
  type ErrorWire,
  type FromThread,
  fromTaskColumns,
  type Reason,
  type ResultWire,
  resultAttempt,
  resultCode,
  resultEndedAt,
  resultId,
  resultStartedAt,
  resultValue,
  type ToChild,
  taskAttempt,
  taskId,
  taskTimeout,
} from '../protocol.js';
import { cancelled, crashed, timedOut } from '../shared/outcomes.js';
import { HeldTasks } from './held-tasks.js';
import { Outbox, type Send } from './outbox.js';
import { Stopping } from './stopping.js';
import { TaskWatchdog } from './task-watchdog.js';
import type { ThreadSlot } from './thread-slot.js';
import { ThreadSupervisor, threadSettings } from './thread-supervisor.js';

type Log = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

export class Relay {
  private readonly outbox: Outbox;
  private readonly tasks: HeldTasks;
  private readonly watchdog: TaskWatchdog;
  private readonly sup: ThreadSupervisor;
  private readonly stopping: Stopping;
  /** Resolves when every thread of the first generation is ready; rejects if they cannot start. */
  readonly ready: Promise<void>;
  /** Called with a process-level reason when this child must retire (graceful die). */
  onRetire: ((reason: Reason, detail: string) => void) | undefined;

  constructor(
    private readonly init: ChildInit,
    processData: unknown,
    private readonly send: Send,
    private readonly log: Log,
  ) {
    this.outbox = new Outbox({
      send,
      log,
      threads: () => this.sup.threads,
      queued: () => this.tasks.queued,
      stopping: () => this.stopping.started,
      afterSend: () => this.assign(),
    });
    this.tasks = new HeldTasks((id) => this.outbox.giveBack(id));
    this.watchdog = new TaskWatchdog({
      init,
      log,
      timedCount: () => this.tasks.timed,
      heldTask: (id, attempt, slot) => this.tasks.on(id, attempt, slot)?.task,
      serving: () => this.sup.threads,
      leaving: () => this.sup.leaving,
      abortTask: (id, code, reason, since) => this.abortTask(id, code, reason, since),
      flush: () => this.outbox.flush(),
    });
    this.sup = new ThreadSupervisor({
      init,
      threadInit: threadSettings(init, processData),
      log,
      send,
      stopping: () => this.stopping.started,
      onMessage: (slot, msg) => this.onThreadMessage(slot, msg),
      onExit: (slot, code) => this.onThreadExit(slot, code),
      kill: (slot) => this.watchdog.kill(slot),
    });
    this.stopping = new Stopping({
      init,
      tasks: this.tasks,
      outbox: this.outbox,
      threads: () => this.sup.all(),
      threadsAlive: () => this.threadsAlive,
      abortTask: (id, code, reason) => this.abortTask(id, code, reason),
      kill: (slot) => this.watchdog.kill(slot),
    });
    this.ready = this.sup.started;
    this.sup.startAll();
  }

  /** Threads not yet exited (starting ones too): a stop waits for all of them. */
  get threadsAlive(): number {
    return this.sup.alive;
  }

  handle(msg: ToChild): void {
    switch (msg.t) {
      case 'tasks':
        // Sent before the master learnt that this child stops: handed straight back, unstarted.
        if (this.stopping.started) {
          for (const task of fromTaskColumns(msg.tasks)) this.outbox.giveBack(taskId(task));
          this.outbox.flush();
          return;
        }
        for (const task of fromTaskColumns(msg.tasks)) this.tasks.add(task);
        if (this.tasks.timed > 0) this.watchdog.arm();
        this.assign();
        return;
      case 'abort':
        for (const id of msg.ids) this.abortTask(id, msg.code, msg.reason);
        this.outbox.flush();
        return;
      case 'stop':
        void this.stop(msg.graceMs, msg.leftover, msg.reason);
        return;
      case 'init':
        return;
    }
  }

  // ---- threads ------------------------------------------------------------------------------

  private onThreadMessage(slot: ThreadSlot, msg: FromThread): void {
    switch (msg.t) {
      case 'done':
        this.onDone(slot, msg.done);
        break;
      case 'progress':
        this.send(msg);
        break;
      case 'ready':
        this.sup.onReady(slot);
        this.assign();
        break;
      case 'retiring':
        this.onThreadRetiring(slot, msg.reason, msg.returned, msg.detail);
        break;
      case 'fatal':
        this.sup.onFatal(slot, msg.phase, msg.error);
        break;
      case 'log':
        this.log(msg.level as 'info', msg.msg, { ...msg.fields, threadIndex: slot.index });
        break;
      case 'draining':
        this.sup.onDraining(slot, msg.pending, msg.deadlineAt);
        break;
      case 'cut':
        this.sup.reportCut(slot, msg.pending, `its drain deadline came after ${msg.waitedMs} ms`);
        break;
    }
  }

  private onDone(slot: ThreadSlot, results: ResultWire[]): void {
    for (const r of results) {
      // Settled here already (timeout, abort), or an earlier attempt's late outcome: dropped.
      const id = resultId(r);
      const h = this.tasks.on(id, resultAttempt(r), slot);
      if (!h) continue;
      this.tasks.take(h);
      const startedAt = resultStartedAt(r);
      if (startedAt > 0) slot.runTime.observe(resultEndedAt(r) - startedAt);
      this.outbox.add(r);
      if (resultCode(r) === Code.Error) {
        const name = (resultValue(r) as ErrorWire).name;
        if (this.init.gracefulDieErrors.includes(name)) this.onRetire?.('gracefulDie', `task ${id} threw ${name}`);
      }
    }
    slot.trim((task) => this.tasks.isOn(task, slot));
    this.sup.worked(slot);
    this.assign();
    this.outbox.flushOrHold();
  }

  private onThreadRetiring(slot: ThreadSlot, reason: Reason, returned: AttemptKey[], detail?: string): void {
    this.sup.onRetiring(slot, reason, detail);
    for (const [id, attempt] of returned) {
      const h = this.tasks.on(id, attempt, slot);
      if (h) this.tasks.unhand(h);
    }
    this.assign();
    this.outbox.flush();
  }

  private onThreadExit(slot: ThreadSlot, code: number): void {
    slot.exited = true;
    this.outbox.dropAfterNextWrite(slot.startLog);
    this.watchdog.forget(slot);
    const { started } = slot.partition((task) => this.tasks.isOn(task, slot));
    const startedSet = new Set(started);
    for (const h of this.tasks.handed(slot)) {
      if (!startedSet.has(h.task)) {
        this.tasks.unhand(h);
        continue;
      }
      const id = taskId(h.task);
      const why = slot.lastError ? `: ${slot.lastError.message}` : '';
      const message = slot.hardKilled
        ? `thread ${slot.index} was terminated because a sibling task on it exceeded its time limit`
        : `thread ${slot.index} of process ${this.init.processIndex} exited with code ${code} while running task ${id}${why}`;
      this.settle(id, Code.Crashed, crashed(message, 'thread', code), 0);
    }
    this.sup.exited(slot, code, started.map(taskId));
    this.stopping.threadGone();
    this.assign();
    this.outbox.flush();
  }

  private assign(): void {
    this.tasks.assign(this.sup.threads);
  }

  // ---- settled here -------------------------------------------------------------------------

  /** Settles a held attempt here and now; its thread (if any) no longer counts it. */
  private settle(id: number, code: Code, error: ErrorWire, startedAt: number): void {
    const h = this.tasks.get(id);
    if (!h) return;
    this.tasks.take(h);
    this.outbox.add([id, code, error, startedAt, Date.now(), taskAttempt(h.task), h.thread?.index ?? -1]);
  }

  /**
   * Ends an attempt here and now with `code` (a timeout, a cancellation, a stop's leftover),
   * and aborts it in its thread. An attempt that has already finished in its thread is left
   * alone: its own outcome is on its way and stands. Whether it started, and when, is read once
   * (ThreadSlot.stateOf) — or, for a timeout, is what the watchdog saw: `seenRunningSince`.
   */
  private abortTask(id: number, code: Code, reason: string, seenRunningSince = 0): void {
    const h = this.tasks.get(id);
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
        ? timedOut(reason, taskTimeout(h.task))
        : code === Code.Crashed
          ? crashed(reason, 'process')
          : cancelled(reason);
    this.settle(id, code, error, startedAt);
    if (slot && !slot.exited) {
      slot.send({ t: 'abort', id, attempt: taskAttempt(h.task), reason });
      this.watchdog.watch(slot, h.task, pos);
    }
  }

  // ---- stopping -----------------------------------------------------------------------------

  /** The child's part of a shutdown (stopping.ts); resolves once every thread is gone. */
  stop(graceMs: number, leftover: Code, reason: string): Promise<void> {
    return this.stopping.stop(graceMs, leftover, reason);
  }

  /** Sends the pending outcomes to the master now (or as soon as the write under way completes). */
  flush(): void {
    this.outbox.flush();
  }

  /** Waits (bounded) until every pending outcome has been written to the master. */
  drainOutbox(ms: number): Promise<void> {
    return this.outbox.drain(ms);
  }
}
