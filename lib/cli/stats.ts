/**
 * What `mpms run` tells a person about a run, on stderr: the live `--stats` line and the final
 * table. Both are read from `metrics()`, the same figures a program gets.
 */
import { RESTART_REASONS, STATUS_BY_CODE } from '../protocol.js';
import type { Metrics, Percentiles, RestartReason, Summary, TaskStatus } from '../types.js';

const STATUSES: readonly TaskStatus[] = STATUS_BY_CODE;
const REASONS: readonly RestartReason[] = RESTART_REASONS;

/** ms with a precision that suits its size: 0.42, 12.3, 1234. */
function ms(v: number): string {
  return Number.isInteger(v) || v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
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
 */
export function formatStatsLine(m: Metrics, elapsedMs: number, recentRate: number): string {
  const outcomes = STATUSES.map((s) => `${s} ${m.outcomes[s]}`).join(' ');
  return (
    `mpms stats: ${(elapsedMs / 1000).toFixed(1)} s  done ${m.finished}/${m.total}  queued ${m.queued}  running ${m.running}  ${outcomes}  ` +
    `${rate(recentRate)} tasks/s  run p50/p99 ${ms(m.runMs.p50)}/${ms(m.runMs.p99)} ms  wait p50/p99 ${ms(m.waitMs.p50)}/${ms(m.waitMs.p99)} ms  ` +
    `processes ${m.processesAlive}  threads ${m.threadsAlive}  restarts ${REASONS.reduce((n, r) => n + m.restarts[r], 0)}`
  );
}

/** The table printed when a run ends: totals by status, throughput, run/wait percentiles, restarts by reason. */
export function formatFinalTable(s: Summary, m: Metrics): string {
  const secs = s.durationMs / 1000;
  const pad = (label: string, ...cols: string[]) => `  ${label.padEnd(10)}${cols.map((c) => c.padStart(10)).join('')}`;
  const pcts = (p: Percentiles) => [ms(p.p50), ms(p.p90), ms(p.p99), ms(p.max)];
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
