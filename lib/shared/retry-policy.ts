/**
 * When a task that did not end `ok` runs again, and after how long: one decision, taken by the
 * master (engine.ts asks `retryAfter` once per unsuccessful attempt).
 */
import type { TaskStatus } from '../types.js';

/** Statuses a retry may follow. `ok` and `cancelled` never are. */
export type RetryableStatus = 'crashed' | 'timeout' | 'error';

export interface RetryPolicy {
  /** Re-runs allowed after the first attempt. */
  retries: number;
  retryOn: readonly RetryableStatus[];
  /** ms before the first retry. */
  retryDelay: number;
  /** Factor by which each further delay grows. */
  retryBackoff: number;
  /** Cap of a delay in ms (before jitter). */
  retryMaxDelay: number;
}

/** Per-task overrides of `submit()`/`run()`. */
export interface RetryOverrides {
  retries?: number;
  retryOn?: RetryableStatus[];
  retryDelay?: number;
}

/** The error name a worker throws to say "do not retry this" (matched by name, like WorkerGracefulDie). */
export const UNRECOVERABLE = 'UnrecoverableError';

/** ± this fraction of jitter on each delay, so retries of many tasks that failed together spread out. */
const JITTER = 0.2;

const RETRYABLE: readonly string[] = ['crashed', 'timeout', 'error'];

/** Problems with retry overrides, in ConfigError's words; empty when fine. */
export function retryProblems(o: RetryOverrides): string[] {
  const problems: string[] = [];
  if (o.retries !== undefined && !(Number.isInteger(o.retries) && o.retries >= 0))
    problems.push(`\`retries\` must be an integer >= 0, got ${String(o.retries)}`);
  if (o.retryOn !== undefined && !(Array.isArray(o.retryOn) && o.retryOn.every((s) => RETRYABLE.includes(s)))) {
    problems.push("`retryOn` must be an array of 'crashed' | 'timeout' | 'error'");
  }
  if (
    o.retryDelay !== undefined &&
    !(typeof o.retryDelay === 'number' && o.retryDelay >= 0 && Number.isFinite(o.retryDelay))
  ) {
    problems.push(`\`retryDelay\` must be a finite number >= 0, got ${String(o.retryDelay)}`);
  }
  return problems;
}

/** The engine's policy with a task's overrides, or the engine's own when there are none (no allocation). */
export function withOverrides(base: RetryPolicy, o: RetryOverrides): RetryPolicy {
  if (o.retries === undefined && o.retryOn === undefined && o.retryDelay === undefined) return base;
  return {
    ...base,
    retries: o.retries ?? base.retries,
    retryOn: o.retryOn ?? base.retryOn,
    retryDelay: o.retryDelay ?? base.retryDelay,
  };
}

/**
 * ms to wait before running the task again after attempt number `attempts` ended with `status`
 * (the thrown error's name `errorName` for `error`), or -1 for "this outcome is final".
 */
export function retryAfter(
  p: RetryPolicy,
  status: TaskStatus,
  errorName: string | undefined,
  attempts: number,
): number {
  if (attempts > p.retries || !p.retryOn.includes(status as RetryableStatus)) return -1;
  if (errorName === UNRECOVERABLE) return -1;
  if (p.retryDelay === 0) return 0;
  const base = Math.min(p.retryMaxDelay, p.retryDelay * p.retryBackoff ** (attempts - 1));
  return Math.max(0, Math.round(base * (1 + JITTER * (2 * Math.random() - 1))));
}
