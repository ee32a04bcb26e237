/**
 * Where outcomes go: the collector (called one at a time, in order) or the `iterResults()`
 * reader. Bounded: while `max` outcomes wait here for a consumer that can read them, the engine
 * stops dispatching, so a slow consumer slows the workers instead of filling the master's memory.
 *
 * The consumer is user code, and the engine must never wait for it where it is itself waiting
 * for the engine; each such case is decided here (docs/guarantees.md, "user code"):
 * - the consumer waits in `put()` for queue room: the engine lets that put in over the queue
 *   bound (`TaskQueue.admitConsumers`) instead of waiting for room only the consumer can make;
 * - the consumer waits in `join()`/a shutdown: dispatch and the collector drain stop waiting for
 *   the outcome it holds (`blockCurrentHold`);
 * - the reader left (`break`, a throw): outcomes stop waiting for it; up to `max` are kept for a
 *   later reader, the rest counted and dropped (one warning);
 * - nobody has started reading yet: outcomes are kept and dispatch pauses, so a late
 *   `iterResults()` gets them all; once intake has ended nothing can be put any more, so every
 *   outcome is kept (bounded by the tasks accepted) and dispatch no longer waits;
 * - a consumer that stalls while `join()` or a shutdown waits: bounded (`limitStalls`, then
 *   `abandon`).
 */
import type { Logger } from 'pino';
import { EngineStateError } from '../errors.js';
import type { Collector } from '../options.js';
import type { Meta, TaskResult } from '../types.js';
import { firstForeignKey, ownKey, stackKeys, type FrameKey } from './callers.js';
import { Ring } from '../shared/ring.js';

/** Files of this package: frames from here are the engine's, not the user's. */
const PACKAGE_DIR = new URL('../', import.meta.url).href;
/** Identity of `awaitCollector` (set on its first run): a put whose stack holds it comes from the collector. */
let collectorFrame: FrameKey | undefined;

type ReaderState = 'none' | 'reading' | 'left';

export class ResultSink {
  private readonly buf = new Ring<TaskResult>(64);
  /** Inside a collector call's synchronous part: outcomes settled meanwhile (re-entrancy) wait in `buf`. */
  private calling = false;
  /** A collector call returned a promise that has not settled. */
  private collectorBusy = false;
  /** The reader holds an outcome: yielded, and `next()` not called again. */
  private readerHolding = false;
  /** Outcomes handed to the consumer so far; the current one identifies its hold. */
  private handed = 0;
  /** The hold during which the consumer itself waits for join() or a shutdown (-1: none). */
  private blockedHold = -1;
  private reader: ReaderState = 'none';
  /** The function that reads `iterResults()`: a put whose stack holds it comes from the reader. */
  private readerFrame: FrameKey | undefined;
  private wakeIterator: (() => void) | undefined;
  private idleWaiters: Array<() => void> = [];
  /** Intake has ended: no producer is left to slow down. */
  private intakeEnded = false;
  /** A consumer that stalled while the engine was stopping: dispatch no longer waits for it. */
  private released = false;
  /** The collector was given up on: it is never called again. */
  private abandoned = false;
  private dropped = 0;
  private stallMs = 0;
  /** The engine's teardown is over: no watch is armed any more. */
  private ended = false;
  private stallTimer: NodeJS.Timeout | undefined;
  private holdStartedAt = 0;

  constructor(
    private readonly max: number,
    private readonly collector: Collector | undefined,
    private readonly logger: Logger,
    /** Called when dispatch may resume (room appeared, or it stopped waiting for the consumer). */
    private readonly onRoom: () => void,
    /** True once no outcome can come any more (closed and every task settled). */
    private readonly finished: () => boolean,
  ) {}

  get waiting(): number {
    return this.buf.length;
  }

  get hasIterator(): boolean {
    return this.reader === 'reading';
  }

  /** The consumer holds an outcome it has not finished with. */
  get holding(): boolean {
    return this.calling || this.collectorBusy || this.readerHolding;
  }

  /** No collector, and no `iterResults()` was ever started: outcomes wait for a first reader. */
  get awaitingReader(): boolean {
    return !this.collector && this.reader === 'none';
  }

  /** True while dispatch must wait for the consumer to read. */
  get pausesDispatch(): boolean {
    if (this.waiting < this.max || this.released) return false;
    if (this.collector) return !this.abandoned && !this.blockedNow();
    if (this.reader === 'reading') return !this.blockedNow();
    return this.reader === 'none' && !this.intakeEnded;
  }

  /**
   * Whether the function awaiting the engine method running now is (or is awaited by) the
   * consumer while it holds an outcome (see callers.ts). Call it from that method's async
   * continuation, one macrotask after it was called (`afterLinks`), when V8 has linked the
   * caller's promises: a promise an async function returns is adopted a few microtasks later.
   */
  isConsumerCall(): boolean {
    if (this.collectorBusy) return collectorFrame !== undefined && stackKeys().has(collectorFrame);
    if (this.readerHolding) return this.readerFrame !== undefined && stackKeys().has(this.readerFrame);
    return false;
  }

  /** The consumer waits for join() or a shutdown: nothing may wait for the outcome it holds. */
  blockCurrentHold(): void {
    if (!this.holding) return;
    this.blockedHold = this.handed;
    this.onRoom();
    if (this.isIdle) this.notifyIdle();
  }

  /** Intake has ended (close, join, a shutdown). */
  endIntake(): void {
    if (this.intakeEnded) return;
    this.intakeEnded = true;
    this.onRoom();
  }

  push(meta: Meta, result: unknown): void {
    if (this.collector) {
      if (this.abandoned) return;
      if (this.calling || this.collectorBusy || this.buf.length > 0) this.buf.push({ meta, result });
      else this.runCollector(meta, result);
      return;
    }
    if (this.reader === 'left' && this.waiting >= this.max) return this.drop();
    this.buf.push({ meta, result });
    this.poke();
  }

  /** Calls the collector with this outcome, then with those waiting behind it, until a call returns a promise. */
  private runCollector(meta: Meta, result: unknown): void {
    for (;;) {
      this.startHold();
      const pending = this.callCollector(meta, result);
      if (pending) {
        this.collectorBusy = true;
        void this.awaitCollector(pending, meta.taskId);
        return;
      }
      if (this.abandoned) return;
      if (this.buf.length === 0) break;
      const next = this.take()!;
      meta = next.meta;
      result = next.result;
    }
    if (this.idleWaiters.length > 0) this.notifyIdle();
  }

  /** One call, isolated; returns the promise it returned, if any. */
  private callCollector(meta: Meta, result: unknown): PromiseLike<unknown> | undefined {
    this.calling = true;
    try {
      const ret = this.collector!(meta, result) as unknown;
      // Read inside the try: a `then` getter is user code too.
      if (ret !== null && typeof ret === 'object' && typeof (ret as PromiseLike<unknown>).then === 'function') {
        return ret as PromiseLike<unknown>;
      }
    } catch (err) {
      this.fault(err, meta.taskId, 'collector threw');
    } finally {
      this.calling = false;
    }
    return undefined;
  }

  /** The only awaiter of a collector's promise: V8 lists it among the async frames of whatever the collector awaits. */
  private async awaitCollector(pending: PromiseLike<unknown>, taskId: number): Promise<void> {
    collectorFrame ??= ownKey();
    try {
      await pending;
    } catch (err) {
      this.fault(err, taskId, 'collector rejected');
    }
    this.collectorBusy = false;
    // Given up on by a shutdown: the late return of a stuck call delivers nothing more.
    if (this.abandoned) return;
    const next = this.take();
    if (next) this.runCollector(next.meta, next.result);
    else this.notifyIdle();
  }

  /** The consumer takes its next outcome (the reader; the collector's loop does the same inline). */
  private startHold(): void {
    this.handed++;
    if (this.stallMs > 0) this.holdStartedAt = Date.now();
  }

  private blockedNow(): boolean {
    return this.blockedHold === this.handed && this.holding;
  }

  private fault(err: unknown, taskId: number, what: string): void {
    try {
      this.logger.error({ err, taskId }, `${what}; the engine goes on`);
    } catch {
      // A logger that throws cannot be allowed to break delivery either.
    }
  }

  private take(): TaskResult | undefined {
    if (this.buf.length === 0) return undefined;
    const wasFull = this.waiting === this.max;
    const item = this.buf.shift()!;
    if (wasFull) this.onRoom();
    return item;
  }

  /** Nothing is left that the collector can be given now. */
  get isIdle(): boolean {
    if (!this.collector || this.abandoned) return true;
    if (this.blockedNow()) return true;
    return !this.calling && !this.collectorBusy && this.waiting === 0;
  }

  /** Resolves once `isIdle`, or once the collector has stalled (see `limitStalls`). */
  idle(): Promise<void> {
    if (this.isIdle || this.released) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private notifyIdle(): void {
    if (this.idleWaiters.length) for (const r of this.idleWaiters.splice(0)) r();
  }

  /**
   * From now on (join() or a shutdown waits), a consumer that holds one outcome for `ms` no
   * longer holds dispatch back, and `idle()` stops waiting for it. Its outcomes are still kept.
   */
  limitStalls(ms: number): void {
    if (this.ended || (this.stallMs > 0 && this.stallMs <= ms)) return;
    this.stallMs = ms;
    this.holdStartedAt = Date.now();
    this.armStallTimer(ms);
  }

  private armStallTimer(ms: number): void {
    clearTimeout(this.stallTimer);
    this.stallTimer = setTimeout(() => this.checkStall(), ms);
    this.stallTimer.unref();
  }

  private checkStall(): void {
    this.stallTimer = undefined;
    if (this.released || this.abandoned || this.ended) return;
    if (!this.holding) return this.armStallTimer(this.stallMs);
    const left = this.holdStartedAt + this.stallMs - Date.now();
    if (left > 0) return this.armStallTimer(left);
    this.released = true;
    const who = this.collector ? 'collector' : 'iterResults() reader';
    this.warn(`the ${who} has held one outcome for ${this.stallMs} ms while the engine stops: dispatch goes on`);
    this.onRoom();
    this.notifyIdle();
  }

  /**
   * The shutdown's bound for the collector passed: it is never called again, and what it was not
   * given is dropped (counted in the summary; 'task' events were emitted). Its running call, if
   * any, is left to finish on its own: JavaScript cannot stop it.
   */
  abandon(why: string): void {
    if (!this.collector || this.abandoned || this.isIdle) return;
    this.abandoned = true;
    const undelivered = this.waiting;
    this.buf.drain();
    this.warn(
      `${why}: the collector is not called again; ${undelivered} outcomes were not delivered to it ` +
        "(the summary counts them, and each was emitted as a 'task' event)",
    );
    this.notifyIdle();
  }

  /** The end of the engine: stops the stall watch; unread outcomes are worth one warning. */
  close(): void {
    this.ended = true;
    clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
    if (this.collector || this.reader === 'reading' || this.dropped > 0 || this.waiting === 0) return;
    this.warn(`${this.waiting} ${this.waiting === 1 ? 'outcome is' : 'outcomes are'} unread (no collector, no iterResults() reader): iterResults() yields them`);
  }

  private warn(msg: string): void {
    try {
      this.logger.warn(msg);
    } catch {
      // see fault()
    }
  }

  /** The reader left and the outcomes kept for a later one fill the bound: count it, keep it no more. */
  private drop(): void {
    if (this.dropped++ === 0) {
      this.warn(
        `the iterResults() reader left before the end and ${this.max} (resultQueueMaxsize) outcomes wait unread: ` +
          "from now on outcomes are counted in the summary and emitted as 'task' events, but not kept",
      );
    }
  }

  /** Something may have changed: a reader waiting for the next outcome re-checks. */
  poke(): void {
    if (this.wakeIterator) {
      const wake = this.wakeIterator;
      this.wakeIterator = undefined;
      wake();
    }
  }

  /** The iterator; throws at once if outcomes were already dropped, so it could not yield them all. */
  iterate(): AsyncGenerator<TaskResult, void, undefined> {
    if (this.dropped > 0) {
      throw new EngineStateError(
        `iterResults(): ${this.dropped} outcomes were already dropped because an earlier iterResults() reader left ` +
          'before the end; read every outcome with one loop (a break ends reading), or use a collector',
      );
    }
    this.reader = 'reading';
    return this.read();
  }

  private async *read(): AsyncGenerator<TaskResult, void, undefined> {
    // The first run is synchronous inside the reader's first next(): the reader is on the stack.
    this.readerFrame = firstForeignKey(PACKAGE_DIR);
    let ended = false;
    try {
      for (;;) {
        const item = this.take();
        if (item) {
          this.startHold();
          this.readerHolding = true;
          yield item;
          this.readerHolding = false;
          continue;
        }
        if (this.finished()) {
          ended = true;
          return;
        }
        await new Promise<void>((r) => (this.wakeIterator = r));
      }
    } finally {
      this.readerHolding = false;
      if (ended) {
        this.reader = 'left';
      } else if (this.reader === 'reading') {
        // break, return() or a throw in the loop: nobody reads any more.
        this.reader = 'left';
        this.logger.info('the iterResults() reader left before the end; outcomes no longer wait for it');
        this.onRoom();
      }
    }
  }
}
