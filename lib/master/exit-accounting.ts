/**
 * Crash accounting of a dead child, from facts only: which of the tasks it held had started
 * (its threads' start logs say, exactly) and which had not, and the wire form of the outcome
 * of each started one. The engine charges them (retry or settle) and asks the restart policy
 * about the process; nothing here decides a restart.
 */
import { killRecorded, recordsFile, takeRecords } from '../shared/descendants.js';
import { cancelled, crashed } from '../shared/outcomes.js';
import { takeStartLogs } from '../shared/start-log.js';
import type { ErrorWire } from '../protocol.js';
import type { ChildHandle } from './child-handle.js';
import type { Ledger, TaskRecord } from './ledger.js';

export interface ChildExitFacts {
  /** Held tasks whose current attempt had started: the death is theirs. */
  started: TaskRecord[];
  /** Held tasks that never started: they go back to the queue, in order. */
  unstarted: TaskRecord[];
  /** How it ended, for logs and messages: `was killed by SIGKILL`, `exited with code 1`. */
  how: string;
}

/**
 * Reads what a dead child left: kills its descendants that left its process group (recorded
 * by its watchdog; the group kill does not reach them) and sorts the tasks it held.
 */
export function childExitFacts(c: ChildHandle, ledger: Ledger, startLogDir: string): ChildExitFacts {
  killRecorded(takeRecords(recordsFile(startLogDir, c.pid)), c.pid);
  const log = takeStartLogs(startLogDir, c.pid);
  const started: TaskRecord[] = [];
  const unstarted: TaskRecord[] = [];
  for (const rec of ledger.records()) {
    if (rec.child !== c) continue;
    if (log.get(rec.id)?.has(rec.attempts + 1)) started.push(rec);
    else unstarted.push(rec);
  }
  const how = c.signal ? `was killed by ${c.signal}` : `exited with code ${c.exitCode}`;
  return { started, unstarted, how };
}

/** The outcome of a task that was running in a child that died: `cancelled` by a shutdown, else `crashed`. */
export function diedWith(c: ChildHandle, rec: TaskRecord, how: string, stopping: boolean): ErrorWire {
  if (stopping) return cancelled(`task ${rec.id} was still running when the engine stopped its process (${how})`);
  return crashed(`process ${c.index} (pid ${c.pid}) ${how} while holding task ${rec.id}`, 'process', c.exitCode, c.signal);
}
