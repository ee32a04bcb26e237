// CPU time and wake-ups of processes, per thread, from Linux /proc: what an engine costs per task
// regardless of how loaded the machine is (wall time is not). Every figure is for live
// processes only: sample before the engine stops its children.
import { readdirSync, readFileSync } from 'node:fs';

const TICK_MS = 10; // USER_HZ = 100 on Linux

function tidsOf(pid) {
  try {
    return readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
}

/**
 * This process's threads when this module was loaded: Node's own (V8's helpers) before any pool
 * started a worker thread. In a process that kept the name `node`, a worker thread is also
 * named `node`, so its own threads are told apart by this list instead of by name.
 */
const OWN_RUNTIME_THREADS = new Set(tidsOf(process.pid));

/** The pids of `pid`'s live children (direct descendants), from every thread's children list. */
export function childPids(pid) {
  const out = [];
  let tids;
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/)) if (c) out.push(Number(c));
    } catch {
      // Thread gone, or no children file: nothing to add.
    }
  }
  return out;
}

/** `pid` and all its live descendants. */
export function processTree(pid) {
  const out = [];
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop();
    out.push(p);
    stack.push(...childPids(p));
  }
  return out;
}

function threadCpuMs(pid, tid) {
  try {
    // Nanoseconds on a CPU: far finer than the 10 ms ticks of stat.
    return Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
  } catch {
    const s = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * TICK_MS;
  }
}

/**
 * Per-thread CPU ms and voluntary context switches (wake-ups after a wait) of process `pid`,
 * classed: `main` (its main thread), `v8` (V8's helper threads: background compiles and GC —
 * in another process, those named `node`: they start before an mpms child renames itself; in
 * this one, those that existed when this module loaded), `workers` (every other thread:
 * worker_threads and libuv's pool).
 */
export function processCpu(pid) {
  const r = { main: 0, v8: 0, workers: 0, wakeups: 0, mainWakeups: 0, v8Wakeups: 0, workerWakeups: 0 };
  let tids;
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return r;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ms = threadCpuMs(pid, tid);
      const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      const vol = Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0);
      r.wakeups += vol;
      if (Number(tid) === pid) {
        r.main += ms;
        r.mainWakeups += vol;
      } else if (pid === process.pid ? OWN_RUNTIME_THREADS.has(tid) : comm === 'node') {
        r.v8 += ms;
        r.v8Wakeups += vol;
      } else {
        r.workers += ms;
        r.workerWakeups += vol;
      }
    } catch {
      // The thread exited between the listing and the read.
    }
  }
  return r;
}

/** A snapshot of `pids` (see processCpu); `diff(a, b)` gives what each spent in between. */
export function snapshot(pids) {
  return new Map(pids.map((p) => [p, processCpu(p)]));
}

/** Sums b − a over the pids of `a` (pids missing from `b` count 0: sample before they exit). */
export function spent(a, b, pids = [...a.keys()]) {
  const out = { main: 0, v8: 0, workers: 0, wakeups: 0, mainWakeups: 0, v8Wakeups: 0, workerWakeups: 0 };
  for (const p of pids) {
    const x = a.get(p);
    const y = b.get(p);
    if (!x || !y) continue;
    for (const k of Object.keys(out)) out[k] += y[k] - x[k];
  }
  out.total = out.main + out.v8 + out.workers;
  return out;
}
