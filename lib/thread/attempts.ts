/**
 * The attempts one thread holds, and the one place their abort state lives.
 *
 * An attempt arrives (the `TaskWire` the thread received: one object per attempt handed to it)
 * and leaves exactly one way: it starts (and the runner sends its outcome), it is skipped
 * because it was aborted before it started (the runner sends an outcome for it all the same),
 * or it is handed back unstarted when the thread retires. No other way out exists, so a thread
 * cannot drop a task without a word.
 *
 * Abort state belongs to the attempt and dies with it. An abort names (taskId, attempt): it
 * aborts that attempt if it is running, marks it to be skipped if it is still waiting, and does
 * nothing at all if the thread no longer holds it (it finished, or was handed back) — an abort
 * that arrives after its attempt finished can never touch a later attempt of the same task.
 */
import { type TaskWire, taskAttempt, taskId } from '../protocol.js';
import { Ring } from '../shared/ring.js';
import { abortTask, type TaskState } from './context.js';

export class Attempts {
  private readonly queue = new Ring<TaskWire>(64);
  /** Waiting attempts aborted before they started, with the reason: skipped when they reach the head. */
  private readonly abortedWaiting = new Map<TaskWire, string>();
  /** Attempts running now (at most `concurrency`). */
  private readonly running = new Set<TaskState>();

  /** Attempts waiting to start. */
  get waiting(): number {
    return this.queue.length;
  }

  push(tasks: TaskWire[]): void {
    for (const t of tasks) this.queue.push(t);
  }

  /** Takes the next waiting attempt off the head (the caller starts or skips it), or undefined. */
  next(): TaskWire | undefined {
    return this.queue.shift();
  }

  /** Why `task` (just taken by `next()`) must be skipped, or undefined to start it. Forgets it. */
  abortedBeforeStart(task: TaskWire): string | undefined {
    if (this.abortedWaiting.size === 0) return undefined;
    const reason = this.abortedWaiting.get(task);
    if (reason !== undefined) this.abortedWaiting.delete(task);
    return reason;
  }

  started(state: TaskState): void {
    this.running.add(state);
  }

  /** The attempt settled: nothing about it is kept. */
  settled(state: TaskState): void {
    this.running.delete(state);
  }

  /** Aborts this attempt if the thread holds it; an attempt it no longer holds is left alone. */
  abort(id: number, attempt: number, reason: string): void {
    for (const state of this.running) {
      if (state.id === id && state.attempt === attempt) return abortTask(state, reason);
    }
    for (const t of this.queue) {
      if (taskId(t) === id && taskAttempt(t) === attempt) {
        this.abortedWaiting.set(t, reason);
        return;
      }
    }
  }

  /** Every waiting attempt, taken out to be handed back (retirement); aborted ones too, the child ignores them. */
  takeWaiting(): TaskWire[] {
    const out = this.queue.drain();
    this.abortedWaiting.clear();
    return out;
  }
}
