/**
 * A thread's outbox of progress values: the latest per task, sent once per event-loop turn.
 * A task that reports in a tight loop costs a Map write per call and never waits on a message.
 */
import type { MessagePort } from 'node:worker_threads';
import { type FromThread, type LogMessage, type ProgressWire, toErrorWire } from '../protocol.js';

export class ProgressOutbox {
  private pending = new Map<number, ProgressWire>();
  private scheduled = false;

  constructor(private readonly port: MessagePort) {}

  report(id: number, attempt: number, value: unknown): void {
    this.pending.set(id, [id, attempt, value]);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  flush(): void {
    this.scheduled = false;
    if (this.pending.size === 0) return;
    const items = [...this.pending.values()];
    this.pending.clear();
    try {
      this.port.postMessage({ t: 'progress', items } satisfies FromThread);
    } catch {
      // A value that cannot be cloned is dropped (with a warning); the others still go.
      for (const item of items) {
        try {
          this.port.postMessage({ t: 'progress', items: [item] } satisfies FromThread);
        } catch (err) {
          const msg = `task ${item[0]} reported a progress value that cannot be sent: ${toErrorWire(err).message}`;
          this.port.postMessage({ t: 'log', level: 'warn', msg, fields: { taskId: item[0] } } satisfies LogMessage);
        }
      }
    }
  }
}
