/**
 * The master's side of the retry policy: it asks lib/shared/retry-policy.ts whether an
 * unsuccessful attempt runs again and when; a task due at once goes to the back of the queue,
 * one due later waits in `DelayedRetries` (no thread, no queue slot).
 */
import type { Logger } from 'pino';
import type { ResolvedOptions } from '../options.js';
import { Code, type ErrorWire, SERIALIZED, STATUS_BY_CODE } from '../protocol.js';
import { type RetryPolicy, retryAfter } from '../shared/retry-policy.js';
import { DelayedRetries } from './delayed.js';
import type { TaskRecord } from './ledger.js';

export class Retries {
  /** The engine's policy; a task's own overrides are on its record (`rec.retry`). */
  readonly policy: RetryPolicy;
  /** Tasks waiting out a retry delay: in the ledger, in no queue. */
  readonly delayed: DelayedRetries;

  constructor(
    o: ResolvedOptions,
    private readonly logger: Logger,
    private readonly queue: { push(rec: TaskRecord): void },
    pump: () => void,
  ) {
    this.policy = {
      retries: o.retries,
      retryOn: o.retryOn,
      retryDelay: o.retryDelay,
      retryBackoff: o.retryBackoff,
      retryMaxDelay: o.retryMaxDelay,
    };
    this.delayed = new DelayedRetries((recs) => {
      for (const rec of recs) queue.push(rec);
      pump();
    });
  }

  /** An attempt of `rec` ended with `code` (not ok, not cancelled): true when the task will run again, now or after a delay. */
  again(rec: TaskRecord, code: number, value: unknown): boolean {
    const status = STATUS_BY_CODE[code & ~SERIALIZED]!;
    const delay = retryAfter(
      rec.retry ?? this.policy,
      status,
      code === Code.Error ? (value as ErrorWire).name : undefined,
      rec.attempts,
    );
    if (delay < 0) return false;
    this.logger.info(
      { taskId: rec.id, attempts: rec.attempts, delayMs: delay },
      `task ${rec.id} will be retried (${status})`,
    );
    rec.child = null;
    // At the back: a task that keeps killing its worker must not be the next thing every
    // replacement runs, ahead of the tasks that wait behind it.
    if (delay === 0) this.queue.push(rec);
    else this.delayed.add(rec, delay);
    return true;
  }
}
