/**
 * Where outcomes go: the collector (called one at a time, in order) or the `iterResults()`
 * iterator. Bounded: while `max` outcomes wait here, the engine stops dispatching, so a slow
 * consumer slows the workers instead of filling the master's memory.
 */
import type { Logger } from 'pino';
import { EngineStateError } from '../errors.js';
import type { Collector } from '../options.js';
import type { Meta, TaskResult } from '../types.js';

export class ResultSink {
  private buf: TaskResult[] = [];
  private head = 0;
  private collectorBusy = false;
  private iterating = false;
  private wakeIterator: (() => void) | undefined;
  private idleWaiters: Array<() => void> = [];
  /** No collector and no iterator will ever read: outcomes are counted, then dropped. */
  discarding = false;

  constructor(
    private readonly max: number,
    private readonly collector: Collector | undefined,
    private readonly logger: Logger,
    /** Called when room appears again, so the engine resumes dispatching. */
    private readonly onRoom: () => void,
    /** True once no outcome can come any more (closed and every task settled). */
    private readonly finished: () => boolean,
  ) {}

  get waiting(): number {
    return this.buf.length - this.head;
  }

  get full(): boolean {
    return this.waiting >= this.max;
  }

  get hasIterator(): boolean {
    return this.iterating;
  }

  push(meta: Meta, result: unknown): void {
    if (this.discarding) return;
    if (this.collector && !this.collectorBusy && this.waiting === 0) {
      this.call(meta, result);
      return;
    }
    this.buf.push({ meta, result });
    if (this.wakeIterator) {
      const wake = this.wakeIterator;
      this.wakeIterator = undefined;
      wake();
    }
    // Nobody reads (no collector, no iterator): waiting for a reader that may never come would
    // stall every put(). Keep the first `max` for a late iterResults(), then stop keeping.
    if (this.full && !this.collector && !this.iterating) this.discard();
  }

  private call(meta: Meta, result: unknown): void {
    let ret: unknown;
    try {
      ret = this.collector!(meta, result);
    } catch (err) {
      this.logger.error({ err, taskId: meta.taskId }, 'collector threw; the engine goes on');
      return;
    }
    if (ret && typeof (ret as Promise<void>).then === 'function') {
      this.collectorBusy = true;
      (ret as Promise<void>).then(
        () => this.afterAsync(),
        (err) => {
          this.logger.error({ err, taskId: meta.taskId }, 'collector rejected; the engine goes on');
          this.afterAsync();
        },
      );
    }
  }

  private afterAsync(): void {
    this.collectorBusy = false;
    const wasFull = this.full;
    while (this.waiting > 0 && !this.collectorBusy) {
      const next = this.take()!;
      this.call(next.meta, next.result);
    }
    if (wasFull && !this.full) this.onRoom();
    if (!this.collectorBusy && this.waiting === 0) this.notifyIdle();
  }

  private take(): TaskResult | undefined {
    if (this.head >= this.buf.length) return undefined;
    const item = this.buf[this.head]!;
    this.buf[this.head++] = undefined as unknown as TaskResult;
    if (this.head > 1024 && this.head * 2 > this.buf.length) {
      this.buf = this.buf.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** Resolves once the collector has handled every outcome handed to it so far. */
  idle(): Promise<void> {
    if (!this.collectorBusy && (this.waiting === 0 || !this.collector)) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private notifyIdle(): void {
    for (const r of this.idleWaiters.splice(0)) r();
  }

  /** Nobody reads the outcomes: drop them and stop keeping them (with one warning). */
  private discard(): void {
    if (this.discarding) return;
    this.discarding = true;
    const dropped = this.waiting;
    this.buf = [];
    this.head = 0;
    this.logger.warn(`${dropped} outcomes waited unread (no collector, no iterResults() reader); from now on outcomes are counted and emitted as 'task' events, but not kept`);
    this.onRoom();
  }

  /** Called at the end: outcomes that no one will ever read are worth one warning. */
  warnUnread(): void {
    if (this.waiting > 0 && !this.collector && !this.iterating) this.logger.warn(`${this.waiting} outcomes were never read (no collector, no iterResults() reader); only the summary counts them`);
  }

  /** Something may have finished: an iterator waiting for the next outcome re-checks. */
  poke(): void {
    if (this.wakeIterator) {
      const wake = this.wakeIterator;
      this.wakeIterator = undefined;
      wake();
    }
  }

  /** The iterator; throws at once if outcomes were already dropped for want of a reader. */
  iterate(): AsyncGenerator<TaskResult, void, undefined> {
    if (this.discarding) {
      throw new EngineStateError(
        `iterResults() was called after ${this.max} (resultQueueMaxsize) outcomes had waited unread, so later ones were not kept; call iterResults() before put(), or use a collector`,
      );
    }
    this.iterating = true;
    return this.read();
  }

  private async *read(): AsyncGenerator<TaskResult, void, undefined> {
    try {
      for (;;) {
        const item = this.take();
        if (item) {
          if (this.waiting === this.max - 1) this.onRoom();
          yield item;
          continue;
        }
        if (this.finished()) return;
        await new Promise<void>((r) => (this.wakeIterator = r));
      }
    } finally {
      this.iterating = false;
    }
  }
}
