/**
 * Progress values arriving from the children: to the `'progress'` listeners and the task's
 * `onProgress`, for the attempt in flight only (a late value of an earlier attempt, or of a
 * settled task, is dropped). Nothing here runs unless a task calls `taskContext().progress()`.
 */
import type { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { ProgressWire } from '../protocol.js';
import type { ProgressInfo } from '../types.js';
import type { Ledger, TaskRecord } from './ledger.js';

/** How long a task counts as "reporting progress" after its last report (metrics().progressing). */
const RECENT_MS = 5_000;

export class ProgressRelay {
  /** Last report per task (epoch ms); pruned when read and when the task is gone. */
  private readonly lastAt = new Map<number, number>();

  constructor(
    private readonly ledger: Ledger,
    private readonly events: EventEmitter,
    private readonly logger: () => Logger,
  ) {}

  deliver(items: ProgressWire[], processIndex: number): void {
    const now = Date.now();
    const listening = this.events.listenerCount('progress') > 0;
    for (const [id, attempt, value] of items) {
      const rec = this.ledger.get(id);
      if (!rec || rec.attempts + 1 !== attempt) continue;
      this.lastAt.set(id, now);
      if (this.lastAt.size > 2 * this.ledger.size + 1024) this.recent();
      if (!listening && !rec.onProgress) continue;
      const info = infoOf(rec, attempt, processIndex);
      if (listening) this.events.emit('progress', info, value);
      if (rec.onProgress) {
        try {
          rec.onProgress(value, info);
        } catch (err) {
          this.logger().error({ err, taskId: id }, 'onProgress threw; the engine goes on');
        }
      }
    }
  }

  /** Unsettled tasks that reported progress within the last RECENT_MS. */
  recent(): number {
    const since = Date.now() - RECENT_MS;
    let n = 0;
    for (const [id, at] of this.lastAt) {
      if (at < since || !this.ledger.get(id)) this.lastAt.delete(id);
      else n++;
    }
    return n;
  }
}

function infoOf(rec: TaskRecord, attempt: number, processIndex: number): ProgressInfo {
  const info: ProgressInfo = rec.meta ? ({ ...rec.meta } as ProgressInfo) : ({} as ProgressInfo);
  info.taskId = rec.id;
  info.attempt = attempt;
  info.args = rec.args;
  info.processIndex = processIndex;
  return info;
}
