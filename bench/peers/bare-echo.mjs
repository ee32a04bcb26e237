#!/usr/bin/env node
// The floor of the two-hop design: master -> P forked children (advanced serialization) -> T
// worker_threads each, with credit windows on both hops and batching both ways. No ledger, no
// timeouts, no supervision: whatever mpms costs beyond this is the price of its guarantees.
// Tasks run a sync function of bench/workers/tasks.mjs (noop, alloc, spin).
//
// Usage: node bench/peers/bare-echo.mjs [--processes 2] [--threads 2] [--tasks 200000]
//                                       [--child-window 256] [--thread-window 64]

import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const CHILD = fileURLToPath(new URL('./bare-echo-child.mjs', import.meta.url));

export const DEFAULTS = { processes: 2, threads: 2, childWindow: 256, threadWindow: 64, fn: 'noop' };

/**
 * Starts a bare pool. `run(arg)` resolves with the task's result; tasks wait in the master while
 * every child's window is full, and leave in batches: at once when a child's pipe is idle,
 * coalesced while a write is under way. A child that dies rejects every pending task.
 */
export async function createBareEcho(opts = {}) {
  const o = { ...DEFAULTS, ...opts };
  const pending = new Map(); // id -> { resolve, reject }
  const waiting = []; // [id, arg] not yet sent (every window full)
  let waitHead = 0;
  let nextId = 0;
  let stopping = false;
  const children = [];

  const failAll = (err) => {
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };
  const flush = (c) => {
    if (c.sending || c.outbox.length === 0) return;
    const batch = c.outbox;
    c.outbox = [];
    c.sending = true;
    c.proc.send(batch, (err) => {
      c.sending = false;
      if (err) return failAll(err);
      flush(c);
    });
  };
  const dispatch = () => {
    for (const c of children) {
      while (c.inflight < o.childWindow && waitHead < waiting.length) {
        c.outbox.push(waiting[waitHead++]);
        c.inflight++;
      }
      flush(c);
    }
    if (waitHead === waiting.length) {
      waiting.length = 0;
      waitHead = 0;
    }
  };

  await Promise.all(
    Array.from({ length: o.processes }, () => {
      const proc = fork(CHILD, [String(o.threads), String(o.threadWindow), o.fn], {
        serialization: 'advanced',
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      const c = { proc, inflight: 0, sending: false, outbox: [] };
      children.push(c);
      proc.on('exit', (code, signal) => {
        if (!stopping) failAll(new Error(`bare echo child ${proc.pid} exited (code ${code}, signal ${signal})`));
      });
      proc.on('error', failAll);
      return new Promise((resolve, reject) => {
        proc.once('exit', () => reject(new Error('bare echo child exited before it was ready')));
        proc.once('message', (m) => {
          if (m !== 'ready') return reject(new Error(`child said ${m}`));
          proc.on('message', (results) => {
            c.inflight -= results.length;
            for (let k = 0; k < results.length; k++) {
              const p = pending.get(results[k][0]);
              pending.delete(results[k][0]);
              p?.resolve(results[k][1]);
            }
            dispatch();
          });
          resolve();
        });
      });
    }),
  );

  return {
    run(arg) {
      const id = nextId++;
      const promise = new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
      waiting.push([id, arg]);
      // Coalesce the tasks of this turn into one batch per child.
      if (waiting.length - waitHead === 1) queueMicrotask(dispatch);
      return promise;
    },
    /** Closing the channel is the stop signal; SIGKILL after 3 s so a stuck child never outlives us. */
    stop() {
      stopping = true;
      return Promise.all(
        children.map(({ proc }) => {
          if (proc.exitCode !== null || proc.signalCode !== null) return undefined;
          return new Promise((resolve) => {
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
    },
  };
}

async function main() {
  const { values } = parseArgs({
    options: {
      processes: { type: 'string', default: String(DEFAULTS.processes) },
      threads: { type: 'string', default: String(DEFAULTS.threads) },
      tasks: { type: 'string', default: '200000' },
      'child-window': { type: 'string', default: String(DEFAULTS.childWindow) },
      'thread-window': { type: 'string', default: String(DEFAULTS.threadWindow) },
    },
  });
  const { windowedFlood } = await import('./index.mjs');
  const n = Number(values.tasks);
  const t0 = performance.now();
  const pool = await createBareEcho({
    processes: +values.processes,
    threads: +values.threads,
    childWindow: +values['child-window'],
    threadWindow: +values['thread-window'],
  });
  const startMs = performance.now() - t0;
  const t1 = performance.now();
  let bad = 0;
  await windowedFlood(pool, n, (i) => i, (a, r) => (bad += r === a ? 0 : 1), 2 * +values['child-window'] * +values.processes);
  const elapsed = performance.now() - t1;
  await pool.stop();
  console.log(`bare echo P${values.processes}×T${values.threads}: ${Math.round((n / elapsed) * 1000)} tasks/s, start ${Math.round(startMs)} ms, ${bad} wrong`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
