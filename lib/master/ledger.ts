/**
 * The task ledger: every accepted task that has no outcome yet, and the counts of outcomes.
 * `settle` is the only way out of the ledger, so a task gets exactly one outcome: a second
 * report for the same task finds nothing here and is dropped.
 */
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { Code, countByStatus, STATUS_BY_CODE, type WireArgs } from '../protocol.js';
import type { RetryPolicy } from '../shared/retry-policy.js';
import type { Percentiles, ProgressInfo, Summary, TaskStatus } from '../types.js';
import type { Call } from './calls.js';
import type { ChildHandle } from './child-handle.js';

export interface TaskRecord {
  id: number;
  args: unknown[];
  /** `args` as they travel to the thread (see TaskWire). */
  wireArgs: WireArgs;
  /** Keys from `submit({ meta })`, if any. */
  meta: Record<string, unknown> | undefined;
  /** Epoch ms when `put()` accepted it. */
  enqueuedAt: number;
  /** Hard limit for this task in ms, 0 for none, ABORTABLE for none but an AbortSignal. */
  timeout: number;
  /** Runs that started (or may have started) so far. */
  attempts: number;
  /** The child holding it, or null while it waits in the master queue. */
  child: ChildHandle | null;
  /** Sent through the transport and not yet back (scale-out); `child` stays null. */
  remote: boolean;
  /** Set when its AbortSignal fired: it must never start again (the reason). */
  cancelled?: string;
  /** Removes the AbortSignal listener of `submit({ signal })`. */
  unlisten: (() => void) | undefined;
  /** Set for a task of `run()`: its outcome goes to this promise, not to the collector/iterator. */
  call: Call | undefined;
  /** The export it calls when not the engine's (`submit({ export })`). */
  exportName: string | undefined;
  /** `submit/run({ onProgress })`. */
  onProgress: ((value: unknown, info: ProgressInfo) => void) | undefined;
  /** Its own retry policy (`submit({ retries, retryOn, retryDelay })`); undefined: the engine's. */
  retry: RetryPolicy | undefined;
}

export class Ledger {
  private readonly open = new Map<number, TaskRecord>();
  private nextId = 1;
  readonly counts: Record<TaskStatus, number> = countByStatus();
  total = 0;
  finished = 0;
  private readonly runHist: RecordableHistogram = createHistogram();
  private readonly waitHist: RecordableHistogram = createHistogram();
  /** Exact sums in ms (a histogram's mean is rounded to its buckets). */
  private runSum = 0;
  private waitSum = 0;

  create(args: unknown[], wireArgs: WireArgs, meta: Record<string, unknown> | undefined, timeout: number): TaskRecord {
    const rec: TaskRecord = { id: this.nextId++, args, wireArgs, meta, enqueuedAt: Date.now(), timeout, attempts: 0, child: null, remote: false, unlisten: undefined, call: undefined, exportName: undefined, retry: undefined, onProgress: undefined };
    this.open.set(rec.id, rec);
    this.total++;
    return rec;
  }

  /**
   * Takes in a task an earlier master of the same run sent (transport re-attach), under its
   * own id; later tasks get ids above it. `attempts` counts the runs before the one in flight.
   */
  adopt(id: number, args: unknown[], attempts: number, timeout: number, meta: Record<string, unknown> | undefined): TaskRecord {
    const rec: TaskRecord = { id, args, wireArgs: 0, meta, enqueuedAt: Date.now(), timeout, attempts, child: null, remote: true, unlisten: undefined, call: undefined, exportName: undefined, retry: undefined, onProgress: undefined };
    this.open.set(id, rec);
    if (id >= this.nextId) this.nextId = id + 1;
    this.total++;
    return rec;
  }

  get(id: number): TaskRecord | undefined {
    return this.open.get(id);
  }

  get size(): number {
    return this.open.size;
  }

  records(): IterableIterator<TaskRecord> {
    return this.open.values();
  }

  /** Removes the task and counts its outcome. Returns false if it had one already. */
  settle(rec: TaskRecord, code: Code, runMs: number, waitMs: number): boolean {
    if (!this.open.delete(rec.id)) return false;
    rec.unlisten?.();
    this.counts[STATUS_BY_CODE[code]]++;
    this.finished++;
    // Histograms take integers >= 1: record microseconds.
    if (runMs >= 0 && code !== Code.Cancelled) {
      this.runHist.record(Math.max(1, Math.round(runMs * 1000)));
      this.runSum += runMs;
    }
    if (waitMs >= 0) {
      this.waitHist.record(Math.max(1, Math.round(waitMs * 1000)));
      this.waitSum += waitMs;
    }
    return true;
  }

  summary(startedAt: number): Summary {
    return { total: this.total, ...this.counts, durationMs: Date.now() - startedAt };
  }

  runPercentiles(): Percentiles {
    return percentiles(this.runHist, this.runSum);
  }

  waitPercentiles(): Percentiles {
    return percentiles(this.waitHist, this.waitSum);
  }
}

function percentiles(h: RecordableHistogram, sum: number): Percentiles {
  if (h.count === 0) return { p50: 0, p90: 0, p99: 0, max: 0, count: 0, sum: 0 };
  const ms = (us: number) => Math.round(us) / 1000;
  return { p50: ms(h.percentile(50)), p90: ms(h.percentile(90)), p99: ms(h.percentile(99)), max: ms(h.max), count: h.count, sum };
}
