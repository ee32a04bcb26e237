#!/usr/bin/env node
// The floor of the two-hop design: master -> P forked children (advanced serialization) -> T
// worker_threads each, with no-op `[id, args]` tasks, credit windows on both hops and batching
// both ways. No ledger, no timeouts, no supervision: whatever the engine costs beyond this is
// the price of its guarantees.
//
// Usage: node bench/bare-echo.mjs [--processes 2] [--threads 2] [--tasks 200000] [--reps 3]
//                                 [--child-window 256] [--thread-window 64]

import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const CHILD = fileURLToPath(new URL('./bare-echo-child.mjs', import.meta.url));

export const DEFAULTS = { processes: 2, threads: 2, tasks: 200_000, childWindow: 256, threadWindow: 64, rttTasks: 500 };

/**
 * Starts a bare pool, pushes `tasks` no-op tasks through it, then times `rttTasks` sequential
 * single tasks on the idle pool, and stops it. Rejects (after killing its children) if a child
 * dies, a task comes back twice or never, or `timeoutMs` passes.
 * @returns {Promise<{tasks:number, elapsedMs:number, tasksPerSec:number, startupMs:number,
 *   stopMs:number, rtt:{p50:number, p99:number}}>}  times in ms
 */
export async function runBareEcho(opts = {}) {
  const o = { ...DEFAULTS, timeoutMs: 120_000, ...opts };
  const children = [];
  let failed = null;
  let failNow = () => {};
  const failure = new Promise((_, reject) => {
    failNow = (err) => {
      failed ??= err;
      reject(failed);
    };
  });
  failure.catch(() => {});
  const guard = setTimeout(() => failNow(new Error(`bare echo exceeded ${o.timeoutMs} ms`)), o.timeoutMs);

  try {
    const t0 = performance.now();
    for (let p = 0; p < o.processes; p++) {
      const proc = fork(CHILD, [String(o.threads), String(o.threadWindow)], {
        serialization: 'advanced',
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      const child = { proc, inflight: 0, sending: false, onResults: null, stopping: false };
      proc.on('exit', (code, signal) => {
        if (!child.stopping) failNow(new Error(`bare echo child ${proc.pid} exited (code ${code}, signal ${signal})`));
      });
      proc.on('error', failNow);
      children.push(child);
    }
    await Promise.race([
      failure,
      Promise.all(
        children.map(
          (c) =>
            new Promise((resolve) =>
              c.proc.once('message', (m) => {
                if (m !== 'ready') failNow(new Error(`child said ${m}`));
                c.proc.on('message', (batch) => c.onResults(c, batch));
                resolve();
              }),
            ),
        ),
      ),
    ]);
    const startupMs = performance.now() - t0;

    // ---- throughput: every child pulls from one task counter, up to its credit window
    const N = o.tasks;
    const seen = new Uint8Array(N);
    let next = 0;
    let done = 0;
    let finish;
    const allDone = new Promise((resolve) => (finish = resolve));

    const pump = (c) => {
      // One send in flight per child: credits freed meanwhile make the next batch bigger.
      if (c.sending || next >= N) return;
      const n = Math.min(o.childWindow - c.inflight, N - next);
      if (n <= 0) return;
      const batch = new Array(n);
      for (let k = 0; k < n; k++, next++) batch[k] = [next, next];
      c.inflight += n;
      c.sending = true;
      c.proc.send(batch, (err) => {
        c.sending = false;
        if (err) return failNow(err);
        pump(c);
      });
    };
    const onThroughput = (c, results) => {
      c.inflight -= results.length;
      for (let k = 0; k < results.length; k++) {
        const [id, value] = results[k];
        if (seen[id] || value !== id) return failNow(new Error(`task ${id} came back twice or wrong (${value})`));
        seen[id] = 1;
      }
      done += results.length;
      if (done === N) finish();
      else pump(c);
    };

    for (const c of children) c.onResults = onThroughput;
    const t1 = performance.now();
    for (const c of children) pump(c);
    await Promise.race([failure, allDone]);
    const elapsedMs = performance.now() - t1;

    // ---- idle round trip: one task at a time, alternating children
    const rtts = [];
    let waiter = null;
    for (const c of children) c.onResults = (_, results) => waiter(results);
    for (let i = 0; i < o.rttTasks; i++) {
      const c = children[i % children.length];
      const id = N + i;
      const s = process.hrtime.bigint();
      const got = new Promise((resolve) => (waiter = resolve));
      c.proc.send([[id, id]]);
      const results = await Promise.race([failure, got]);
      rtts.push(Number(process.hrtime.bigint() - s) / 1e6);
      if (results.length !== 1 || results[0][0] !== id) throw new Error(`round trip ${id}: got ${JSON.stringify(results)}`);
    }
    rtts.sort((a, b) => a - b);
    const pct = (q) => rtts[Math.min(rtts.length - 1, Math.floor(q * rtts.length))];

    const t2 = performance.now();
    await stopChildren(children);
    const stopMs = performance.now() - t2;
    return { tasks: N, elapsedMs, tasksPerSec: (N / elapsedMs) * 1000, startupMs, stopMs, rtt: { p50: pct(0.5), p99: pct(0.99) } };
  } finally {
    clearTimeout(guard);
    await stopChildren(children);
  }
}

// Closing the channel is the stop signal; SIGKILL after 3 s so a stuck child never outlives us.
function stopChildren(children) {
  return Promise.all(
    children.map((c) => {
      const { proc } = c;
      c.stopping = true;
      return new Promise((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
        const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
        proc.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
        if (proc.connected) proc.disconnect();
        else proc.kill('SIGKILL');
      });
    }),
  );
}

async function main() {
  const { values } = parseArgs({
    options: {
      processes: { type: 'string', default: String(DEFAULTS.processes) },
      threads: { type: 'string', default: String(DEFAULTS.threads) },
      tasks: { type: 'string', default: String(DEFAULTS.tasks) },
      'child-window': { type: 'string', default: String(DEFAULTS.childWindow) },
      'thread-window': { type: 'string', default: String(DEFAULTS.threadWindow) },
      reps: { type: 'string', default: '3' },
    },
  });
  const opts = {
    processes: +values.processes,
    threads: +values.threads,
    tasks: +values.tasks,
    childWindow: +values['child-window'],
    threadWindow: +values['thread-window'],
  };
  const runs = [];
  for (let r = 0; r < +values.reps; r++) {
    const res = await runBareEcho(opts);
    runs.push(res);
    process.stderr.write(
      `rep ${r + 1}: ${Math.round(res.tasksPerSec)} tasks/s, rtt p50 ${res.rtt.p50.toFixed(3)} ms p99 ${res.rtt.p99.toFixed(3)} ms, startup ${Math.round(res.startupMs)} ms\n`,
    );
  }
  const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  };
  const span = (xs, f) => `${f(median(xs))} (${f(Math.min(...xs))}–${f(Math.max(...xs))})`;
  const int = (x) => Math.round(x).toLocaleString('en-US');
  const ms = (x) => x.toFixed(3);
  console.log(`\n### bare echo P${opts.processes}×T${opts.threads}, windows ${opts.childWindow}/child ${opts.threadWindow}/thread, ${int(opts.tasks)} tasks, ${runs.length} reps, median (min–max)\n`);
  console.log('| tasks/s | idle RTT p50 (ms) | idle RTT p99 (ms) | start-up (ms) |');
  console.log('|---|---|---|---|');
  console.log(
    `| ${span(runs.map((r) => r.tasksPerSec), int)} | ${span(runs.map((r) => r.rtt.p50), ms)} | ` +
      `${span(runs.map((r) => r.rtt.p99), ms)} | ${span(runs.map((r) => r.startupMs), int)} |`,
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await main();
}
