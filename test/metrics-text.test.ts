import { describe, expect, it } from 'vitest';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { MPMS } from '../dist/index.js';
import { fixture, guardChildren } from './helpers.js';

guardChildren();

describe('metricsText()', () => {
  it('is valid Prometheus text format and agrees with metrics()', async () => {
    const m = new MPMS({ worker: fixture('basic-worker.mjs'), processes: 1, threads: 2, name: 'job "a"' });
    await m.start();
    for (let i = 0; i < 20; i++) await m.put('add', i);
    await m.put('throw', 1);
    await m.join();
    const families = parsePrometheusTextFormat(m.metricsText()) as Array<{ name: string; type: string; metrics: Array<{ labels?: Record<string, string>; value?: string; quantiles?: Record<string, string>; count?: string; sum?: string }> }>;
    const byName = new Map(families.map((f) => [f.name, f]));
    expect(byName.get('mpms_tasks_accepted_total')!.metrics[0]!.value).toBe('21');
    expect(byName.get('mpms_tasks_accepted_total')!.metrics[0]!.labels).toEqual({ engine: 'job "a"' });
    const outcomes = Object.fromEntries(byName.get('mpms_task_outcomes_total')!.metrics.map((s) => [s.labels!.status, Number(s.value)]));
    expect(outcomes).toEqual(m.metrics().outcomes);
    expect(outcomes).toMatchObject({ ok: 20, error: 1 });
    const run = byName.get('mpms_task_run_seconds')!;
    expect(run.type).toBe('SUMMARY');
    expect(Object.keys(run.metrics[0]!.quantiles!).sort()).toEqual(['0.5', '0.9', '0.99']);
    // A summary has its _count and _sum (seconds), of the same samples metrics() counts. (The parser
    // above keeps _count/_sum only for summaries without labels, so they are read from the text.)
    const text = m.metricsText();
    const sample = (name: string) => Number(new RegExp(`^${name}\\{engine="job \\\\"a\\\\""\\} (\\S+)$`, 'm').exec(text)?.[1]);
    const { runMs, waitMs } = m.metrics();
    expect(runMs.count).toBe(21);
    expect(sample('mpms_task_run_seconds_count')).toBe(21);
    expect(sample('mpms_task_run_seconds_sum')).toBeCloseTo(runMs.sum / 1000, 9);
    expect(waitMs.count).toBe(21);
    expect(sample('mpms_task_wait_seconds_count')).toBe(21);
    expect(sample('mpms_task_wait_seconds_sum')).toBeCloseTo(waitMs.sum / 1000, 9);
    expect(waitMs.sum).toBeGreaterThan(0);
    expect(byName.get('mpms_restarts_total')!.metrics).toHaveLength(5);
  });
});
