/**
 * The child's watchdog: a small worker thread that nothing the child runs can block. The
 * child's own "master gone" check (its IPC channel closing) needs the child's event loop, which
 * a processInitializer or the relay stuck in synchronous code holds for good; this thread has
 * its own loop.
 *
 * - Every POLL_MS it compares `process.ppid` with the master's pid: once the master is gone
 *   (the child was re-parented), it kills the child's descendants, then the child's own process
 *   group (this thread with it).
 * - Every SCAN_MS it records the child's descendants (shared/descendants.ts), and writes the
 *   record beside the start logs, where the master reads it if the child is killed.
 * - On `reap` (the child exits cleanly) it kills what it recorded and what lives now, and answers.
 * - When the master is gone it also removes the engine's start-log directory, which the master's
 *   teardown would have removed.
 */
import fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import {
  descendantsOf,
  isGone,
  killRecorded,
  recordsFile,
  writeRecords,
  type ProcRecord,
} from '../shared/descendants.js';
import type { ToWatchdog, WatchdogData } from '../protocol.js';

const { masterPid, childPid, pollMs, scanMs } = workerData as WatchdogData;
const port = parentPort!;
/** Every descendant seen, by pid and start time (a pid reused later is a different entry). */
const recorded = new Map<string, ProcRecord>();
let file: string | undefined;
/** The engine's start-log directory, once the child knows it. */
let dir: string | undefined;

function scan(): void {
  let changed = false;
  for (const r of descendantsOf(childPid)) {
    const key = `${r.pid}:${r.start}`;
    if (recorded.has(key)) continue;
    recorded.set(key, r);
    changed = true;
  }
  // Tasks that run a program each (ffmpeg per file) must not grow the record without end.
  for (const [key, r] of recorded) {
    if (isGone(r)) {
      recorded.delete(key);
      changed = true;
    }
  }
  if (!file || !changed) return;
  try {
    writeRecords(file, recorded.values());
  } catch {
    // A full disk: the record stays in memory; the clean and the orphaned paths still use it.
  }
}

function reap(): void {
  scan();
  killRecorded(recorded.values(), childPid);
}

function orphaned(): void {
  reap();
  // The master would have removed the engine's directory at its teardown; it no longer can.
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  try {
    process.kill(-childPid, 'SIGKILL');
  } catch {
    process.kill(childPid, 'SIGKILL');
  }
}

setInterval(() => {
  if (process.ppid !== masterPid) orphaned();
}, pollMs);
setInterval(scan, scanMs);

port.on('message', (msg: ToWatchdog) => {
  switch (msg.t) {
    case 'dir':
      dir = msg.dir;
      file = recordsFile(msg.dir, childPid);
      return scan();
    case 'reap':
      reap();
      return port.postMessage('reaped');
    case 'orphaned':
      return orphaned();
  }
});
