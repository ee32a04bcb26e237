/**
 * The child's hard limits over its threads: a timed attempt that outruns its limit is aborted
 * (its outcome `timeout`, settled by the relay), and an aborted attempt still running
 * `abortGraceMs` later gets its thread terminated — the whole child, if the thread will not die
 * (stuck in native code). Ticks only while there is something timed or aborted to watch.
 */
import { type ChildInit, Code, type TaskWire, taskId, taskTimeout } from '../protocol.js';
import { withTimeout } from '../shared/bounded.js';
import type { ThreadSlot } from './thread-slot.js';

/** What the watchdog needs of its relay. */
export interface WatchedRelay {
  readonly init: ChildInit;
  log(level: 'warn' | 'error', msg: string, fields?: Record<string, unknown>): void;
  /** Timed attempts held (tick while > 0). */
  timedCount(): number;
  /** The attempt `id` held on `slot`, if it is that attempt. */
  heldTask(id: number, attempt: number, slot: ThreadSlot): TaskWire | undefined;
  /** Threads whose running attempts are watched: those serving their slot, and retired ones. */
  serving(): readonly ThreadSlot[];
  leaving(): Iterable<ThreadSlot>;
  abortTask(id: number, code: Code, reason: string, seenRunningSince: number): void;
  flush(): void;
}

const WATCHDOG_TICK_MS = 20;

export class TaskWatchdog {
  /** Threads holding attempts that were aborted and settled here (see ThreadSlot.aborted). */
  private readonly aborting = new Set<ThreadSlot>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly r: WatchedRelay) {}

  /**
   * Watches an attempt aborted and settled while `slot` still held it (`pos`: its place in the
   * thread's order) until it has left the thread: running now, or started before the abort
   * reached the thread (a race), a task that ignores its signal must not hold the thread for ever.
   */
  watch(slot: ThreadSlot, task: TaskWire, pos: number): void {
    slot.aborted.set(task, { pos, at: Date.now() });
    this.aborting.add(slot);
    this.arm();
  }

  /** An exited thread: nothing of it is left to watch. */
  forget(slot: ThreadSlot): void {
    this.aborting.delete(slot);
  }

  /** Starts ticking, if not already. */
  arm(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), WATCHDOG_TICK_MS);
    this.timer.unref();
  }

  private tick(): void {
    if (this.r.timedCount() <= 0 && this.aborting.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
      return;
    }
    const now = Date.now();
    this.checkAborted(now);
    const check = (slot: ThreadSlot) =>
      slot.forEachRunning((id, attempt, startedAt) => {
        const task = this.r.heldTask(id, attempt, slot);
        const limit = task ? taskTimeout(task) : 0;
        if (limit <= 0 || now - startedAt < limit) return;
        this.r.abortTask(id, Code.Timeout, `task ${id} exceeded its time limit of ${limit} ms`, startedAt);
      });
    for (const slot of this.r.serving()) if (!slot.exited) check(slot);
    for (const slot of this.r.leaving()) check(slot);
    this.r.flush();
  }

  /**
   * Aborted attempts still in a thread: once one has run `abortGraceMs` past its abort (or its
   * start, if it started later), its thread is terminated (siblings go on). One the thread
   * skipped or finished is forgotten.
   */
  private checkAborted(now: number): void {
    for (const slot of this.aborting) {
      for (const [task, a] of slot.aborted) {
        const state = slot.exited ? undefined : slot.stateOf(task, a.pos);
        if (state?.at === 'waiting') continue;
        if (state?.at !== 'running') {
          slot.aborted.delete(task);
        } else if (now - Math.max(state.startedAt, a.at) >= this.r.init.abortGraceMs) {
          const grace = this.r.init.abortGraceMs;
          const id = taskId(task);
          const msg = `task ${id} did not stop within ${grace} ms of its abort; terminating thread ${slot.index}`;
          this.r.log('warn', msg, { taskId: id, threadIndex: slot.index });
          slot.aborted.clear();
          this.kill(slot);
        }
      }
      if (slot.aborted.size === 0) this.aborting.delete(slot);
    }
  }

  /** Terminates a thread; if it will not die (stuck in native code), the whole child goes. */
  kill(slot: ThreadSlot): void {
    slot.hardKilled = true;
    void withTimeout(slot.worker.terminate(), 2000, `terminating thread ${slot.index}`).catch(() => {
      this.r.log('error', `thread ${slot.index} would not terminate; ending process ${this.r.init.processIndex}`);
      process.exit(70);
    });
  }
}
