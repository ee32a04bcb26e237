/**
 * The child's part of a shutdown, as ordered steps: hand back the unstarted attempts, let the
 * threads finish and run their finalizers within the grace, then abort what still runs and
 * terminate the threads that are left. Done once every thread is gone.
 */
import type { ChildInit, Code, ToThread } from '../protocol.js';
import { taskId } from '../protocol.js';
import type { HeldTasks } from './held-tasks.js';
import type { Outbox } from './outbox.js';
import type { ThreadSlot } from './thread-slot.js';

/** What a stop needs of its relay. */
export interface StoppingHost {
  readonly init: ChildInit;
  readonly tasks: HeldTasks;
  readonly outbox: Outbox;
  /** Every thread not yet exited or forgotten: serving, leaving, on standby. */
  threads(): ThreadSlot[];
  threadsAlive(): number;
  /** Settles a held attempt now with `code`, and aborts it in its thread. */
  abortTask(id: number, code: Code, reason: string): void;
  /** Terminates a thread, the whole child if it will not die. */
  kill(slot: ThreadSlot): void;
}

export class Stopping {
  private onThreadsGone: (() => void) | undefined;
  private stopped: Promise<void> | undefined;
  private deadlineAt = Infinity;
  private deadlineTimer: NodeJS.Timeout | undefined;

  constructor(private readonly host: StoppingHost) {}

  /** Whether the child stops: it takes no more tasks, and no thread is replaced. */
  get started(): boolean {
    return this.stopped !== undefined;
  }

  /**
   * Stops the child's threads; resolves once every thread is gone.
   *
   * A soft retirement (graceful die, processMemoryLimit) passes `Infinity`: running tasks are
   * never cut, only their own time limits apply. A later call (a shutdown, a hard limit) may
   * bring the deadline forward, never push it back.
   */
  stop(graceMs: number, leftover: Code, reason: string): Promise<void> {
    if (this.stopped) {
      this.setDeadline(graceMs, leftover, reason);
      return this.stopped;
    }
    const gone = new Promise<void>((r) => (this.onThreadsGone = r));
    this.stopped = gone.then(() => clearTimeout(this.deadlineTimer));
    this.host.tasks.close();
    for (const slot of this.host.threads()) {
      if (slot.exited) continue;
      slot.send({ t: 'retire', reason: 'lifecycle', detail: reason });
    }
    this.host.outbox.flush();
    this.threadGone();
    this.setDeadline(graceMs, leftover, reason);
    return this.stopped;
  }

  /** A thread exited: once none is left, the stop is done. */
  threadGone(): void {
    if (this.onThreadsGone && this.host.threadsAlive() === 0) this.onThreadsGone();
  }

  private setDeadline(graceMs: number, leftover: Code, reason: string): void {
    if (!Number.isFinite(graceMs) || Date.now() + graceMs >= this.deadlineAt) return;
    this.deadlineAt = Date.now() + graceMs;
    clearTimeout(this.deadlineTimer);
    this.deadlineTimer = setTimeout(() => this.deadline(leftover, reason), graceMs);
    // Threads must be gone by then (deadline()): a retiring thread's drain of background work
    // ends by then, and says what it cut.
    for (const slot of this.host.threads()) {
      if (slot.exited) continue;
      const msg: ToThread = { t: 'retire', reason: 'lifecycle', detail: reason, deadlineAt: this.deadlineAt };
      slot.send(msg);
    }
  }

  private deadline(leftover: Code, reason: string): void {
    const { tasks } = this.host;
    const message = `task was still running when its process stopped (${reason})`;
    // A thread stuck in a task never answered `retire`, so what it holds unstarted is still
    // here: its consumed count tells which; those go back to the master, never settled.
    for (const slot of this.host.threads()) {
      if (slot.exited) continue;
      const { unstarted } = slot.partition((task) => tasks.isOn(task, slot));
      for (const task of unstarted) tasks.unhand(tasks.get(taskId(task))!);
    }
    for (const h of tasks.handed()) this.host.abortTask(taskId(h.task), leftover, message);
    this.host.outbox.flush();
    // Aborted tasks had their chance in the grace; threads still alive now are ended.
    setTimeout(
      () => {
        for (const slot of this.host.threads()) if (!slot.exited) this.host.kill(slot);
      },
      Math.min(this.host.init.abortGraceMs, 1000),
    ).unref();
  }
}
