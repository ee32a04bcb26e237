/**
 * The task runner of one worker thread: takes tasks from its small local queue in arrival
 * order, runs up to `concurrency` at once, and sends outcomes back in batches.
 *
 * Shared memory with the child (`ThreadInit.slots`, a Float64Array, layout `SLOTS`):
 *   [0]            tasks consumed from the head of the queue (started, or skipped as aborted)
 *   then per slot k: id, attempt and start (epoch ms) of the task running in it (id 0 = free)
 * The child reads it without a message, even while this thread is stuck in synchronous code:
 * the consumed count tells crashed tasks from unstarted ones when the thread dies, the slots
 * drive hard timeouts. A slot is filled before its task is counted consumed (see SLOTS).
 */
import type { MessagePort } from 'node:worker_threads';
import v8 from 'node:v8';
import { Code, SERIALIZED, SLOTS, replacedResult, resultId, taskAttempt, taskId, taskTimeout, toErrorWire } from '../protocol.js';
import type { AttemptKey, ErrorWire, FromThread, ResultWire, TaskWire, Reason } from '../protocol.js';
import { registry, type TaskState } from './context.js';
import { Attempts } from './attempts.js';
import type { StartLog } from '../shared/start-log.js';
import { cancelled, unsendable } from '../shared/outcomes.js';
import type { Exports } from './exports.js';
import type { ProgressOutbox } from './progress.js';

type TaskFn = (...args: unknown[]) => unknown;

/**
 * Before a task starts, outcomes whose tasks started at least this many ms earlier leave first.
 * An outcome waiting in this thread is lost if the thread dies (a task runs it out of heap,
 * exits, is terminated) before it is sent: this bounds that window to the tasks that started
 * within the last FLUSH_AFTER_MS, while no-op tasks still leave in batches of about that much work.
 * Measured on the no-op benchmark: see docs/guarantees.md.
 */
const FLUSH_AFTER_MS = 2;

export interface RunnerSettings {
  fn: TaskFn;
  /** Progress values waiting to leave: they go before any outcome, so a task's last report precedes its outcome. */
  progress: ProgressOutbox;
  /** The module's other exports, for tasks that name one (`submit({ export })`). */
  exports: Exports;
  /** Written into every outcome, so the child relays outcomes without reshaping them. */
  threadIndex: number;
  startLog: StartLog;
  concurrency: number;
  lifecycle: number;
  lifecycleMemory: number;
  gracefulDieErrors: string[];
}

export class Runner {
  private readonly attempts = new Attempts();
  private running = 0;
  private completed = 0;
  private pumping = false;
  private outbox: ResultWire[] = [];
  /** Start time of the oldest task whose outcome is in the outbox. */
  private outboxSince = 0;
  private flushScheduled = false;
  private readonly shared: Float64Array;
  private readonly freeSlots: number[] = [];
  /** Set once the thread takes no more tasks; `onIdle` is called when nothing runs any more. */
  retiring: Reason | undefined;
  onIdle: (() => void) | undefined;

  constructor(
    private readonly port: MessagePort,
    slots: SharedArrayBuffer,
    private readonly settings: RunnerSettings,
  ) {
    this.shared = new Float64Array(slots);
    for (let k = settings.concurrency - 1; k >= 0; k--) this.freeSlots.push(k);
  }

  accept(tasks: TaskWire[]): void {
    if (this.retiring) {
      // Sent before the child learnt that we retire: hand them straight back.
      this.post({ t: 'retiring', reason: this.retiring, returned: tasks.map(keyOf) });
      return;
    }
    this.attempts.push(tasks);
    this.pump();
    // Synchronous tasks of this batch are done already: their outcomes leave now, as one message,
    // instead of a turn later (the child is waiting for them to refill this thread).
    if (this.outbox.length > 0) this.flush();
  }

  abort(id: number, attempt: number, reason: string): void {
    this.attempts.abort(id, attempt, reason);
  }

  /** Stop taking tasks: hand back every unstarted one; `onIdle` fires once running ones are done. */
  retire(reason: Reason, detail?: string): void {
    if (this.retiring) return;
    this.retiring = reason;
    const returned = this.attempts.takeWaiting().map(keyOf);
    this.flush();
    this.post({ t: 'retiring', reason, returned, detail });
    if (this.running === 0) this.onIdle?.();
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.running < this.settings.concurrency && !this.retiring) {
        const task = this.attempts.next();
        if (!task) break;
        const aborted = this.attempts.abortedBeforeStart(task);
        if (aborted !== undefined) {
          this.skip(task, aborted);
          continue;
        }
        const now = Date.now();
        // A task with a time limit or an AbortSignal may get this thread terminated under it, and
        // any task may run it out of heap or exit it: outcomes already decided leave first, at
        // once before a timed task, else once they have waited FLUSH_AFTER_MS. (An exit or an
        // uncaught error flushes them from the 'exit' handler; see entry.ts.)
        if (this.outbox.length > 0 && (taskTimeout(task) !== 0 || now - this.outboxSince >= FLUSH_AFTER_MS)) this.flush();
        this.start(task, now);
      }
    } finally {
      this.pumping = false;
    }
  }

  /** An attempt aborted before it started leaves with an outcome too (the child settled it already). */
  private skip(task: TaskWire, reason: string): void {
    this.shared[SLOTS.consumed]! += 1;
    const error = cancelled(reason);
    const outcome: ResultWire = [taskId(task), Code.Cancelled, error, 0, Date.now(), taskAttempt(task), this.settings.threadIndex];
    this.queueOutcome(outcome, Date.now());
  }

  private start(task: TaskWire, startedAt: number): void {
    const [id, args, , attempt, exportName] = task;
    const slot = this.freeSlots.pop()!;
    // Before the task can crash this process: the master reads it if the process dies.
    this.settings.startLog.record(id, attempt, startedAt);
    const at = SLOTS.idAt(slot);
    this.shared[at + 1] = attempt;
    this.shared[at + 2] = startedAt;
    this.shared[at] = id;
    // Counted after its slot is filled: the child reads "consumed, in no slot" as finished.
    this.shared[SLOTS.consumed]! += 1;
    const state: TaskState = { id, attempt, slot, settled: false, abortReason: undefined, controller: undefined };
    this.attempts.started(state);
    this.running++;
    let ret: unknown;
    try {
      const fn = exportName === undefined ? this.settings.fn : this.settings.exports.get(exportName);
      // Serialized bytes, all the (primitive) arguments, or a lone primitive one (see TaskWire).
      const list = ArrayBuffer.isView(args) ? (v8.deserialize(args) as unknown[]) : Array.isArray(args) ? args : undefined;
      ret = list ? registry.als.run(state, fn, ...list) : registry.als.run(state, fn, args);
    } catch (err) {
      this.finish(state, startedAt, Code.Error, err);
      return;
    }
    if (ret === null || typeof ret !== 'object') return this.finish(state, startedAt, Code.Ok, ret);
    // A returned object is user data too: reading its `then` or calling it may throw.
    try {
      const then = (ret as PromiseLike<unknown>).then;
      if (typeof then !== 'function') return this.finish(state, startedAt, Code.Ok, ret);
      then.call(
        ret,
        (v) => this.finish(state, startedAt, Code.Ok, v),
        (e) => this.finish(state, startedAt, Code.Error, e),
      );
    } catch (err) {
      this.finish(state, startedAt, Code.Error, err);
    }
  }

  private finish(state: TaskState, startedAt: number, code: Code, value: unknown): void {
    if (state.settled) return;
    state.settled = true;
    this.shared[SLOTS.idAt(state.slot)] = 0;
    this.freeSlots.push(state.slot);
    this.attempts.settled(state);
    this.running--;
    this.completed++;
    const t = this.settings.threadIndex;
    // Whatever the task threw or returned, its wire form is sendable (toErrorWire and okWire
    // never throw): a bad value costs only its own task.
    const error = code === Code.Error ? toErrorWire(value, `the error of task ${state.id}`) : undefined;
    const outcome: ResultWire = error
      ? [state.id, code, error, startedAt, Date.now(), state.attempt, t]
      : okWire(state.id, state.attempt, value, startedAt, t);
    this.queueOutcome(outcome, startedAt);
    if (error && this.settings.gracefulDieErrors.includes(error.name)) {
      this.retire('gracefulDie', `task ${state.id} threw ${error.name}`);
    } else if (!this.retiring) {
      if (this.settings.lifecycle && this.completed >= this.settings.lifecycle) this.retire('lifecycle', `${this.completed} tasks`);
      else if (this.settings.lifecycleMemory && v8.getHeapStatistics().used_heap_size > this.settings.lifecycleMemory * 1048576) {
        this.retire('lifecycle', `heap above ${this.settings.lifecycleMemory} MiB`);
      }
    }
    if (this.retiring) {
      if (this.running === 0) this.onIdle?.();
    } else {
      this.pump();
    }
  }

  private queueOutcome(outcome: ResultWire, startedAt: number): void {
    if (this.outbox.length === 0) this.outboxSince = startedAt;
    this.outbox.push(outcome);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // setImmediate, not a microtask: outcomes of a burst of tasks leave as one message.
    setImmediate(() => this.flush());
  }

  /** Sends the pending outcomes as one message. */
  flush(): void {
    this.settings.progress.flush();
    this.flushScheduled = false;
    if (this.outbox.length === 0) return;
    const done = this.outbox;
    this.outbox = [];
    try {
      this.port.postMessage({ t: 'done', done } satisfies FromThread);
    } catch {
      // Cannot happen with the wire forms built here; if it does, only the outcome that cannot
      // be sent is replaced, never the batch lost with the thread.
      for (const r of done) this.sendAlone(r);
    }
  }

  private sendAlone(r: ResultWire): void {
    try {
      this.port.postMessage({ t: 'done', done: [r] } satisfies FromThread);
    } catch (err) {
      const message = `the outcome of task ${resultId(r)} cannot be sent to its process: ${toErrorWire(err).message}`;
      const replaced = replacedResult(r, Code.Error, unsendable(message));
      this.port.postMessage({ t: 'done', done: [replaced] } satisfies FromThread);
    }
  }

  private post(msg: FromThread): void {
    this.port.postMessage(msg);
  }
}

function keyOf(t: TaskWire): AttemptKey {
  return [taskId(t), taskAttempt(t)];
}

/**
 * A successful outcome on the wire: primitives as they are, anything else serialized here, once,
 * so a result that cannot cross fails alone (as a SerializationError) and Buffers stay Buffers.
 */
function okWire(id: number, attempt: number, value: unknown, startedAt: number, threadIndex: number): ResultWire {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function' && typeof value !== 'symbol')) {
    return [id, Code.Ok, value, startedAt, Date.now(), attempt, threadIndex];
  }
  try {
    return [id, Code.Ok | SERIALIZED, v8.serialize(value), startedAt, Date.now(), attempt, threadIndex];
  } catch (err) {
    const message = `the result of task ${id} cannot be sent back to the master: ${toErrorWire(err).message}`;
    const wire = unsendable(message);
    return [id, Code.Error, wire, startedAt, Date.now(), attempt, threadIndex];
  }
}
