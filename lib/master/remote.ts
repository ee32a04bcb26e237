/**
 * The remote path of the engine (scale-out): tasks go through a `Transport` instead of this
 * engine's children. Connecting (and adopting what an earlier master of the same run left in
 * flight), dispatch up to the transport's credit, and taking outcomes back — each only for the
 * attempt in flight, so a duplicate or stale report never settles a task twice.
 */
import type { Logger } from 'pino';
import type { OutgoingTask, RemoteOutcome, Transport, TransportHost } from '../transport/types.js';
import type { Ledger, TaskRecord } from './ledger.js';
import type { TaskQueue } from './task-queue.js';

/** What the remote path needs of the engine. */
export interface RemoteEngine {
  readonly logger: Logger;
  readonly ledger: Ledger;
  /** The worker module URL and export the remote engines must serve. */
  readonly module: string;
  readonly exportName: string;
  /** Keys every adopted task's meta gets (those of the dead master's `submit({ meta })` were never sent). */
  readonly meta: Record<string, unknown> | undefined;
  complete(rec: TaskRecord, o: RemoteOutcome): void;
  requeue(rec: TaskRecord): void;
  checkDone(): void;
  pump(): void;
}

/** Connects the transport and adopts the tasks an earlier master of the run left in flight. */
export async function startRemote(t: Transport, e: RemoteEngine): Promise<void> {
  const host: TransportHost = {
    logger: e.logger,
    module: e.module,
    exportName: e.exportName,
    settle: (o) => settleRemote(e, o),
    returned: (taskId, attempt) => {
      const rec = e.ledger.get(taskId);
      if (!rec || !rec.remote || rec.attempts + 1 !== attempt) return;
      rec.remote = false;
      e.requeue(rec);
      e.checkDone();
    },
    wake: () => e.pump(),
  };
  for (const a of await t.start(host)) e.ledger.adopt(a.taskId, a.args, a.attempt - 1, a.timeout, e.meta);
}

/** An outcome from a transport: only for the attempt in flight (a duplicate or stale one is dropped). */
function settleRemote(e: RemoteEngine, o: RemoteOutcome): boolean {
  const rec = e.ledger.get(o.taskId);
  if (!rec || !rec.remote || rec.attempts + 1 !== o.attempt) {
    e.logger.debug({ taskId: o.taskId, attempt: o.attempt }, 'dropped a remote outcome for a task that already has one');
    return false;
  }
  rec.remote = false;
  e.complete(rec, o);
  return true;
}

/** Hands queued tasks to the transport, up to its bound on outstanding jobs. */
export function pumpRemote(t: Transport, queue: TaskQueue): void {
  const n = Math.min(t.credit, queue.length);
  if (n > 0) {
    const out: OutgoingTask[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const rec = queue.shift()!;
      rec.remote = true;
      out[i] = { taskId: rec.id, attempt: rec.attempts + 1, args: rec.args, timeout: rec.timeout > 0 ? rec.timeout : 0 };
    }
    t.send(out);
  }
  queue.wake();
}
