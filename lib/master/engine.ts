/**
 * The master: the public `MPMS` class. It owns the task ledger, the bounded queue, the result
 * sink and the children, and it is the only place that decides a task's outcome.
 *
 * A task's life: put() -> ledger + queue -> pump() hands it to the child with the most credit
 * -> the child hands it to a thread, which logs its start -> the outcome comes back in a
 * batch -> complete() settles it in the ledger (once) -> collector / iterator.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import v8 from 'node:v8';
import { pino, type Logger } from 'pino';
import { ConfigError, EngineStateError, SerializationError, WorkerStartError } from '../errors.js';
import { resolveOptions, type MPMSOptions, type ResolvedOptions } from '../options.js';
import { ABORTABLE, Code, OUTCOME_FIELDS, SERIALIZED, type ErrorWire, type FromChild, type ToChild } from '../protocol.js';
import { deferred, LOAD_ALLOWANCE_MS, type Deferred } from '../shared/bounded.js';
import { moduleUrl } from '../shared/worker-module.js';
import { makeStartLogDir } from '../shared/start-log.js';
import type { Meta, Metrics, ProgressInfo, RunningTask, RestartReason, SubmitOptions, Summary, TaskResult } from '../types.js';
import type { RemotePlace, Transport } from '../transport/types.js';
import { ChildHandle } from './child-handle.js';
import { childExitFacts, diedWith } from './exit-accounting.js';
import { deliver, newCall, notAccepted, type Call } from './calls.js';
import { ProgressRelay } from './progress.js';
import { runningTasks } from './running.js';
import { Retries } from './retries.js';
import { applyTaskOptions, checkTaskOptions, NO_OPTIONS } from './task-options.js';
import type { EngineOptions, TaskArgs, TaskExport, TaskOptions, TaskReturn, TypedTaskResult } from '../typed.js';
import { Ledger, type TaskRecord } from './ledger.js';
import { buildMeta, fromErrorWire, noteAttempts } from './outcome.js';
import { metricsText } from './metrics-text.js';
import { pumpRemote, startRemote, type RemoteEngine } from './remote.js';
import { ResultSink } from './results.js';
import { ProcessSupervisor } from './supervisor.js';
import { toWireArgs } from './task-args.js';
import { TaskQueue } from './task-queue.js';
import { installSignalHandlers, runSteps, waitExits, type TeardownStep } from './teardown.js';
import { cancelled, unsendable } from '../shared/outcomes.js';

type EngineState = 'new' | 'starting' | 'running' | 'closed' | 'stopping' | 'stopped';

/** Events of an engine. */
export interface MPMSEvents {
  /** Every outcome, as it is decided (before the collector or iterator sees it). */
  task: [meta: Meta];
  /**
   * A thread (`threadIndex` set) or a whole child process (`threadIndex` undefined) is being
   * replaced, and why. `metrics()` inside the listener already counts the loss. For a thread's
   * soft restart (`lifecycle`), `warm` says whether its replacement — started ahead of time —
   * was already ready when it stopped taking tasks (`false`: that slot idled while one booted).
   */
  restart: [info: { processIndex: number; threadIndex?: number; reason: RestartReason; detail?: string; warm?: boolean }];
  /** *(added)* A task reported progress (`taskContext().progress(value)`); the latest value wins when they come fast. */
  progress: [meta: ProgressInfo, value: unknown];
  /** Engine-level faults only (it gave up replacing children after a crash loop); never a task's error. */
  error: [err: Error];
}

/** A summary as returned by `join()`/`gracefulShutdown()`/`terminate()`. */
export interface FinalSummary extends Summary {
  /** Tasks that never started and were cancelled by a shutdown, with their arguments, so they can be saved or re-queued. */
  unstarted: Array<{ taskId: number; args: unknown[] }>;
}

/** waitForRoom(): room was reserved for the caller, who releases it once it has pushed. */
const RESERVED = 2;

/** Default deadline of a shutdown started by a signal (`handleSignals`). */
export const SIGNAL_SHUTDOWN_TIMEOUT_MS = 10_000;

/**
 * A multiprocess x multithread task engine: `processes` child processes, each running `threads`
 * worker threads that call the worker module's task function. Every accepted task gets exactly
 * one outcome (`ok`, `error`, `timeout`, `crashed`, `cancelled`), and `join()` and every
 * shutdown finish within a bound computed from the settings.
 *
 * @example
 * ```ts
 * import { MPMS } from 'mpms';
 * const m = new MPMS({ worker: './worker.mjs', processes: 2, threads: 2, collector: (meta, result) => console.log(meta.taskId, meta.status, result) });
 * await m.start();
 * for (let i = 0; i < 100; i++) await m.put(i, 1);
 * const summary = await m.join(); // { total: 100, ok: 100, ... }
 * ```
 */
export class MPMS<W = unknown, D extends string = 'default'> extends EventEmitter<MPMSEvents> {
  private readonly opts: ResolvedOptions;
  private readonly logger: Logger;
  private readonly ledger = new Ledger();
  private readonly queue: TaskQueue;
  private readonly sink: ResultSink;
  /** Retiring threads that exited with background work still pending (see Metrics.cutOnExit). */
  private cutOnExit = 0;
  private state: EngineState = 'new';
  private readonly sup: ProcessSupervisor;
  private readonly moduleHref: string;
  /** Where threads keep their start logs (shared/start-log.ts); made by start(), removed by the teardown. */
  private startLogDir = '';
  private readonly hasUserMeta: boolean;
  private startedAt = Date.now();
  private readonly allSettled: Deferred<void> = deferred();
  private readonly stopRequested: Deferred<void> = deferred();
  private joining: Promise<FinalSummary> | undefined;
  private teardownRun: Promise<FinalSummary> | undefined;
  private broken: Error | undefined;
  private readonly unstarted: FinalSummary['unstarted'] = [];
  /** The user called close() or join(): a later put() is a call-order mistake and rejects. */
  private userClosed = false;
  /** gracefulShutdown() or terminate() was called (by the user elsewhere, or by a signal). */
  private shutdownBegan = false;
  private removeSignalHandlers: (() => void) | undefined;
  private startFailure: Deferred<never> | undefined;
  /** The stop sent to every child by the teardown; re-sent to a child that becomes ready later. */
  private stopMessage: Extract<ToChild, { t: 'stop' }> | undefined;
  /** Set when tasks go through a transport (scale-out) instead of this engine's children. */
  private readonly transport: Transport | undefined;
  private readonly retries: Retries;
  private readonly progress = new ProgressRelay(this.ledger, this, () => this.logger);

  /**
   * Validates every setting at once.
   * @throws ConfigError listing every bad setting.
   */
  constructor(options: EngineOptions<W, D>) {
    super();
    this.opts = resolveOptions(options as MPMSOptions);
    this.logger = (this.opts.logger ?? pino({ level: 'warn' }, pino.destination({ dest: 2, sync: true }))).child({ engine: this.opts.name });
    this.moduleHref = moduleUrl(this.opts.worker);
    this.queue = new TaskQueue(this.opts.taskQueueMaxsize);
    this.sink = new ResultSink(this.opts.resultQueueMaxsize, this.opts.collector, this.logger, () => this.pump(), () => this.isFinished());
    this.hasUserMeta = Object.keys(this.opts.meta).length > 0;
    this.transport = this.opts.transport;
    const engine = this;
    this.sup = new ProcessSupervisor({
      opts: this.opts,
      logger: this.logger,
      moduleHref: this.moduleHref,
      get startLogDir() {
        return engine.startLogDir;
      },
      stopping: () => this.stopping(),
      gaveUp: () => this.broken !== undefined,
      onMessage: (c, msg) => this.onChildMessage(c, msg),
      onUnsendable: (c, ids, err) => this.onUnsendable(c, ids, err),
      onExit: (c) => this.onChildExit(c),
      restarted: (info) => this.restarted(info),
      giveUp: (cause) => this.giveUp(cause),
      checkDone: () => this.checkDone(),
    });
    this.retries = new Retries(this.opts, this.logger, this.queue, () => this.pump());
  }

  // ---- public API ---------------------------------------------------------------------------

  /**
   * Whether `put()`/`submit()` accept tasks now: true from `start()` until intake ends
   * (`close()`, `join()`, a shutdown, or the engine gave up after a crash loop).
   */
  get accepting(): boolean {
    return this.state === 'running' && !this.broken;
  }

  /** Tasks accepted so far. */
  get totalCount(): number {
    return this.ledger.total;
  }

  /** Tasks with an outcome so far. */
  get finishCount(): number {
    return this.ledger.finished;
  }

  /**
   * Forks the children and starts their threads. Resolves when every child and thread is ready;
   * rejects with a `WorkerStartError` naming the phase (load, export, initializer) if they cannot start.
   */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new EngineStateError(`start() may be called once (the engine is ${this.state})`);
    this.state = 'starting';
    this.startedAt = Date.now();
    if (this.transport) return this.startTransport(this.transport);
    try {
      this.startLogDir = makeStartLogDir();
    } catch (err) {
      this.state = 'stopped';
      throw new WorkerStartError(`mpms cannot start: ${(err as Error).message}`, { cause: err });
    }
    this.startFailure = deferred<never>();
    // Module load and processInitializer in the child, then thread boot and threadInitializer.
    const bound = 2 * (this.opts.hookTimeout + LOAD_ALLOWANCE_MS) + 5_000;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new WorkerStartError(`children did not become ready within ${bound} ms`)), bound);
    });
    try {
      this.sup.startAll();
      const allReady = Promise.all(this.sup.children.map((c) => c!.ready.promise));
      await Promise.race([allReady, this.startFailure.promise, timeout]);
    } catch (err) {
      this.state = 'stopped';
      for (const c of this.sup.children) c?.killTree();
      await waitExits([...this.sup.children].filter((c): c is ChildHandle => !!c), 3000);
      this.removeStartLogs();
      // A fork that failed (EAGAIN, ENOMEM) throws here raw: every start-up failure is a WorkerStartError.
      if (err instanceof WorkerStartError || err instanceof EngineStateError) throw err;
      throw new WorkerStartError(`mpms cannot start: ${(err as Error)?.message}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
    this.state = 'running';
    this.sup.watch();
    if (this.opts.handleSignals) this.installSignals();
    this.pump();
  }

  /**
   * Enqueues one task; resolves with its id once accepted. Waits while the queue is full (see
   * `putTimeout`). Once a shutdown has begun (a signal, `gracefulShutdown()`, `terminate()`), a
   * waiting or later call resolves with `undefined` instead: the task was not accepted.
   * @throws EngineStateError before `start()`, after the user's own `close()`/`join()`, or when
   * nothing reads outcomes and this put would wait for a reader for ever (see docs/guide.md).
   */
  put(...args: TaskArgs<W, D>): Promise<number | undefined> {
    return this.accept(args, NO_OPTIONS, undefined);
  }

  /**
   * Like `put()`, with a per-task AbortSignal, hard timeout and meta keys. Resolves with the task
   * id (`undefined`: see `put()`).
   */
  submit<E extends TaskExport<W> = D & TaskExport<W>>(args: TaskArgs<W, E>, options: TaskOptions<E> = NO_OPTIONS as TaskOptions<E>): Promise<number | undefined> {
    return this.accept(args, options, undefined);
  }

  /**
   * Runs one task and resolves with its result when it ends `ok`; otherwise rejects with the
   * outcome's error (the worker's rebuilt error, `TaskTimeoutError`, `WorkerCrashedError`,
   * `TaskCancelledError`), which carries `err.meta`. Enqueues like `submit()` (waits for room,
   * honours `putTimeout`). Its outcome goes to this promise and to `'task'` listeners, never to
   * the collector or iterator; `join()` and the summary count it like any other task. Where
   * `put()` resolves `undefined` (a shutdown began before the task was accepted), `run()`
   * rejects with `TaskCancelledError` (without `err.meta`: there is no task).
   */
  async run<E extends TaskExport<W> = D & TaskExport<W>>(args: TaskArgs<W, E>, options: TaskOptions<E> = NO_OPTIONS as TaskOptions<E>): Promise<TaskReturn<W, E>> {
    const { call, promise } = newCall();
    const id = await this.accept(args, options, call);
    if (id === undefined) throw notAccepted('the engine is shutting down');
    return promise as Promise<TaskReturn<W, E>>;
  }

  private async accept(args: unknown[], options: SubmitOptions, call: Call | undefined): Promise<number | undefined> {
    if (this.declining()) return undefined;
    this.assertAccepting();
    if (!Array.isArray(args)) throw new TypeError('submit(args): args must be an array of arguments');
    if (options !== NO_OPTIONS) checkTaskOptions(options, !!this.transport);
    const wireArgs = toWireArgs(args);
    const room = this.queue.hasRoom || (await this.waitForRoom());
    if (!room) return undefined;
    const userMeta = options.meta ? (this.hasUserMeta ? { ...this.opts.meta, ...options.meta } : options.meta) : this.hasUserMeta ? this.opts.meta : undefined;
    const rec = this.ledger.create(args, wireArgs, userMeta, options.timeout ?? this.opts.taskTimeout ?? (options.signal ? ABORTABLE : 0));
    rec.call = call;
    if (options !== NO_OPTIONS) applyTaskOptions(rec, options, this.opts.export, this.retries.policy);
    this.queue.push(rec);
    if (room === RESERVED) this.queue.release();
    if (options.signal) this.watchSignal(rec, options.signal);
    this.pump();
    return rec.id;
  }

  /** Ends intake: later `put()` calls reject. Tasks already accepted still run. */
  close(): void {
    this.userClosed = true;
    if (this.state === 'new' || this.state === 'starting' || this.state === 'running') this.state = 'closed';
    this.queue.rejectWaiters(new EngineStateError('put() was waiting when the engine was closed; the task was not accepted'));
    this.sink.endIntake();
    this.checkDone();
  }

  /**
   * Yields `{ meta, result }` for every outcome, in the order they are decided. Ends once the
   * engine is closed and every task has its outcome. Reading slowly pauses dispatch. Outcomes
   * settled before it is called are kept for it. Leaving the loop early (`break`, a throw) stops
   * holding dispatch back; outcomes past `resultQueueMaxsize` are then dropped (one warning).
   * @throws ConfigError when a collector is configured (use one or the other).
   * @throws EngineStateError when already being read, or when outcomes were dropped after an
   * earlier reader left (it could not yield them all).
   */
  iterResults(): AsyncGenerator<unknown extends W ? TaskResult : TypedTaskResult<TaskReturn<W, D>>, void, undefined> {
    if (this.opts.collector) throw new ConfigError(['iterResults() cannot be used together with a `collector`; use one or the other']);
    if (this.sink.hasIterator) throw new EngineStateError('iterResults() is already being iterated');
    return this.sink.iterate() as AsyncGenerator<never, void, undefined>;
  }

  /**
   * Closes intake, waits for every outcome, stops the children (finalizers run), lets the
   * collector take every outcome, and resolves with the summary. During or after a shutdown it
   * resolves with that shutdown's summary. With no collector and no reader, outcomes are kept
   * for a later `iterResults()`. A consumer that holds one outcome for `hookTimeout` no longer
   * holds it back (a collector is then not called again; docs/guarantees.md).
   */
  join(): Promise<FinalSummary> {
    this.close();
    // A consumer that holds one outcome this long no longer holds the end back (docs/guarantees.md).
    this.sink.limitStalls(this.opts.hookTimeout);
    this.joining ??= (async () => {
      await Promise.race([this.allSettled.promise, this.stopRequested.promise]);
      return this.teardown('join', this.opts.hookTimeout);
    })();
    return this.awaitedByConsumer(this.joining);
  }

  /**
   * Stops intake, lets running tasks finish within `timeout` ms, settles unstarted ones
   * `cancelled` (listed in `summary.unstarted`), runs finalizers, then ends whatever is left.
   * Idempotent: concurrent calls share one shutdown.
   */
  gracefulShutdown(options: { timeout?: number } = {}): Promise<FinalSummary> {
    const timeout = options.timeout ?? 30_000;
    this.shutdownBegan = true;
    this.stopRequested.resolve();
    this.abortStart('gracefulShutdown() was called during start()');
    return this.awaitedByConsumer(this.teardown('graceful', timeout));
  }

  /** Immediate stop: kills every child; every unsettled task settles `cancelled`. */
  terminate(): Promise<FinalSummary> {
    this.shutdownBegan = true;
    this.stopRequested.resolve();
    this.abortStart('terminate() was called during start()');
    this.state = 'stopping';
    this.cancelQueued('terminate() was called');
    for (const c of this.sup.live()) c.killTree();
    return this.awaitedByConsumer(this.teardown('terminate', 0));
  }

  /** A snapshot of counts, restarts and run/wait-time percentiles. */
  metrics(): Metrics {
    let running = this.transport?.outstanding ?? 0;
    let processesAlive = 0;
    let threadsAlive = 0;
    for (const c of this.sup.live()) {
      running += c.inflight;
      threadsAlive += c.threadsAlive;
      if (c.state !== 'starting') processesAlive++;
    }
    return {
      queued: this.queue.length,
      running,
      finished: this.ledger.finished,
      delayed: this.retries.delayed.size,
      progressing: this.progress.recent(),
      total: this.ledger.total,
      processesAlive,
      threadsAlive,
      restarts: { ...this.sup.restarts },
      cutOnExit: this.cutOnExit,
      outcomes: { ...this.ledger.counts },
      runMs: this.ledger.runPercentiles(),
      waitMs: this.ledger.waitPercentiles(),
    };
  }

  /**
   * *(added)* The tasks running now, oldest first: `{ taskId, attempt, export, processIndex,
   * threadIndex, pid, startedAt, runMs }`. Read on demand from the ledger and the threads' start
   * logs (a few file reads per child), so tasks pay nothing for it. Tasks sent through a
   * transport are not listed.
   */
  running(): RunningTask[] {
    return this.startLogDir ? runningTasks(this.ledger.records(), this.startLogDir, this.opts.export) : [];
  }

  /** `metrics()` in the Prometheus text exposition format, for a `/metrics` endpoint. */
  metricsText(): string {
    return metricsText(this.metrics(), this.opts.name);
  }

  /** start() with a transport: no children here; connect, adopt what an earlier master of the run left in flight. */
  private async startTransport(t: Transport): Promise<void> {
    const engine: RemoteEngine = {
      logger: this.logger,
      ledger: this.ledger,
      module: this.moduleHref,
      exportName: this.opts.export,
      meta: this.hasUserMeta ? this.opts.meta : undefined,
      complete: (rec, o) => this.complete(rec, o.code, o.value, o.startedAt, o.endedAt, undefined, o.threadIndex, o),
      requeue: (rec) => this.requeue(rec),
      checkDone: () => this.checkDone(),
      pump: () => this.pump(),
    };
    try {
      await startRemote(t, engine);
    } catch (err) {
      this.state = 'stopped';
      throw new WorkerStartError(`the ${t.kind} transport could not start: ${(err as Error).message}`, { cause: err });
    }
    if ((this.state as EngineState) !== 'starting') return;
    this.state = 'running';
    if (this.opts.handleSignals) this.installSignals();
    this.pump();
  }

  /** A shutdown during start(): start() rejects now instead of waiting out its bound. */
  private abortStart(why: string): void {
    if (this.state === 'starting') this.startFailure?.reject(new EngineStateError(why));
  }

  // ---- children -----------------------------------------------------------------------------

  private onChildMessage(c: ChildHandle, msg: FromChild): void {
    switch (msg.t) {
      case 'batch':
        return this.onBatch(c, msg);
      case 'progress':
        this.progress.deliver(msg.items, c.index);
        return;
      case 'ready':
        if (c.state === 'starting') c.state = this.state === 'stopping' || this.state === 'stopped' ? 'stopping' : 'ready';
        c.ready.resolve();
        if (c.state === 'stopping' && this.stopMessage) c.post(this.stopMessage);
        this.pump();
        return;
      case 'restart':
        return this.sup.note(c.index, msg.reason, msg.threadIndex, msg.detail, msg.warm);
      case 'retiring':
        return this.sup.retiring(c, msg.reason, msg.detail);
      case 'fatal': {
        const err = new WorkerStartError(`process ${c.index} could not start (${msg.phase}): ${msg.error.message}`, {
          cause: decodeError(msg.error),
        });
        err.phase = msg.phase;
        c.fatal = err;
        if (this.state === 'starting') this.startFailure?.reject(err);
        // After a failed start, another child failing the same way is that same failure: start() reported it.
        else if (this.state !== 'stopped') c.log.error({ err }, err.message);
        c.killTree();
        return;
      }
      case 'threads':
        c.threadsAlive = msg.alive;
        return;
      case 'cut':
        this.cutOnExit++;
        c.log.warn(
          { threadIndex: msg.threadIndex, pending: msg.pending },
          `thread ${msg.threadIndex} of process ${c.index} exited with background work still pending, ` +
            `cut (${msg.detail}): ${msg.pending.join(', ')}`,
        );
        return;
      case 'log':
        try {
          c.log[msg.level](msg.fields ?? {}, msg.msg);
        } catch {
          // Fields a task produced may be beyond the logger (e.g. too deep); the line is lost, nothing else.
          c.log[msg.level]({}, msg.msg);
        }
        return;
    }
  }

  private onBatch(c: ChildHandle, msg: Extract<FromChild, { t: 'batch' }>): void {
    if (msg.done) {
      const { nums, values } = msg.done;
      for (let i = 0, o = 0; i < values.length; i++, o += OUTCOME_FIELDS) {
        const id = nums[o]!;
        const startedAt = nums[o + 2]!;
        const endedAt = nums[o + 3]!;
        const rec = this.ledger.get(id);
        if (!rec || rec.child !== c || nums[o + 4] !== rec.attempts + 1) {
          c.log.debug({ taskId: id }, 'dropped an outcome for a task that already has one');
          continue;
        }
        c.inflight--;
        c.settledCount++;
        if (startedAt > 0) c.runTime.observe(endedAt - startedAt);
        const threadIndex = nums[o + 5]!;
        this.complete(rec, nums[o + 1]!, values[i], startedAt, endedAt, c, threadIndex < 0 ? undefined : threadIndex);
      }
      this.sup.succeeded();
    }
    if (msg.returned) {
      for (const id of msg.returned) {
        const rec = this.ledger.get(id);
        if (!rec || rec.child !== c) continue;
        c.inflight--;
        this.requeue(rec);
      }
    }
    this.pump();
  }

  /** A child exited: charges its tasks (exit-accounting.ts), then the supervisor decides about the process. */
  private onChildExit(c: ChildHandle): void {
    this.sup.forget(c);
    c.killGroup();
    const stopping = this.stopping();
    // Its descendants that left its process group, and which of its tasks had started.
    const { started, unstarted, how } = childExitFacts(c, this.ledger, this.startLogDir);
    c.inflight = 0;
    for (let i = unstarted.length - 1; i >= 0; i--) this.requeue(unstarted[i]!);
    const code = stopping ? Code.Cancelled : Code.Crashed;
    for (const rec of started) this.complete(rec, code, diedWith(c, rec, how, stopping), 0, Date.now(), c, undefined);
    if (this.state === 'starting') this.startFailure?.reject(c.fatal ?? new WorkerStartError(`process ${c.index} ${how} during start-up`));
    this.sup.exited(c, started.map((r) => r.id), how);
    this.pump();
    this.checkDone();
  }

  private stopping(): boolean {
    return this.state === 'stopping' || this.state === 'stopped';
  }

  /** A thread or process restart, counted by the supervisor: told to the `restart` listeners. */
  private restarted(info: MPMSEvents['restart'][0]): void {
    if (this.listenerCount('restart') > 0) this.emitIsolated('restart', info);
  }

  /** The engine cannot keep children alive: every task without a child settles `cancelled`; join() resolves. */
  private giveUp(cause: Error): void {
    if (this.broken) return;
    this.broken = cause;
    this.logger.error({ err: cause }, 'mpms stops replacing children (crash loop); queued tasks are cancelled');
    // Never emit('error') without a listener: EventEmitter would throw it.
    if (this.listenerCount('error') > 0) this.emitIsolated('error', cause);
    this.queue.rejectWaiters(new EngineStateError(`the engine cannot run tasks: ${cause.message}`, { cause }));
    this.cancelQueued(`the engine gave up: ${cause.message}`);
    this.checkDone();
  }

  private onUnsendable(c: ChildHandle, ids: number[], err: Error): void {
    for (const id of ids) {
      const rec = this.ledger.get(id);
      if (!rec || rec.child !== c) continue;
      this.complete(rec, Code.Error, unsendable(`task ${id}'s arguments cannot be sent to a child: ${err.message}`), 0, Date.now(), c, undefined);
    }
  }

  // ---- flow ---------------------------------------------------------------------------------

  /** Hands queued tasks to the children with credit, in batches, unless outcomes are piling up unread. */
  private pump(): void {
    if (this.sink.pausesDispatch) return this.pausedForReader();
    if (this.transport) return this.state === 'new' || this.state === 'starting' ? undefined : pumpRemote(this.transport, this.queue);
    while (this.queue.length > 0) {
      let best: ChildHandle | undefined;
      let bestCredit = 0;
      for (const c of this.sup.children) {
        const credit = c ? c.sendableCredit : 0;
        if (credit > bestCredit) {
          best = c;
          bestCredit = credit;
        }
      }
      if (!best) break;
      const n = Math.min(bestCredit, this.queue.length);
      for (let i = 0; i < n; i++) {
        const rec = this.queue.shift()!;
        rec.child = best;
        best.queueTask(rec.id, rec.wireArgs, rec.timeout, rec.attempts + 1, rec.exportName);
      }
      best.flush();
    }
    this.queue.wake();
  }

  /**
   * Dispatch waits for the consumer. A put() waiting for room must then not wait on itself: the
   * consumer's own puts are let in over the bound; with no consumer at all, nothing can ever make
   * room, so waiting puts are told so.
   */
  private pausedForReader(): void {
    if (!this.queue.hasWaiters) return;
    if (this.sink.awaitingReader) this.queue.rejectWaiters(this.noReaderError());
    else this.queue.admitConsumers();
  }

  /** Waits for room in the queue (see `put()`); false when a shutdown began meanwhile: not accepted. */
  private async waitForRoom(): Promise<boolean | typeof RESERVED> {
    let consumer = false;
    if (this.sink.holding) {
      await afterLinks();
      if (this.declining()) return false;
      this.assertAccepting();
      consumer = this.sink.holding && this.sink.isConsumerCall();
    }
    if (this.sink.pausesDispatch) {
      // Room would have to come from the consumer; for its own put, that is itself.
      if (consumer) return true;
      if (this.sink.awaitingReader) throw this.noReaderError();
    }
    await this.queue.waitForRoom(this.opts.putTimeout, consumer);
    // The place stays reserved until the caller has pushed (it calls release() right after):
    // released any earlier, a wake() in between would let one more caller in over the bound.
    if (this.declining()) {
      this.queue.release();
      return false;
    }
    try {
      this.assertAccepting();
    } catch (err) {
      this.queue.release();
      throw err;
    }
    return RESERVED;
  }

  private noReaderError(): EngineStateError {
    return new EngineStateError(
      `put() would wait for ever: ${this.sink.waiting} outcomes (resultQueueMaxsize) wait to be read and nothing ` +
        'reads them — no collector, and iterResults() was not called. Start the iterResults() loop before putting ' +
        '(or while putting), or pass a collector (`collector: () => {}` if only the summary matters); not accepted',
    );
  }

  /**
   * `done` as the caller of join() or a shutdown gets it. If that caller is the consumer itself,
   * nothing may wait for the outcome it holds (ResultSink.blockCurrentHold).
   */
  private awaitedByConsumer<T>(done: Promise<T>): Promise<T> {
    if (!this.sink.holding) return done;
    return (async () => {
      await afterLinks();
      if (this.sink.holding && this.sink.isConsumerCall()) this.sink.blockCurrentHold();
      return done;
    })();
  }

  /** A shutdown began and the user did not close intake: put() resolves without a task id. */
  private declining(): boolean {
    return this.shutdownBegan && !this.userClosed;
  }

  private requeue(rec: TaskRecord): void {
    rec.child = null;
    if (rec.cancelled) {
      this.complete(rec, Code.Cancelled, cancelled(rec.cancelled), 0, Date.now(), undefined, undefined);
    } else if (this.state === 'stopping' || this.state === 'stopped' || this.broken) {
      this.cancelUnstarted(rec, this.broken ? `the engine gave up: ${this.broken.message}` : 'the engine is shutting down; the task never started');
    } else {
      this.queue.unshift(rec);
    }
  }

  /** The one place an outcome is decided: retried, or settled (see `settle`). */
  private complete(rec: TaskRecord, code: number, value: unknown, startedAt: number, endedAt: number, c: ChildHandle | undefined, threadIndex: number | undefined, remote?: RemotePlace): void {
    if (startedAt > 0 || code === Code.Crashed) rec.attempts++;
    if (code !== Code.Ok && code !== Code.Cancelled && !rec.cancelled && (this.state === 'running' || this.state === 'closed') && !this.broken && this.retries.again(rec, code, value)) return;
    this.settle(rec, code, value, startedAt, endedAt, c, threadIndex, remote);
  }

  /**
   * The only way a task gets its outcome: decoded, settled in the ledger (once: a second report
   * finds nothing), and only then handed to user code — 'task' listeners, then the collector or
   * reader — each isolated, so nothing they do (throw, re-enter) can undo or skip a settle.
   */
  private settle(
    rec: TaskRecord,
    code: number,
    value: unknown,
    startedAt: number,
    endedAt: number,
    c: ChildHandle | undefined,
    threadIndex: number | undefined,
    remote?: RemotePlace,
  ): void {
    let status = (code & ~SERIALIZED) as Code;
    let result: unknown;
    try {
      if (status !== Code.Ok) result = fromErrorWire(value as ErrorWire);
      else result = code & SERIALIZED ? v8.deserialize(value as Uint8Array) : value;
    } catch (err) {
      // Whatever a task produced may be beyond the master to decode (e.g. nesting deeper than its stack).
      const what = status === Code.Ok ? 'result' : `error (${errorTitle(value)})`;
      status = Code.Error;
      const message = `task ${rec.id}: its ${what} could not be decoded in the master: ${(err as Error)?.message}`;
      result = new SerializationError(message, { cause: err });
    }
    const runMs = startedAt > 0 ? endedAt - startedAt : -1;
    const waitMs = startedAt > 0 ? startedAt - rec.enqueuedAt : -1;
    if (!this.ledger.settle(rec, status, runMs, waitMs)) return;
    const meta = buildMeta(rec, status, startedAt, endedAt, c?.index, threadIndex, c?.pid, rec.meta, remote);
    if (status !== Code.Ok && rec.attempts > 1) noteAttempts(result, rec.attempts);
    if (this.listenerCount('task') > 0) this.emitIsolated('task', meta);
    if (rec.call) deliver(rec.call, meta, result);
    else this.sink.push(meta, result);
    if (this.ledger.size === 0) this.checkDone();
  }

  /** Calls each listener of `event` on its own: one that throws is logged, the others still run. */
  private emitIsolated<K extends keyof MPMSEvents>(event: K, ...args: MPMSEvents[K]): void {
    for (const fn of this.rawListeners(event) as Array<(...a: unknown[]) => unknown>) {
      try {
        fn.apply(this, args);
      } catch (err) {
        try {
          this.logger.error({ err }, `a '${event}' listener threw; the engine goes on`);
        } catch {
          // A logger that throws must not break the settle path either.
        }
      }
    }
  }

  private cancelUnstarted(rec: TaskRecord, why: string): void {
    if (this.state === 'stopping' || this.state === 'stopped') this.unstarted.push({ taskId: rec.id, args: rec.args });
    this.complete(rec, Code.Cancelled, cancelled(`task ${rec.id} was cancelled: ${why}`), 0, Date.now(), undefined, undefined);
  }

  private cancelQueued(why: string): void {
    for (const rec of this.queue.drain()) this.cancelUnstarted(rec, why);
    for (const rec of this.retries.delayed.drain()) this.cancelUnstarted(rec, `${why} (it was waiting to be retried)`);
  }

  private watchSignal(rec: TaskRecord, signal: AbortSignal): void {
    const onAbort = () => {
      if (!this.ledger.get(rec.id)) return;
      const reason = `task ${rec.id} was cancelled by its AbortSignal`;
      // Remembered: if its child dies before the abort lands, the task comes back here and must
      // not run again.
      rec.cancelled = reason;
      // A task already handed to a transport runs on where it is (docs/scale-out.md); it is
      // only kept from being retried.
      if (rec.remote) return;
      if (rec.child === null) {
        if (!this.queue.remove(rec)) this.retries.delayed.remove(rec);
        this.complete(rec, Code.Cancelled, cancelled(reason), 0, Date.now(), undefined, undefined);
      } else {
        rec.child.post({ t: 'abort', ids: [rec.id], code: Code.Cancelled, reason });
      }
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    rec.unlisten = () => signal.removeEventListener('abort', onAbort);
  }

  private assertAccepting(): void {
    if (this.broken) throw new EngineStateError(`the engine cannot run tasks: ${this.broken.message}`, { cause: this.broken });
    switch (this.state) {
      case 'new':
      case 'starting':
        throw new EngineStateError('put()/submit() before start() resolved: call `await m.start()` first');
      case 'closed':
        throw new EngineStateError('put()/submit() after close(): the engine takes no more tasks');
      case 'stopping':
      case 'stopped':
        throw new EngineStateError('put()/submit() during or after shutdown: the engine takes no more tasks');
    }
  }

  private isFinished(): boolean {
    return (this.state === 'closed' || this.state === 'stopping' || this.state === 'stopped') && this.ledger.size === 0;
  }

  private checkDone(): void {
    if (this.isFinished()) this.allSettled.resolve();
    // With no child left and none coming, nothing can settle what remains: cancel it.
    if (this.broken && this.sup.live().length === 0) {
      for (const rec of [...this.ledger.records()]) this.cancelUnstarted(rec, `the engine gave up: ${this.broken.message}`);
      if (this.state === 'running') this.state = 'closed';
      if (this.isFinished()) this.allSettled.resolve();
    }
    this.sink.poke();
  }

  // ---- teardown -----------------------------------------------------------------------------

  /**
   * The one teardown, shared by join(), gracefulShutdown() and terminate(). Ordered steps,
   * each bounded, each isolated (a failing step is logged and the next runs).
   */
  private teardown(kind: 'join' | 'graceful' | 'terminate', graceMs: number): Promise<FinalSummary> {
    this.teardownRun ??= this.runTeardown(kind, graceMs);
    return this.teardownRun;
  }

  private async runTeardown(kind: 'join' | 'graceful' | 'terminate', graceMs: number): Promise<FinalSummary> {
    await runSteps(this.teardownSteps(kind, graceMs, this.state !== 'new'), this.logger, kind);
    this.sink.abandon(`the collector did not finish within the shutdown's bound (${kind})`);
    this.sink.close();
    this.removeStartLogs();
    this.removeSignalHandlers?.();
    this.removeSignalHandlers = undefined;
    this.state = 'stopped';
    this.allSettled.resolve();
    this.sink.poke();
    return { ...this.ledger.summary(this.startedAt), unstarted: this.unstarted };
  }

  /** The ordered, bounded steps of a shutdown (docs/architecture.md, Shutdown). */
  private teardownSteps(kind: 'join' | 'graceful' | 'terminate', graceMs: number, wasStarted: boolean): TeardownStep[] {
    const grace = kind === 'join' ? this.opts.hookTimeout : graceMs;
    const steps: TeardownStep[] = [
      { name: 'stop intake', bound: 100, run: () => this.stopIntake() },
      {
        name: 'cancel queued tasks',
        bound: 1000,
        run: () => {
          this.cancelQueued('the engine shut down before it started');
          // Only now: dispatch that resumes for want of a reader finds nothing left to start.
          this.sink.endIntake();
        },
      },
    ];
    const t = this.transport;
    if (wasStarted && t) {
      const name = `stop the ${t.kind} transport (take back unstarted jobs, wait for started ones)`;
      steps.push({ name, bound: grace + 10_000, run: () => t.stop(grace) });
    } else if (wasStarted) {
      const bound = kind === 'terminate' ? 3000 : grace + this.opts.abortGrace + 2 * this.opts.hookTimeout + 2000;
      steps.push(
        { name: 'stop children (drain, thread finalizers, process finalizers)', bound, run: () => this.stopChildren(grace) },
        { name: 'kill what is left', bound: 3000, run: () => this.killChildren() },
      );
    }
    const settle = () => {
      for (const rec of [...this.ledger.records()]) this.cancelUnstarted(rec, 'the engine stopped');
    };
    steps.push({ name: 'settle what is left', bound: 1000, run: settle });
    // join(): as long as the collector returns (limitStalls: one call may take up to hookTimeout).
    const drainBound = kind === 'join' ? 2 ** 31 - 1 : Math.max(graceMs, 1000);
    steps.push({ name: 'drain the collector', bound: drainBound, run: () => this.sink.idle() });
    return steps;
  }

  private stopIntake(): void {
    this.state = 'stopping';
    // Waiting puts resolve without a task id: a signal or a shutdown elsewhere is not their caller's mistake.
    if (this.declining()) this.queue.releaseWaiters();
    else this.queue.rejectWaiters(new EngineStateError('put() was waiting when the engine shut down; not accepted'));
    this.sup.stop();
  }

  private async stopChildren(graceMs: number): Promise<void> {
    const children = this.sup.live();
    this.stopMessage = { t: 'stop', graceMs, reason: 'shutdown', leftover: Code.Cancelled };
    for (const c of children) {
      c.state = 'stopping';
      c.post(this.stopMessage);
    }
    await waitExits(children, Infinity);
  }

  private async killChildren(): Promise<void> {
    const left = this.sup.live();
    for (const c of left) c.killTree();
    await waitExits(left, Infinity);
  }

  private installSignals(): void {
    const graceful = () => void this.gracefulShutdown({ timeout: SIGNAL_SHUTDOWN_TIMEOUT_MS });
    this.removeSignalHandlers = installSignalHandlers(this.logger, SIGNAL_SHUTDOWN_TIMEOUT_MS, graceful, () => void this.terminate());
  }

  private removeStartLogs(): void {
    if (this.startLogDir) fs.rmSync(this.startLogDir, { recursive: true, force: true });
  }

}

/** `name: message` of an error on the wire, for a message about it; never throws. */
function errorTitle(wire: unknown): string {
  try {
    const { name, message } = wire as ErrorWire;
    return `${String(name)}: ${String(message)}`;
  } catch {
    return 'unreadable';
  }
}

/** fromErrorWire that cannot throw: an error a child sent may be beyond the master to rebuild. */
function decodeError(wire: ErrorWire): Error {
  try {
    return fromErrorWire(wire);
  } catch (err) {
    return new SerializationError(`an error sent by a child could not be decoded: ${(err as Error)?.message}`);
  }
}

/** One macrotask: every microtask queued so far has run, so V8 has linked the promises of the caller's chain. */
function afterLinks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
