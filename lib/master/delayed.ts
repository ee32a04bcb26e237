/**
 * Tasks waiting out a retry delay. They hold no thread and no place in the bounded queue: they
 * wait here, ordered by due time, under one timer (armed for the earliest), and go to the back
 * of the queue when due. The timer stays referenced: a pending retry is work the process must
 * not exit before.
 */
import type { TaskRecord } from './ledger.js';

interface Entry {
  due: number;
  rec: TaskRecord;
}

export class DelayedRetries {
  private entries: Entry[] = [];
  private timer: NodeJS.Timeout | undefined;
  private timerDue = Infinity;

  constructor(private readonly onDue: (recs: TaskRecord[]) => void) {}

  get size(): number {
    return this.entries.length;
  }

  add(rec: TaskRecord, delayMs: number): void {
    const due = Date.now() + delayMs;
    let lo = 0;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.entries[mid]!.due <= due) lo = mid + 1;
      else hi = mid;
    }
    this.entries.splice(lo, 0, { due, rec });
    this.arm();
  }

  /** Takes one task out (its AbortSignal fired). */
  remove(rec: TaskRecord): boolean {
    const i = this.entries.findIndex((e) => e.rec === rec);
    if (i < 0) return false;
    this.entries.splice(i, 1);
    this.arm();
    return true;
  }

  /** Takes every waiting task out (a shutdown cancels them). */
  drain(): TaskRecord[] {
    const out = this.entries.map((e) => e.rec);
    this.entries = [];
    this.arm();
    return out;
  }

  private arm(): void {
    const next = this.entries[0]?.due ?? Infinity;
    if (next === this.timerDue) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerDue = next;
    if (next === Infinity) return;
    this.timer = setTimeout(() => this.fire(), Math.max(0, next - Date.now()));
  }

  private fire(): void {
    this.timer = undefined;
    this.timerDue = Infinity;
    const now = Date.now();
    let n = 0;
    while (n < this.entries.length && this.entries[n]!.due <= now) n++;
    const due = this.entries.splice(0, n).map((e) => e.rec);
    this.arm();
    if (due.length) this.onDue(due);
  }
}
