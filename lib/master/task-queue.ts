/**
 * The bounded master queue: tasks accepted by `put()` that no child holds yet. A ring buffer
 * (no per-task allocation beyond the record) plus a FIFO of callers waiting for room.
 */
import { QueueFullError } from '../errors.js';
import type { TaskRecord } from './ledger.js';

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout | undefined;
  /** Put by the result consumer while it holds an outcome (see ResultSink.isConsumerCall). */
  consumer: boolean;
}

export class TaskQueue {
  private buf: (TaskRecord | undefined)[];
  private head = 0;
  private count = 0;
  private readonly waiters: Waiter[] = [];

  constructor(readonly max: number) {
    this.buf = new Array(Math.min(max, 1024) || 1);
  }

  get length(): number {
    return this.count;
  }

  get hasRoom(): boolean {
    return this.count + this.admitted < this.max && this.waiters.length === 0;
  }

  push(rec: TaskRecord): void {
    this.grow();
    this.buf[(this.head + this.count) % this.buf.length] = rec;
    this.count++;
  }

  /** Puts a task back at the front: it was handed back unstarted, or is being retried. May exceed `max` briefly. */
  unshift(rec: TaskRecord): void {
    this.grow();
    this.head = (this.head - 1 + this.buf.length) % this.buf.length;
    this.buf[this.head] = rec;
    this.count++;
  }

  shift(): TaskRecord | undefined {
    if (this.count === 0) return undefined;
    const rec = this.buf[this.head];
    this.buf[this.head] = undefined;
    this.head = (this.head + 1) % this.buf.length;
    this.count--;
    return rec;
  }

  /** Removes one task wherever it is (an AbortSignal fired while it waited). */
  remove(rec: TaskRecord): boolean {
    for (let i = 0; i < this.count; i++) {
      const at = (this.head + i) % this.buf.length;
      if (this.buf[at] === rec) {
        for (let j = i; j < this.count - 1; j++) this.buf[(this.head + j) % this.buf.length] = this.buf[(this.head + j + 1) % this.buf.length];
        this.buf[(this.head + this.count - 1) % this.buf.length] = undefined;
        this.count--;
        return true;
      }
    }
    return false;
  }

  /** Empties the queue, returning its tasks in order. */
  drain(): TaskRecord[] {
    const out: TaskRecord[] = [];
    let rec;
    while ((rec = this.shift())) out.push(rec);
    return out;
  }

  private grow(): void {
    if (this.count < this.buf.length) return;
    const next = new Array<TaskRecord | undefined>(this.buf.length * 2);
    for (let i = 0; i < this.count; i++) next[i] = this.buf[(this.head + i) % this.buf.length];
    this.buf = next;
    this.head = 0;
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
    while (this.waiters.length > 0 && this.count + this.admitted < this.max) {
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
