/**
 * Per-task options of `submit()`/`run()`: checked at the call, then written on the task's record.
 * `put()` passes `NO_OPTIONS` and skips both, so the hot path pays for none of them.
 */
import { ConfigError } from '../errors.js';
import { type RetryPolicy, retryProblems, withOverrides } from '../shared/retry-policy.js';
import type { SubmitOptions } from '../types.js';
import type { TaskRecord } from './ledger.js';

/** The options of a task given none (`put()`, `submit(args)`). */
export const NO_OPTIONS: SubmitOptions = Object.freeze({});

/** @throws ConfigError listing every bad option of one `submit()`/`run()`. */
export function checkTaskOptions(options: SubmitOptions, viaTransport: boolean): void {
  const problems: string[] = [];
  const { timeout, signal, onProgress, meta } = options;
  if (timeout !== undefined && !(typeof timeout === 'number' && timeout > 0 && Number.isFinite(timeout)))
    problems.push(`\`timeout\` must be a finite number > 0, got ${String(timeout)}`);
  if (signal !== undefined && !(signal instanceof AbortSignal)) problems.push('`signal` must be an AbortSignal');
  if (onProgress !== undefined && typeof onProgress !== 'function') problems.push('`onProgress` must be a function');
  if (meta !== undefined && (meta === null || typeof meta !== 'object')) problems.push('`meta` must be an object');
  if (options.export !== undefined && (typeof options.export !== 'string' || options.export === ''))
    problems.push('`export` must be a non-empty string');
  if (options.export !== undefined && viaTransport)
    problems.push('`export` per task is not supported with a transport yet');
  problems.push(...retryProblems(options));
  if (problems.length) throw new ConfigError(problems);
}

/** Writes the export, progress callback and retry policy of `options` on a new task's record. */
export function applyTaskOptions(
  rec: TaskRecord,
  options: SubmitOptions,
  defaultExport: string,
  retry: RetryPolicy,
): void {
  if (options.export !== undefined && options.export !== defaultExport) rec.exportName = options.export;
  if (options.onProgress) rec.onProgress = options.onProgress;
  const policy = withOverrides(retry, options);
  if (policy !== retry) rec.retry = policy;
}
