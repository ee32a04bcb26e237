/**
 * What `mpms run` tells a person about a run, on stderr: the live `--stats` line and the final
 * table. Both are read from `metrics()`, the same figures a program gets.
 */
import { RESTART_REASONS, STATUS_BY_CODE } from '../protocol.js';
import type { Metrics, Percentiles, RestartReason, Summary, TaskStatus } from '../types.js';

const STATUSES: readonly TaskStatus[] = STATUS_BY_CODE;
const REASONS: readonly RestartReason[] = RESTART_REASONS;

/** `1 task`, `2 tasks`: `noun` with an English plural `s` unless `n` is 1. */
export function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/**
 * Decimals for a set of ms figures shown together, so they line up and read alike
 * (`2.0 10.0 28.0 324.0`, not `2 10.0 28.0 324`): enough for the smallest non-zero one.
 */
export function msDecimals(values: readonly number[]): number {
  const smallest = Math.min(...values.filter((v) => v > 0));
  if (!Number.isFinite(smallest)) return 0;
  return smallest < 1 ? 2 : smallest < 10 ? 1 : 0;
}

function rate(r: number): string {
  return r >= 100 ? r.toFixed(0) : r.toFixed(1);
}

function restarts(m: Metrics): string {
  return REASONS.map((r) => `${r} ${m.restarts[r]}`).join(', ');
}

/**
 * One line of live figures. `recentRate` is over the last interval, so a slow-down shows at
 * once instead of being averaged away over the whole run.
 *
 * `running` is what has started: at most one task per thread slot (`slotsPerThread` is the
 * engine's `concurrency`). The children hold more than that — each thread prefetches its next
 * tasks so it never idles between them — and those are shown as `prefetched`.
 */
export function formatStatsLine(m: Metrics, elapsedMs: number, recentRate: number, slotsPerThread = 1): string {
  const outcomes = STATUSES.map((s) => `${s} ${m.outcomes[s]}`).join(' ');
  const running = Math.min(m.running, m.threadsAlive * slotsPerThread);
  const d = msDecimals([m.runMs.p50, m.runMs.p99, m.waitMs.p50, m.waitMs.p99]);
  const pair = (p: Percentiles) => `${p.p50.toFixed(d)}/${p.p99.toFixed(d)}`;
  return (
    `mpms stats: ${(elapsedMs / 1000).toFixed(1)} s  done ${m.finished}/${m.total}  queued ${m.queued}  running ${running}  ` +
    `prefetched ${m.running - running}  ${outcomes}  ${rate(recentRate)} tasks/s  run p50/p99 ${pair(m.runMs)} ms  ` +
    `wait p50/p99 ${pair(m.waitMs)} ms  processes ${m.processesAlive}  threads ${m.threadsAlive}  ` +
    `restarts ${REASONS.reduce((n, r) => n + m.restarts[r], 0)}`
  );
}

/** The table printed when a run ends: totals by status, throughput, run/wait percentiles, restarts by reason. */
export function formatFinalTable(s: Summary, m: Metrics): string {
  const secs = s.durationMs / 1000;
  const pad = (label: string, ...cols: string[]) => `  ${label.padEnd(10)}${cols.map((c) => c.padStart(10)).join('')}`;
  const all = (p: Percentiles) => [p.p50, p.p90, p.p99, p.max];
  const d = msDecimals([...all(m.runMs), ...all(m.waitMs)]);
  const pcts = (p: Percentiles) => all(p).map((v) => v.toFixed(d));
  return [
    pad('status', 'tasks'),
    ...STATUSES.map((st) => pad(st, String(s[st]))),
    pad('total', String(s.total)) + `   ${rate(secs > 0 ? s.total / secs : 0)} tasks/s over ${secs.toFixed(2)} s`,
    pad('ms', 'p50', 'p90', 'p99', 'max'),
    pad('run', ...pcts(m.runMs)),
    pad('wait', ...pcts(m.waitMs)),
    `  restarts  ${restarts(m)}`,
  ].join('\n');
}
