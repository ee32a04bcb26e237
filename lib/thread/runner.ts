/**
 * The task runner of one worker thread: takes tasks from its small local queue in arrival
 * order, runs up to `concurrency` at once, and sends outcomes back in batches.
 *
 * Shared memory with the child (`ThreadInit.slots`, a Float64Array):
 *   [0]            tasks consumed from the head of the queue (started, or skipped as aborted)
 *   [1 + 2k]       id of the task running in slot k (0 = free)
 *   [2 + 2k]       epoch ms it started
 * The child reads it without a message, even while this thread is stuck in synchronous code:
 * the consumed count tells crashed tasks from unstarted ones when the thread dies, the slots
 * drive hard timeouts.
 */
import type { MessagePort } from 'node:worker_threads';
import v8 from 'node:v8';
import { Code, SERIALIZED, SLOTS, toErrorWire, type FromThread, type ResultWire, type TaskWire, type Reason } from '../protocol.js';
import { abortTask, registry, type TaskState } from './context.js';
import type { StartLog } from '../shared/start-log.js';

type TaskFn = (...args: unknown[]) => unknown;

export interface RunnerSettings {
  fn: TaskFn;
  /** Written into every outcome, so the child relays outcomes without reshaping them. */
  threadIndex: number;
  startLog: StartLog;
  concurrency: number;
  lifecycle: number;
  lifecycleMemory: number;
  gracefulDieErrors: string[];
}

export class Runner {
  private readonly queue: TaskWire[] = [];
  private head = 0;
  private running = 0;
  private completed = 0;
  private pumping = false;
  private outbox: ResultWire[] = [];
  private flushScheduled = false;
  private readonly aborted = new Set<number>();
  private readonly states = new Map<number, TaskState>();
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

  get busy(): number {
    return this.running;
  }

  accept(tasks: TaskWire[]): void {
    if (this.retiring) {
      // Sent before the child learnt that we retire: hand them straight back.
      this.post({ t: 'retiring', reason: this.retiring, returned: tasks.map((t) => t[0]) });
      return;
    }
    for (const t of tasks) this.queue.push(t);
    this.pump();
    // Synchronous tasks of this batch are done already: their outcomes leave now, as one message,
    // instead of a turn later (the child is waiting for them to refill this thread).
    if (this.outbox.length > 0) this.flush();
  }

  abort(ids: number[], reason: string): void {
    for (const id of ids) {
      const state = this.states.get(id);
      if (state) abortTask(state, reason);
      // Not started yet: skipped when it reaches the head, so the consumed count stays exact.
      else this.aborted.add(id);
    }
  }

  /** Stop taking tasks: hand back every unstarted one; `onIdle` fires once running ones are done. */
  retire(reason: Reason, detail?: string): void {
    if (this.retiring) return;
    this.retiring = reason;
    const returned: number[] = [];
    for (let i = this.head; i < this.queue.length; i++) returned.push(this.queue[i]![0]);
    this.queue.length = 0;
    this.head = 0;
    this.flush();
    this.post({ t: 'retiring', reason, returned, detail });
    if (this.running === 0) this.onIdle?.();
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.running < this.settings.concurrency && this.head < this.queue.length && !this.retiring) {
        const task = this.queue[this.head]!;
        this.queue[this.head++] = undefined as unknown as TaskWire;
        if (this.head > 1024 && this.head * 2 > this.queue.length) {
          this.queue.splice(0, this.head);
          this.head = 0;
        }
        this.shared[SLOTS.consumed]! += 1;
        if (this.aborted.size && this.aborted.delete(task[0])) continue;
        // A task with a time limit or an AbortSignal may get this thread terminated under it:
        // outcomes already decided leave first, or they would be lost with the thread. (An exit
        // or an uncaught error flushes them from the 'exit' handler; see entry.ts.)
        if (task[2] !== 0 && this.outbox.length > 0) this.flush();
        this.start(task);
      }
    } finally {
      this.pumping = false;
    }
  }

  private start(task: TaskWire): void {
    const [id, args, , attempt] = task;
    const slot = this.freeSlots.pop()!;
    // Before the task can crash this process: the master reads it if the process dies.
    this.settings.startLog.record(id, attempt);
    const startedAt = Date.now();
    const at = SLOTS.idAt(slot);
    this.shared[at + 1] = attempt;
    this.shared[at + 2] = startedAt;
    this.shared[at] = id;
    const state: TaskState = { id, attempt, slot, settled: false, abortReason: undefined, controller: undefined };
    this.states.set(id, state);
    this.running++;
    let ret: unknown;
    try {
      // Serialized bytes, all the (primitive) arguments, or a lone primitive one (see TaskWire).
      const list = ArrayBuffer.isView(args) ? (v8.deserialize(args) as unknown[]) : Array.isArray(args) ? args : undefined;
      ret = list ? registry.als.run(state, this.settings.fn, ...list) : registry.als.run(state, this.settings.fn, args);
    } catch (err) {
      this.finish(state, startedAt, Code.Error, err);
      return;
    }
    if (ret !== null && typeof ret === 'object' && typeof (ret as PromiseLike<unknown>).then === 'function') {
      (ret as PromiseLike<unknown>).then(
        (v) => this.finish(state, startedAt, Code.Ok, v),
        (e) => this.finish(state, startedAt, Code.Error, e),
      );
    } else {
      this.finish(state, startedAt, Code.Ok, ret);
    }
  }

  private finish(state: TaskState, startedAt: number, code: Code, value: unknown): void {
    if (state.settled) return;
    state.settled = true;
    this.shared[SLOTS.idAt(state.slot)] = 0;
    this.freeSlots.push(state.slot);
    // A retry of the same task may run here while an earlier, aborted attempt lingers.
    if (this.states.get(state.id) === state) this.states.delete(state.id);
    this.running--;
    this.completed++;
    const isError = code === Code.Error;
    const t = this.settings.threadIndex;
    this.outbox.push(isError ? [state.id, code, toErrorWire(value), startedAt, Date.now(), state.attempt, t] : okWire(state.id, state.attempt, value, startedAt, t));
    this.scheduleFlush();
    if (isError && this.settings.gracefulDieErrors.includes((value as Error | null)?.name as string)) {
      this.retire('gracefulDie', `task ${state.id} threw ${(value as Error).name}`);
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

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // setImmediate, not a microtask: outcomes of a burst of tasks leave as one message.
    setImmediate(() => this.flush());
  }

  /** Sends the pending outcomes as one message. */
  flush(): void {
    this.flushScheduled = false;
    if (this.outbox.length === 0) return;
    const done = this.outbox;
    this.outbox = [];
    this.port.postMessage({ t: 'done', done } satisfies FromThread);
  }

  /** Aborts every running task (shutdown deadline); their outcomes are decided by the child. */
  abortAll(reason: string): void {
    for (const state of this.states.values()) abortTask(state, reason);
  }

  private post(msg: FromThread): void {
    this.port.postMessage(msg);
  }
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
    const e = new Error(`the result of task ${id} cannot be sent back to the master: ${(err as Error).message}`);
    e.name = 'SerializationError';
    return [id, Code.Error, toErrorWire(e), startedAt, Date.now(), attempt, threadIndex];
  }
}
