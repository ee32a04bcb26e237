/**
 * The attempts a child holds, and where each one is: waiting in the child's queue (a Ring, the
 * one FIFO) or handed to a thread. Handing queued attempts to threads within each thread's
 * window (`assign`) is decided here, and every way an attempt leaves the child — settled, handed
 * back to the master, put back in the queue — goes through here, so the count of timed attempts
 * (the watchdog ticks while there are any) and each thread's `inflight` stay exact.
 */
import { type TaskWire, taskAttempt, taskId, taskTimeout } from '../protocol.js';
import { Ring } from '../shared/ring.js';
import type { ThreadSlot } from './thread-slot.js';

export interface Held {
  task: TaskWire;
  /** The thread it was handed to, or null while it waits in the child's queue. */
  thread: ThreadSlot | null;
}

export class HeldTasks {
  private readonly queue = new Ring<TaskWire>(64);
  private readonly held = new Map<number, Held>();
  /** Attempts held with a hard time limit. */
  private timedCount = 0;
  /** Where the next `assign` starts, so that no thread is always served first. */
  private rr = 0;
  /** Set once the child stops: nothing more is handed to a thread, and what comes back goes to the master. */
  private closed = false;

  /** `handBack`: an attempt leaves unstarted for the master (the child stops). */
  constructor(private readonly handBack: (id: number) => void) {}

  /** Attempts held with a hard time limit. */
  get timed(): number {
    return this.timedCount;
  }

  /** Takes an attempt the master sent: queued until a thread has room. */
  add(task: TaskWire): void {
    this.held.set(taskId(task), { task, thread: null });
    this.queue.push(task);
    if (taskTimeout(task) > 0) this.timedCount++;
  }

  get(id: number): Held | undefined {
    return this.held.get(id);
  }

  /** The attempt `id` if it is held here as this `attempt` and handed to `slot`. */
  on(id: number, attempt: number, slot: ThreadSlot): Held | undefined {
    const h = this.held.get(id);
    return h !== undefined && h.thread === slot && taskAttempt(h.task) === attempt ? h : undefined;
  }

  /** Whether this attempt is held here and handed to `slot`. */
  isOn(task: TaskWire, slot: ThreadSlot): boolean {
    const h = this.held.get(taskId(task));
    return h !== undefined && h.task === task && h.thread === slot;
  }

  /** Attempts handed to a thread (`slot`, or any), as a list: the caller may settle them as it goes. */
  handed(slot?: ThreadSlot): Held[] {
    const out: Held[] = [];
    for (const h of this.held.values()) if (h.thread !== null && (slot === undefined || h.thread === slot)) out.push(h);
    return out;
  }

  /** Stops holding this attempt (it is settled): its thread no longer counts it, or the queue drops it. */
  take(h: Held): void {
    this.forget(h.task);
    if (h.thread) h.thread.inflight--;
    else this.queue.remove(h.task);
  }

  /**
   * Its thread gave this attempt back, or never reached it: to the front of the queue, or to the
   * master once the child stops.
   */
  unhand(h: Held): void {
    h.thread!.inflight--;
    h.thread = null;
    if (this.closed) {
      this.forget(h.task);
      this.handBack(taskId(h.task));
    } else {
      this.queue.unshift(h.task);
    }
  }

  /** The child stops: every queued attempt goes back to the master, and so will any a thread gives back. */
  close(): void {
    this.closed = true;
    for (const task of this.queue.drain()) {
      this.forget(task);
      this.handBack(taskId(task));
    }
  }

  /** Tasks waiting in the child's queue. */
  get queued(): number {
    return this.queue.length;
  }

  /** Hands queued attempts to `threads`, each up to its credit (its window less what it holds). */
  assign(threads: readonly ThreadSlot[]): void {
    if (this.closed || this.queue.length === 0) return;
    const n = threads.length;
    for (let k = 0; k < n && this.queue.length > 0; k++) {
      const slot = threads[(this.rr + k) % n]!;
      let credit = slot.credit;
      if (credit <= 0) continue;
      const batch: TaskWire[] = [];
      while (credit-- > 0 && this.queue.length > 0) {
        const task = this.queue.shift()!;
        this.held.get(taskId(task))!.thread = slot;
        batch.push(task);
      }
      slot.inflight += batch.length;
      slot.post(batch);
    }
    this.rr = (this.rr + 1) % n;
  }

  private forget(task: TaskWire): void {
    this.held.delete(taskId(task));
    if (taskTimeout(task) > 0) this.timedCount--;
  }
}
