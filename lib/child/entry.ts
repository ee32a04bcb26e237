/**
 * Entry of every child process. Start-up, in order: start the watchdog thread, receive `init`,
 * load the worker module, check the export, run `processInitializer`, start the threads, report
 * `ready`. Shutdown, in reverse: threads finish and run `threadFinalizer`, then
 * `processFinalizer`, then the last outcomes and the threads' output are written, then the
 * descendants are killed, then the process exits. Every step is bounded.
 *
 * If the master disappears, this child kills its descendants and its whole process group at
 * once: nothing outlives the master. The watchdog thread (child/watchdog.ts) notices it even
 * while this thread is stuck in synchronous code; the IPC channel closing is the other sign.
 */
import v8 from 'node:v8';
import { Worker } from 'node:worker_threads';
import {
  Code,
  toErrorWire,
  type ChildInit,
  type FromChild,
  type LogLevel,
  type Reason,
  type StartPhase,
  type ToChild,
  type ToWatchdog,
  type WatchdogData,
} from '../protocol.js';
import { loadWorkerModule, taskFunction, type WorkerModule } from '../shared/worker-module.js';
import { LOAD_ALLOWANCE_MS, withTimeout } from '../shared/bounded.js';
import { Relay } from './relay.js';
import { threadOutputPassedOn } from './thread-slot.js';
import type { HookContext } from '../types.js';
import { startFailed } from '../shared/outcomes.js';

const send = (msg: FromChild, cb?: (err: Error | null) => void): void => {
  if (!process.connected) return cb?.(new Error('IPC channel closed'));
  process.send!(msg, undefined, undefined, cb);
};
const log = (level: LogLevel, msg: string, fields?: Record<string, unknown>): void => {
  try {
    send({ t: 'log', level, msg, fields });
  } catch {
    // A log line that cannot be cloned is not worth a crash.
  }
};

let exiting = false;

/** The longest a stopping child waits for its threads' output to be written (less if hookTimeout is shorter). */
const OUTPUT_DRAIN_MS = 10_000;

/** Resolves once every thread's stdout/stderr has been passed on and written to our own fds. */
async function outputWritten(): Promise<void> {
  await threadOutputPassedOn();
  const written = (s: NodeJS.WriteStream) =>
    new Promise<void>((resolve) => (s.writableLength === 0 ? resolve() : s.write('', () => resolve())));
  await Promise.all([written(process.stdout), written(process.stderr)]);
}

/**
 * ms between the watchdog's checks that the master lives: about the longest a child outlives a
 * SIGKILLed master (docs/guarantees.md). A check is one getppid() in a thread.
 */
const WATCHDOG_POLL_MS = 100;
/**
 * ms between records of this child's descendants. A descendant that leaves the tree (re-parented
 * to init) before a record saw it or its process group is not found at exit; a record costs
 * one /proc read per thread of this process (docs/guarantees.md).
 */
const DESCENDANT_SCAN_MS = 250;
/** The longest an exiting child waits for the watchdog to kill its descendants. */
const REAP_MS = 1000;

let watchdogGone = false;
const watchdog = startWatchdog();

function startWatchdog(): Worker | undefined {
  try {
    const w = new Worker(new URL('./watchdog.js', import.meta.url), {
      workerData: {
        masterPid: process.ppid,
        childPid: process.pid,
        pollMs: WATCHDOG_POLL_MS,
        scanMs: DESCENDANT_SCAN_MS,
      } satisfies WatchdogData,
      name: 'mpms:watchdog',
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 2 },
    });
    w.unref();
    // If it fails, the IPC channel's 'disconnect' is left to notice a lost master.
    w.on('error', () => {});
    w.once('exit', () => (watchdogGone = true));
    return w;
  } catch {
    return undefined;
  }
}

/** Kills this child's descendants (the watchdog's record and what lives now); bounded. */
function reapDescendants(): Promise<void> {
  if (!watchdog || watchdogGone) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, REAP_MS);
    const done = () => (clearTimeout(timer), resolve());
    watchdog.once('message', done).once('exit', done);
    watchdog.postMessage({ t: 'reap' } satisfies ToWatchdog);
  });
}

async function exitAfterReap(code: number): Promise<never> {
  exiting = true;
  await reapDescendants();
  process.exit(code);
}

/** The master is gone: nothing we run may outlive it. */
function orphaned(): void {
  if (exiting) return;
  exiting = true;
  const killGroup = () => {
    try {
      process.kill(-process.pid, 'SIGKILL');
    } catch {
      process.exit(1);
    }
  };
  if (!watchdog || watchdogGone) return killGroup();
  // The watchdog kills the descendants, then the group; if it cannot, we do.
  watchdog.postMessage({ t: 'orphaned' } satisfies ToWatchdog);
  setTimeout(killGroup, REAP_MS);
}
process.on('disconnect', orphaned);

/** Where start-up is, until `ready` is sent: an exit during start-up is reported with it. */
let bootPhase: StartPhase | undefined;
process.on('exit', (code) => {
  if (bootPhase === undefined || exiting) return;
  // The worker module or a hook ended the process (process.exit()): say where. A small message
  // on an idle channel is written at once, so it leaves even from 'exit'.
  const where = bootPhase === 'load' ? 'the loading of the worker module' : bootPhase;
  const message = `the process exited with code ${code} during ${where} (process.exit() in the module or a hook?)`;
  send({ t: 'fatal', phase: bootPhase, error: startFailed(message) });
});

function fail(phase: StartPhase, err: unknown): never {
  exiting = true;
  send({ t: 'fatal', phase, error: toErrorWire(err) }, () => void exitAfterReap(1));
  // If the write cannot complete, do not linger.
  setTimeout(() => process.exit(1), REAP_MS + 1000);
  return undefined as never;
}

/** The worker module loaded, its export checked and `processInitializer` run; undefined if that failed (reported). */
async function startModule(init: ChildInit): Promise<{ mod: WorkerModule; ctx: HookContext } | undefined> {
  bootPhase = 'load';
  let mod: WorkerModule;
  try {
    mod = await withTimeout(loadWorkerModule(init.module), init.hookTimeout + LOAD_ALLOWANCE_MS, `loading ${init.module}`);
  } catch (err) {
    return fail('load', err);
  }
  bootPhase = 'export';
  const fn = taskFunction(mod, init.exportName, init.module);
  if (typeof fn === 'string') return fail('export', new Error(fn));

  bootPhase = 'processInitializer';
  const ctx: HookContext = { name: init.name, processIndex: init.processIndex, threadIndex: -1, initArgs: init.initArgs, processData: undefined };
  let processData: unknown;
  const initializer = mod.hook('processInitializer');
  if (initializer) {
    try {
      processData = await withTimeout(initializer(ctx), init.hookTimeout, 'processInitializer');
      v8.serialize(processData);
    } catch (err) {
      return fail('processInitializer', err);
    }
  }
  ctx.processData = processData;
  return { mod, ctx };
}

async function boot(init: ChildInit): Promise<void> {
  process.title = `${init.name}:p${init.processIndex}`;
  watchdog?.postMessage({ t: 'dir', dir: init.startLogDir } satisfies ToWatchdog);
  const started = await startModule(init);
  if (!started) return;
  bootPhase = 'threadStart';
  const child: Running = { init, ...started, relay: new Relay(init, started.ctx.processData, send, log) };
  onStop = (graceMs, leftover, reason) => stop(child, graceMs, leftover, reason);
  child.relay.onRetire = (reason, detail) => retire(child, reason, detail, init.gracefulDieTimeout);
  onMessage = (msg) => child.relay.handle(msg);

  try {
    await child.relay.ready;
  } catch (failure) {
    const f = failure as { phase: StartPhase; error: ReturnType<typeof toErrorWire> };
    exiting = true;
    send({ t: 'fatal', phase: f.phase, error: f.error }, () => void exitAfterReap(1));
    setTimeout(() => process.exit(1), REAP_MS + 1000);
    return;
  }
  bootPhase = undefined;
  send({ t: 'ready', pid: process.pid });
  if (stopAsked) stop(child, stopAsked.graceMs, stopAsked.leftover, stopAsked.reason);

  if (init.processMemoryLimit) {
    const limit = init.processMemoryLimit * 1048576;
    const timer = setInterval(() => {
      if (process.memoryUsage.rss() <= limit || stopping) return;
      clearInterval(timer);
      retire(child, 'lifecycle', `RSS above ${init.processMemoryLimit} MiB`, init.hookTimeout);
    }, 1000);
    timer.unref();
  }
}

/** A child that booted: its settings, module, hook context and relay. */
interface Running {
  init: ChildInit;
  mod: WorkerModule;
  ctx: HookContext;
  relay: Relay;
}

let stopping: Promise<void> | undefined;

/**
 * The child's shutdown, in order: its threads (the relay's stop), `processFinalizer`, the last
 * outcomes, the threads' output, the descendants; then it exits.
 */
function stop(child: Running, graceMs: number, leftover: Leftover, reason: string): void {
  const { init, mod, ctx, relay } = child;
  // Already stopping (a soft retirement, say): a shutdown or a hard limit may bring its deadline forward.
  if (stopping) return void relay.stop(graceMs, leftover, reason);
  stopping = (async () => {
    await relay.stop(graceMs, leftover, reason);
    const finalizer = mod.hook('processFinalizer');
    if (finalizer) {
      try {
        await withTimeout(finalizer(ctx), init.hookTimeout, 'processFinalizer');
      } catch (err) {
        log('error', `processFinalizer failed: ${(err as Error)?.message}`, { err: toErrorWire(err) });
      }
    }
    await relay.drainOutbox(2000);
    // process.exit() drops what is still on its way out: the threads' output (piped through
    // this process) and our own unwritten stdout/stderr. Bounded: nobody may be reading.
    const outputMs = Math.min(init.hookTimeout, OUTPUT_DRAIN_MS);
    await withTimeout(outputWritten(), outputMs, 'writing the threads\' stdout/stderr').catch((err) => {
      log('warn', (err as Error).message);
    });
    await exitAfterReap(0);
  })();
}

/**
 * A soft retirement of the whole process: it takes no more tasks and hands back the unstarted
 * ones (its replacement starts at once), and lets every running task finish — only the task's
 * own time limit, or the master's `lifecycleDurationHard`, can cut it. Past `warnAfterMs` it
 * says so in the log, once, so a process held by a task that never ends is not silent.
 */
function retire(child: Running, reason: Reason, detail: string, warnAfterMs: number): void {
  if (stopping) return;
  const { init, relay } = child;
  send({ t: 'retiring', reason, detail });
  stop(child, Infinity, Code.Crashed, detail);
  setTimeout(() => {
    if (relay.threadsAlive === 0) return;
    log(
      'warn',
      `process ${init.processIndex} retired (${detail}) ${warnAfterMs} ms ago and still has ` +
        `${relay.threadsAlive} thread(s) running tasks or finalizers; they are let finish ` +
        '(bound tasks with taskTimeout or lifecycleDurationHard)',
    );
  }, warnAfterMs).unref();
}

type Leftover = Extract<ToChild, { t: 'stop' }>['leftover'];

// One listener from the first moment: a `stop` that arrives while we boot is kept, not lost.
let stopAsked: Extract<ToChild, { t: 'stop' }> | undefined;
let onStop: ((graceMs: number, leftover: Leftover, reason: string) => void) | undefined;
let onMessage: ((msg: ToChild) => void) | undefined;
process.on('message', (msg: ToChild) => {
  if (msg.t === 'init') return void boot(msg.init);
  if (msg.t === 'stop') {
    stopAsked ??= msg;
    return onStop?.(msg.graceMs, msg.leftover, msg.reason);
  }
  onMessage?.(msg);
});
