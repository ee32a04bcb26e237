/**
 * Entry of every worker thread: load the worker module, run `threadInitializer`, serve tasks
 * until told (or deciding) to retire, then wait for what runs, run `threadFinalizer`, exit.
 * Every hook is bounded by `hookTimeout`; the child additionally bounds the whole thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { toErrorWire, type FromThread, type StartPhase, type ThreadInit, type ToThread, type LogLevel } from '../protocol.js';
import { loadWorkerModule, taskFunction } from '../shared/worker-module.js';
import { withTimeout } from '../shared/bounded.js';
import { registry } from './context.js';
import { Runner } from './runner.js';
import { StartLog } from '../shared/start-log.js';
import type { HookContext } from '../types.js';

const init = workerData as ThreadInit;
const port = parentPort!;
const post = (msg: FromThread) => port.postMessage(msg);
const log = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => post({ t: 'log', level, msg, fields });

function fatal(phase: StartPhase, err: unknown): void {
  post({ t: 'fatal', phase, error: toErrorWire(err) });
  // The child terminates us after this message; exiting here too keeps a stuck handle from holding the thread.
  setImmediate(() => process.exit(1));
}

/** Promises a task handed to `keepAlive`: retirement waits for them, bounded. */
const kept = new Set<Promise<unknown>>();

async function main(): Promise<void> {
  // First: a disk that cannot hold the start log fails this thread's start, with the cause named.
  let startLog: StartLog;
  try {
    startLog = new StartLog(init.startLog);
  } catch (err) {
    return fatal('threadStart', err);
  }
  let mod;
  try {
    mod = await loadWorkerModule(init.module);
  } catch (err) {
    return fatal('load', err);
  }
  const fn = taskFunction(mod, init.exportName, init.module);
  if (typeof fn === 'string') return fatal('export', new Error(fn));

  const ctx: HookContext = {
    name: init.name,
    processIndex: init.processIndex,
    threadIndex: init.threadIndex,
    initArgs: init.initArgs,
    processData: init.processData,
  };
  const initializer = mod.hook('threadInitializer');
  if (initializer) {
    try {
      await withTimeout(initializer(ctx), init.hookTimeout, 'threadInitializer');
    } catch (err) {
      return fatal('threadInitializer', err);
    }
  }

  registry.scope = {
    processIndex: init.processIndex,
    threadIndex: init.threadIndex,
    processData: init.processData,
    keepAlive(promise) {
      const p = Promise.resolve(promise).catch((err) => log('warn', 'a keepAlive promise rejected', { err: toErrorWire(err) }));
      kept.add(p);
      void p.finally(() => kept.delete(p));
    },
  };

  const runner = new Runner(port, init.slots, {
    fn,
    threadIndex: init.threadIndex,
    startLog,
    concurrency: init.concurrency,
    lifecycle: init.lifecycle,
    lifecycleMemory: init.lifecycleMemory,
    gracefulDieErrors: init.gracefulDieErrors,
  });

  // process.exit() in a task, or an uncaught error, ends this thread: outcomes already decided
  // still leave (messages posted from 'exit' are delivered), so only the culprit is `crashed`.
  process.on('exit', () => runner.flush());

  let exiting = false;
  runner.onIdle = () => {
    if (exiting) return;
    exiting = true;
    void finalizeAndExit();
  };
  const finalizeAndExit = async () => {
    runner.flush();
    if (kept.size) {
      try {
        await withTimeout(Promise.all(kept), init.hookTimeout, 'keepAlive work');
      } catch (err) {
        log('warn', (err as Error).message);
      }
    }
    const finalizer = mod.hook('threadFinalizer');
    if (finalizer) {
      try {
        await withTimeout(finalizer(ctx), init.hookTimeout, 'threadFinalizer');
      } catch (err) {
        log('error', `threadFinalizer failed: ${(err as Error)?.message}`, { err: toErrorWire(err) });
      }
    }
    runner.flush();
    // Explicit exit: a handle the user's code left open must not keep a retired thread alive.
    process.exit(0);
  };

  port.on('message', (msg: ToThread) => {
    switch (msg.t) {
      case 'tasks':
        return runner.accept(msg.tasks);
      case 'abort':
        return runner.abort(msg.ids, msg.reason);
      case 'retire':
        return runner.retire(msg.reason, msg.detail);
    }
  });

  if (init.lifecycleDuration > 0) {
    setTimeout(() => runner.retire('lifecycle', `${init.lifecycleDuration} ms`), init.lifecycleDuration).unref();
  }
  post({ t: 'ready' });
}

void main();
