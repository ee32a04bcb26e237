// Every engine the suite measures, behind one shape:
//   { run(arg) → Promise<result>, flood?(n, argOf, onResult), stop() → Promise<void>, engine? }
// `run` is each engine's own per-task call; `flood` (mpms only) pushes n tasks through the engine's
// own streaming API (put() + collector), which is how mpms is meant to be fed a large job.
// Peers are loaded lazily: one that is not installed (e.g. `mpms bench` from a package install)
// is reported as unavailable instead of failing the suite.
import { fork } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';

const TASKS = fileURLToPath(new URL('../workers/tasks.mjs', import.meta.url));
const WORKERPOOL_TASKS = fileURLToPath(new URL('../workers/workerpool-tasks.mjs', import.meta.url));
const BARE_CPU_CHILD = fileURLToPath(new URL('./bare-cpu-child.mjs', import.meta.url));

/**
 * The engine under test: `dist/` of this checkout, or the build at MPMS_DIST (the suite's
 * `--baseline`: a before/after comparison in one run).
 */
export function importMpms() {
  const dist = process.env.MPMS_DIST;
  return import(dist ? pathToFileURL(path.join(path.resolve(dist), 'index.js')).href : '../../dist/index.js');
}

/** What each peer is, for tables: `n` = processes × threads, the parallelism every peer gets. */
export const PEERS = {
  mpms: { label: (c) => `mpms P${c.processes}×T${c.threads}${c.concurrency > 1 ? `×C${c.concurrency}` : ''}` },
  tinypool: { label: (c) => `tinypool, ${c.processes * c.threads} threads${c.concurrency > 1 ? ` ×C${c.concurrency}` : ''}` },
  'tinypool-process': { label: (c) => `tinypool child_process, ${c.processes * c.threads} processes` },
  piscina: { label: (c) => `piscina, ${c.processes * c.threads} threads${c.concurrency > 1 ? ` ×C${c.concurrency}` : ''}` },
  workerpool: { label: (c) => `workerpool process, ${c.processes * c.threads} processes` },
  bare: { label: (c) => `bare echo P${c.processes}×T${c.threads}` },
  'bare-cpu': { label: (c) => `bare processes ×${c.processes} (no engine)` },
  inline: { label: () => 'in the master itself (no workers)' },
};

/** A warm-up argument each task function accepts cheaply. */
const warmArg = (fn) => (fn === 'alloc' ? 1 : 0);

/**
 * Starts `name` with `config` = { processes, threads, concurrency, fn, mpms? } and warms every
 * worker with one task each, so start-up figures compare like with like.
 */
export async function createPeer(name, config) {
  const { processes, threads, concurrency = 1, fn } = config;
  const n = processes * threads;
  let peer;
  switch (name) {
    case 'mpms':
      return createMpms(config);
    case 'tinypool':
    case 'tinypool-process': {
      const { default: Tinypool } = await import('tinypool');
      const pool = new Tinypool({
        filename: TASKS,
        name: fn,
        minThreads: n,
        maxThreads: n,
        concurrentTasksPerWorker: concurrency,
        runtime: name === 'tinypool' ? 'worker_threads' : 'child_process',
      });
      peer = { run: (arg) => pool.run(arg), stop: () => pool.destroy() };
      break;
    }
    case 'piscina': {
      const { Piscina } = await import('piscina');
      const pool = new Piscina({ filename: pathToFileURL(TASKS).href, name: fn, minThreads: n, maxThreads: n, concurrentTasksPerWorker: concurrency, idleTimeout: 60_000 });
      peer = { run: (arg) => pool.run(arg), stop: () => pool.destroy() };
      break;
    }
    case 'workerpool': {
      const { default: workerpool } = await import('workerpool');
      const pool = workerpool.pool(WORKERPOOL_TASKS, { workerType: 'process', minWorkers: n, maxWorkers: n });
      peer = { run: (arg) => Promise.resolve(pool.exec(fn, [arg])), stop: () => pool.terminate() };
      break;
    }
    case 'bare': {
      const { createBareEcho } = await import('./bare-echo.mjs');
      return createBareEcho({ processes, threads, fn, ...config.bare });
    }
    case 'bare-cpu':
      return createBareCpu(processes);
    case 'inline': {
      // What this machine's timers allow at all: the task function called in this process.
      const tasks = await import('../workers/tasks.mjs');
      return { run: async (arg) => tasks[fn](arg), stop: async () => {} };
    }
    default:
      throw new Error(`unknown peer ${name}`);
  }
  await Promise.all(Array.from({ length: n * concurrency }, () => peer.run(warmArg(fn))));
  return peer;
}

async function createMpms({ processes, threads, concurrency = 1, fn, mpms: extra = {} }) {
  const { MPMS } = await importMpms();
  const pending = new Map(); // taskId -> { resolve, reject } for run()
  let sink = null; // flood()'s result handler
  const engine = new MPMS({
    worker: TASKS,
    export: fn,
    processes,
    threads,
    concurrency,
    ...extra,
    collector(meta, result) {
      const p = pending.get(meta.taskId);
      if (p) {
        pending.delete(meta.taskId);
        return meta.status === 'ok' ? p.resolve(result) : p.reject(result);
      }
      sink?.(meta, result);
    },
  });
  await engine.start();
  return {
    engine,
    // A result cannot arrive before put() resolves: it needs IPC round trips, put's resolution a microtask.
    run: (arg) => engine.put(arg).then((id) => new Promise((resolve, reject) => pending.set(id, { resolve, reject }))),
    async flood(count, argOf, onResult) {
      let done = 0;
      let finish;
      const all = new Promise((resolve) => (finish = resolve));
      sink = (meta, result) => {
        onResult(meta.args[0], result, meta.status === 'ok');
        if (++done === count) finish();
      };
      for (let i = 0; i < count; i++) await engine.put(argOf(i));
      await all;
      sink = null;
    },
    stop: () => engine.join(),
  };
}

/** P forked processes that run their share of CPU tasks with no per-task messages: the ideal. */
async function createBareCpu(processes) {
  const procs = await Promise.all(
    Array.from({ length: processes }, () => {
      const proc = fork(BARE_CPU_CHILD, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      return new Promise((resolve, reject) => {
        proc.once('exit', () => reject(new Error('bare cpu child exited before it was ready')));
        proc.once('message', () => resolve(proc));
      });
    }),
  );
  return {
    run: () => Promise.reject(new Error('bare-cpu runs whole floods only')),
    async flood(count, argOf, onResult) {
      const ms = argOf(0);
      await Promise.all(
        procs.map(
          (proc, k) =>
            new Promise((resolve) => {
              const share = Math.floor(count / processes) + (k < count % processes ? 1 : 0);
              proc.once('message', resolve);
              proc.send({ count: share, ms });
            }),
        ),
      );
      for (let i = 0; i < count; i++) onResult(ms, 0, true);
    },
    stop: () =>
      Promise.all(procs.map((proc) => new Promise((resolve) => (proc.once('exit', resolve), proc.disconnect())))),
  };
}

/**
 * Pushes `count` tasks through `peer`: its own flood() if it has one, else run() with at most
 * `window` tasks in flight (bounded memory, like mpms's queue bound). `onResult(arg, result, ok)`.
 */
export function windowedFlood(peer, count, argOf, onResult, window) {
  if (peer.flood) return peer.flood(count, argOf, onResult);
  return new Promise((resolve, reject) => {
    let next = 0;
    let done = 0;
    let inflight = 0;
    const launch = () => {
      while (inflight < window && next < count) {
        const arg = argOf(next++);
        inflight++;
        peer.run(arg).then((result) => {
          inflight--;
          onResult(arg, result, true);
          if (++done === count) resolve();
          else launch();
        }, reject);
      }
    };
    launch();
  });
}
