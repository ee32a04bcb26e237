/** `metricsText()`: the engine's metrics in the Prometheus text exposition format (version 0.0.4). */
import type { Metrics } from '../types.js';

/** Escapes a label value as the format requires. */
function label(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

export function metricsText(m: Metrics, engine: string): string {
  const e = `engine="${label(engine)}"`;
  const out: string[] = [];
  const metric = (name: string, type: 'counter' | 'gauge' | 'summary', help: string, samples: Array<[labels: string, value: number]>) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) out.push(`${name}{${labels}} ${Number.isFinite(value) ? value : 0}`);
  };
  metric('mpms_tasks_accepted_total', 'counter', 'Tasks accepted by put()/submit().', [[e, m.total]]);
  metric('mpms_tasks_finished_total', 'counter', 'Tasks with an outcome.', [[e, m.finished]]);
  metric('mpms_task_outcomes_total', 'counter', 'Outcomes by status.', Object.entries(m.outcomes).map(([status, n]) => [`${e},status="${status}"`, n]));
  metric('mpms_restarts_total', 'counter', 'Thread and process restarts by reason.', Object.entries(m.restarts).map(([reason, n]) => [`${e},reason="${reason}"`, n]));
  const cutHelp = 'Retiring threads that exited with background work still pending (cut).';
  metric('mpms_threads_cut_on_exit_total', 'counter', cutHelp, [[e, m.cutOnExit]]);
  metric('mpms_tasks_queued', 'gauge', 'Tasks waiting in the master queue.', [[e, m.queued]]);
  metric('mpms_tasks_running', 'gauge', 'Tasks held by children (running or prefetched).', [[e, m.running]]);
  metric('mpms_processes_alive', 'gauge', 'Child processes alive.', [[e, m.processesAlive]]);
  metric('mpms_threads_alive', 'gauge', 'Worker threads alive.', [[e, m.threadsAlive]]);
  const quantiles = (p: Metrics['runMs']): Array<[string, number]> => [
    [`${e},quantile="0.5"`, p.p50 / 1000],
    [`${e},quantile="0.9"`, p.p90 / 1000],
    [`${e},quantile="0.99"`, p.p99 / 1000],
  ];
  metric('mpms_task_run_seconds', 'summary', 'Run time of tasks, from start in a thread to outcome.', quantiles(m.runMs));
  metric('mpms_task_wait_seconds', 'summary', 'Wait from put() to start in a thread.', quantiles(m.waitMs));
  return out.join('\n') + '\n';
}
