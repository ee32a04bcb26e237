/**
 * `m.running()`: the tasks running now, read on demand from what the engine already has — the
 * ledger (which child holds which task) and the threads' start logs (which attempt started
 * where and when). Tasks pay nothing for it. A task whose outcome is on its way to the master
 * still counts as running.
 */
import { readStartLogs } from '../shared/start-log.js';
import type { RunningTask } from '../types.js';
import type { ChildHandle } from './child-handle.js';
import type { TaskRecord } from './ledger.js';

export function runningTasks(records: Iterable<TaskRecord>, startLogDir: string, defaultExport: string): RunningTask[] {
  const byChild = new Map<ChildHandle, TaskRecord[]>();
  for (const rec of records) {
    if (!rec.child) continue;
    const list = byChild.get(rec.child);
    if (list) list.push(rec);
    else byChild.set(rec.child, [rec]);
  }
  const now = Date.now();
  const out: RunningTask[] = [];
  for (const [c, recs] of byChild) {
    const starts = readStartLogs(startLogDir, c.pid);
    for (const rec of recs) {
      const s = starts.get(rec.id);
      // Held but not started (waiting in the child or thread queue), or an earlier attempt's record.
      if (!s || s.attempt !== rec.attempts + 1) continue;
      out.push({
        taskId: rec.id,
        attempt: s.attempt,
        export: rec.exportName ?? defaultExport,
        processIndex: c.index,
        threadIndex: s.threadIndex,
        pid: c.pid,
        startedAt: s.startedAt,
        // A start recorded after `now` was taken (the logs are read after it) ran 0 ms so far.
        runMs: Math.max(0, now - s.startedAt),
      });
    }
  }
  return out.sort((a, b) => a.startedAt - b.startedAt);
}
