/**
 * The bounded master queue: tasks accepted by `put()` that no child holds yet. The shared ring
 * (no per-task allocation beyond the record) plus a FIFO of callers waiting for room.
 */
import { QueueFullError } from '../errors.js';
import { Ring } from '../shared/ring.js';
import type { TaskRecord } from './ledger.js';

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout | undefined;
  /** Put by the result consumer while it holds an outcome (see ResultSink.isConsumerCall). */
  consumer: boolean;
}

export class TaskQueue {
  private readonly ring: Ring<TaskRecord>;
  private readonly waiters: Waiter[] = [];

  constructor(readonly max: number) {
    this.ring = new Ring(Math.min(max, 1024) || 1);
  }

  get length(): number {
    return this.ring.length;
  }

  get hasRoom(): boolean {
    return this.ring.length + this.admitted < this.max && this.waiters.length === 0;
  }

  push(rec: TaskRecord): void {
    this.ring.push(rec);
  }

  /** Puts a task back at the front: it was handed back unstarted, or is being retried. May exceed `max` briefly. */
  unshift(rec: TaskRecord): void {
    this.ring.unshift(rec);
  }

  shift(): TaskRecord | undefined {
    return this.ring.shift();
  }

  /** Removes one task wherever it is (an AbortSignal fired while it waited). */
  remove(rec: TaskRecord): boolean {
    return this.ring.remove(rec);
  }

  /** Empties the queue, returning its tasks in order. */
  drain(): TaskRecord[] {
    return this.ring.drain();
  }

  get hasWaiters(): boolean {
    return this.waiters.length > 0;
  }

  /**
   * Resolves when there is room for one more task (or when the waiter is let in or turned away
   * by `admitConsumers`/`releaseWaiters`); rejects with QueueFullError after `timeout` ms.
   */
  waitForRoom(timeout: number | undefined, consumer = false): Promise<void> {
    return new Promise((resolve, reject) => {
      const w: Waiter = { resolve, reject, timer: undefined, consumer };
      if (timeout !== undefined) {
        w.timer = setTimeout(() => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(new QueueFullError(`the task queue stayed full (${this.max} tasks) for putTimeout = ${timeout} ms`));
          this.wake();
        }, timeout);
      }
      this.waiters.push(w);
      this.wake();
    });
  }

  /** Lets waiting callers in, in order, while there is room. */
  wake(): void {
    while (this.waiters.length > 0 && this.ring.length + this.admitted < this.max) {
      const w = this.waiters.shift()!;
      if (w.timer) clearTimeout(w.timer);
      // The admitted caller pushes in a later microtask; reserve its place so no one overtakes it.
      this.admitted++;
      w.resolve();
    }
  }

  /** Called by an admitted waiter once it has pushed (or given up). */
  release(): void {
    this.admitted--;
  }
  private admitted = 0;

  /**
   * Lets in every waiter the result consumer is blocked in, room or not: dispatch waits for the
   * consumer, so their room could only come from the consumer itself (the queue may then exceed
   * `max` by these tasks; docs/guarantees.md).
   */
  admitConsumers(): void {
    for (let i = 0; i < this.waiters.length; ) {
      const w = this.waiters[i]!;
      if (!w.consumer) {
        i++;
        continue;
      }
      this.waiters.splice(i, 1);
      if (w.timer) clearTimeout(w.timer);
      this.admitted++;
      w.resolve();
    }
  }

  /** Lets every waiter go on at once, room or not; each re-checks why it waited (a shutdown began). */
  releaseWaiters(): void {
    for (const w of this.waiters.splice(0)) {
      if (w.timer) clearTimeout(w.timer);
      this.admitted++;
      w.resolve();
    }
  }

  /** Rejects every waiting caller (the engine stopped taking tasks). */
  rejectWaiters(err: Error): void {
    for (const w of this.waiters.splice(0)) {
      if (w.timer) clearTimeout(w.timer);
      w.reject(err);
    }
  }
}
