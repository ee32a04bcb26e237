/**
 * How many of the machine's cores were idle lately (all processes, not just ours): whether
 * booting a thread ahead of time would use CPU that nothing else wanted.
 */
import os from 'node:os';

/** The window is the last WINDOW_MS to 2 × WINDOW_MS: recent, yet long enough to average. */
const WINDOW_MS = 250;

interface CpuTimes {
  idle: number;
  total: number;
}

function readTimes(): CpuTimes {
  let idle = 0;
  let total = 0;
  for (const { times } of os.cpus()) {
    idle += times.idle;
    total += times.user + times.nice + times.sys + times.idle + times.irq;
  }
  return { idle, total };
}

export class IdleCores {
  private older = readTimes();
  private newer = this.older;
  private at = Date.now();

  /** Keeps the window recent; cheap to call often (it reads the counters at most every WINDOW_MS). */
  tick(now: number): void {
    if (now - this.at < WINDOW_MS) return;
    this.older = this.newer;
    this.newer = readTimes();
    this.at = now;
  }

  /** Idle cores, on average, over the window (or since the last tick, when ticks stopped). */
  now(): number {
    const cur = readTimes();
    const total = cur.total - this.older.total;
    return total > 0 ? ((cur.idle - this.older.idle) / total) * os.cpus().length : 0;
  }
}
