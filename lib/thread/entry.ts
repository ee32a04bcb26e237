/**
 * Entry of every worker thread: load the worker module, run `threadInitializer`, serve tasks
 * until told (or deciding) to retire, then wait for what runs, run `threadFinalizer`, let
 * background work drain, exit. Every hook is bounded by `hookTimeout`, the drain by
 * `threadDrainTimeout`; the child additionally bounds the whole thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { toErrorWire, type FromThread, type StartPhase, type ThreadInit, type ToThread, type LogLevel } from '../protocol.js';
import { loadWorkerModule, taskFunction, type Hook, type WorkerModule } from '../shared/worker-module.js';
import { StepTimeoutError, withTimeout } from '../shared/bounded.js';
import { registry } from './context.js';
import { Runner } from './runner.js';
import { Exports } from './exports.js';
import { ProgressOutbox } from './progress.js';
import { StartLog } from '../shared/start-log.js';
import type { HookContext } from '../types.js';
import { startFailed } from '../shared/outcomes.js';

type TaskFn = (...args: unknown[]) => unknown;

const init = workerData as ThreadInit;
const port = parentPort!;
const post = (msg: FromThread) => port.postMessage(msg);
const log = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => post({ t: 'log', level, msg, fields });

/** Where start-up is, until `ready`: an exit during start-up is reported with it. */
let phase: StartPhase | undefined = 'load';

function fatal(at: StartPhase, err: unknown): undefined {
  phase = undefined;
  post({ t: 'fatal', phase: at, error: toErrorWire(err) });
  // The child terminates us after this message; exiting here too keeps a stuck handle from holding the thread.
  setImmediate(() => process.exit(1));
}

// The worker module (or a hook) may end this thread during start-up (process.exit(), or
// nothing left to run): say where, instead of a bare "no ready signal". Messages posted from
// 'exit' are delivered.
process.on('exit', (code) => {
  if (phase === undefined) return;
  const at = phase;
  phase = undefined;
  const why = '(process.exit() in the worker module, or nothing left to run)';
  const message = `the thread exited with code ${code} during ${describePhase(at)} ${why}`;
  post({ t: 'fatal', phase: at, error: startFailed(message) });
});

function describePhase(at: StartPhase): string {
  return at === 'load' ? 'the loading of the worker module' : at;
}

/**
 * Runs a hook under `hookTimeout`. The time limit holds the event loop: a hook that waits on a
 * promise nothing will settle must end as a timeout that names it, not as a thread whose loop
 * ran empty and exited without a word.
 */
async function runHook(name: string, hook: Hook, ctx: HookContext): Promise<void> {
  const hold = setInterval(() => {}, 1 << 30);
  try {
    await withTimeout(hook(ctx), init.hookTimeout, name);
  } catch (err) {
    if (!(err instanceof StepTimeoutError)) throw err;
    throw new StepTimeoutError(`${name} did not finish within its hookTimeout of ${init.hookTimeout} ms`);
  } finally {
    clearInterval(hold);
  }
}

/** Promises a task handed to `keepAlive`: retirement waits for them, bounded. */
const kept = new Set<Promise<unknown>>();

/** The start log opened, the worker module loaded, its export checked, `threadInitializer` run; undefined if that failed (reported). */
async function startUp(): Promise<{ startLog: StartLog; mod: WorkerModule; fn: TaskFn; ctx: HookContext } | undefined> {
  // First: a disk that cannot hold the start log fails this thread's start, with the cause named.
  let startLog: StartLog;
  try {
    startLog = new StartLog(init.startLog);
  } catch (err) {
    return fatal('threadStart', err);
  }
  let mod: WorkerModule;
  try {
    mod = await loadWorkerModule(init.module);
  } catch (err) {
    return fatal('load', err);
  }
  phase = 'export';
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
    phase = 'threadInitializer';
    try {
      await runHook('threadInitializer', initializer, ctx);
    } catch (err) {
      return fatal('threadInitializer', err);
    }
  }
  return { startLog, mod, fn, ctx };
}

async function main(): Promise<void> {
  const started = await startUp();
  if (!started) return;
  const { startLog, mod, fn, ctx } = started;

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

  const progress = new ProgressOutbox(port);
  registry.progress = (state, value) => progress.report(state.id, state.attempt, value);

  const runner = new Runner(port, init.slots, {
    fn,
    exports: new Exports(mod, init.module),
    progress,
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

  const drain = new Drain();
  let exiting = false;
  runner.onIdle = () => {
    if (exiting) return;
    exiting = true;
    void finalizeAndDrain(runner, mod, ctx, drain);
  };

  port.on('message', (msg: ToThread) => {
    switch (msg.t) {
      case 'tasks':
        return runner.accept(msg.tasks);
      case 'abort':
        return runner.abort(msg.id, msg.attempt, msg.reason);
      case 'retire':
        if (msg.deadlineAt !== undefined) drain.shortenTo(msg.deadlineAt);
        return runner.retire(msg.reason, msg.detail);
    }
  });

  phase = undefined;
  post({ t: 'ready' });
}

/** Once nothing runs any more: `keepAlive` work (bounded), then `threadFinalizer`, then the drain. */
async function finalizeAndDrain(runner: Runner, mod: WorkerModule, ctx: HookContext, drain: Drain): Promise<void> {
  runner.flush();
  if (kept.size) {
    try {
      await runHook('keepAlive work', () => Promise.all(kept), ctx);
    } catch (err) {
      log('warn', (err as Error).message);
    }
  }
  const finalizer = mod.hook('threadFinalizer');
  if (finalizer) {
    try {
      await runHook('threadFinalizer', finalizer, ctx);
    } catch (err) {
      log('error', `threadFinalizer failed: ${toErrorWire(err).message}`, { err: toErrorWire(err) });
    }
  }
  runner.flush();
  drain.start();
}

/**
 * The last step of a retiring thread (seed 002: a recycled worker must not cut the background
 * work its tasks started). After the finalizer, nothing of ours holds the event loop: what
 * still runs (a timer, an upload, a write a task did not await) finishes, and the thread then
 * exits on its own, with code 0. `threadDrainTimeout` (or a shutdown's deadline) bounds that; when it
 * cuts work still pending, the thread names it (`process.getActiveResourcesInfo()`) before it
 * exits, and the engine logs it and counts it (`metrics().cutOnExit`).
 */
class Drain {
  private started = 0;
  private deadlineAt = Infinity;
  private timer: NodeJS.Timeout | undefined;

  start(): void {
    this.started = Date.now();
    this.deadlineAt = Math.min(this.deadlineAt, this.started + init.drainMs);
    // Our own handle: messages still arrive while anything else keeps the loop alive.
    port.unref();
    const pending = process.getActiveResourcesInfo();
    if (pending.length === 0) return; // the loop ends now; the thread exits by itself
    post({ t: 'draining', pending, deadlineAt: this.deadlineAt });
    this.arm();
  }

  /** A shutdown asks the thread to be gone by `at`. */
  shortenTo(at: number): void {
    if (at >= this.deadlineAt) return;
    this.deadlineAt = at;
    if (this.started) this.arm();
  }

  private arm(): void {
    clearTimeout(this.timer);
    // Unref'd: it bounds the drain, it must not prolong it.
    this.timer = setTimeout(() => this.cut(), Math.max(0, this.deadlineAt - Date.now()));
    this.timer.unref();
  }

  private cut(): void {
    post({ t: 'cut', pending: process.getActiveResourcesInfo(), waitedMs: Date.now() - this.started });
    process.exit(0);
  }
}

void main();
