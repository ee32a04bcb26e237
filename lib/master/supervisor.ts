/**
 * The master's process supervisor: every child process start and restart is decided here, as
 * gunicorn's arbiter does — the first generation, a replacement when a child retires (a soft
 * limit, a graceful die), is stopped by the hard limit (`lifecycleDurationHard`, checked every
 * `subprocCheckInterval`) or dies, with the back-off and the giving up of the restart policy
 * (restart-policy.ts, on the shared back-off). Children and the engine report facts; the engine
 * charges a dead child's tasks (exit-accounting.ts), then asks here about the process.
 */
import type { Logger } from 'pino';
import { WorkerStartError } from '../errors.js';
import type { ResolvedOptions } from '../options.js';
import { Code, countByReason, taskIdFields, type ChildInit, type FromChild } from '../protocol.js';
import type { RestartReason } from '../types.js';
import { ChildHandle } from './child-handle.js';
import { RestartPolicy, type RestartDecision } from './restart-policy.js';

/** What the supervisor needs of the engine. */
export interface SupervisedEngine {
  readonly opts: ResolvedOptions;
  readonly logger: Logger;
  readonly moduleHref: string;
  readonly startLogDir: string;
  /** The engine stops (a shutdown) or gave up: no child is replaced. */
  stopping(): boolean;
  gaveUp(): boolean;
  onMessage(c: ChildHandle, msg: FromChild): void;
  onUnsendable(c: ChildHandle, ids: number[], err: Error): void;
  /** A child exited: the engine charges its tasks, then calls `exited`. */
  onExit(c: ChildHandle): void;
  /** A restart happened (counted here); the engine tells its listeners. */
  restarted(info: { processIndex: number; threadIndex?: number; reason: RestartReason; detail?: string; warm?: boolean }): void;
  /** Replacing children is hopeless (crash loop): the engine cancels what it cannot run. */
  giveUp(cause: Error): void;
  checkDone(): void;
}

export class ProcessSupervisor {
  readonly children: (ChildHandle | undefined)[] = [];
  /** Retired or stopped children still finishing what they hold. */
  private readonly leaving = new Set<ChildHandle>();
  private readonly policy = new RestartPolicy();
  readonly restarts: Record<RestartReason, number> = countByReason();
  private readonly respawnTimers = new Set<NodeJS.Timeout>();
  private health: NodeJS.Timeout | undefined;

  constructor(private readonly e: SupervisedEngine) {}

  /** Forks the first generation. */
  startAll(): void {
    for (let i = 0; i < this.e.opts.processes; i++) this.spawn(i);
  }

  /** Starts the hard-limit checks (after start-up). */
  watch(): void {
    this.health = setInterval(() => this.checkHealth(), this.e.opts.subprocCheckInterval);
    this.health.unref();
  }

  /** The teardown began: no timer of this supervisor starts anything any more. */
  stop(): void {
    if (this.health) clearInterval(this.health);
    for (const t of this.respawnTimers) clearTimeout(t);
    this.respawnTimers.clear();
  }

  /** Children not yet exited, serving or leaving. */
  live(): ChildHandle[] {
    const out: ChildHandle[] = [];
    for (const c of this.children) if (c && c.state !== 'exited') out.push(c);
    for (const c of this.leaving) if (c.state !== 'exited') out.push(c);
    return out;
  }

  /** An exited child no longer counts as leaving. */
  forget(c: ChildHandle): void {
    this.leaving.delete(c);
  }

  /** A child settled work: the failure streak is over. */
  succeeded(): void {
    this.policy.succeeded();
  }

  /** Counts a restart and reports it. */
  note(processIndex: number, reason: RestartReason, threadIndex?: number, detail?: string, warm?: boolean): void {
    this.restarts[reason]++;
    this.e.restarted({ processIndex, threadIndex, reason, detail, ...(warm === undefined ? {} : { warm }) });
  }

  /** A child retires itself (a soft limit, a graceful die): its replacement starts at once. */
  retiring(c: ChildHandle, reason: RestartReason, detail?: string): void {
    if (c.state === 'exited' || c.state === 'stopping') return;
    c.state = 'retiring';
    this.note(c.index, reason, undefined, detail);
    this.follow(c, this.policy.retiring());
  }

  /**
   * A child exited and its tasks are charged (`started`: those whose death it was). Replaces it
   * if it served its slot: at once when planned, else as the policy says.
   */
  exited(c: ChildHandle, started: number[], how: string): void {
    const stopping = this.e.stopping();
    if (this.children[c.index] !== c || stopping) return;
    const planned = c.state === 'retiring' || c.state === 'stopping';
    if (!planned) {
      c.log.warn({ exitCode: c.exitCode, signal: c.signal, ...taskIdFields(started) }, `process ${c.index} ${how}; replacing it`);
      this.note(c.index, c.fatal ? 'initFailure' : 'crash');
    }
    // The tasks it was running are charged (retried or crashed); the policy decides about the process.
    const decision = planned
      ? this.policy.retiring()
      : this.policy.died({ settled: c.settledCount, blamed: started.length, fatal: !!c.fatal });
    this.follow(c, decision, how);
  }

  private childInit(index: number): ChildInit {
    const o = this.e.opts;
    return {
      module: this.e.moduleHref,
      exportName: o.export,
      processIndex: index,
      name: o.name,
      threads: o.threads,
      concurrency: o.concurrency,
      hookTimeout: o.hookTimeout,
      initArgs: o.initArgs,
      lifecycle: o.lifecycle,
      lifecycleDuration: o.lifecycleDuration,
      lifecycleJitter: o.lifecycleJitter,
      lifecycleMemory: o.lifecycleMemory,
      processMemoryLimit: o.processMemoryLimit,
      gracefulDieErrors: o.workerGracefulDieErrors,
      gracefulDieTimeout: o.workerGracefulDieTimeout,
      abortGraceMs: o.abortGrace,
      startLogDir: this.e.startLogDir,
      drainMs: o.threadDrainTimeout,
    };
  }

  private spawn(index: number): ChildHandle {
    const e = this.e;
    const child = new ChildHandle(
      index,
      e.opts.threads,
      e.opts.concurrency,
      this.childInit(index),
      (c, msg) => e.onMessage(c, msg),
      (c) => e.onExit(c),
      (c, ids, err) => e.onUnsendable(c, ids, err),
      e.opts.workerStdout,
      e.logger,
    );
    this.children[index] = child;
    return child;
  }

  /** Does what the restart policy decided about `c`: replace it (after a delay), or give up. */
  private follow(c: ChildHandle, decision: RestartDecision, how = 'could not be started'): void {
    if (decision.replace) return this.replace(c, decision.delayMs);
    this.e.giveUp(c.fatal ?? new WorkerStartError(`${decision.why} (last: process ${c.index} ${how})`));
  }

  /** Starts a replacement for `old` after `delay` ms; `old` keeps serving what it holds until it exits. */
  private replace(old: ChildHandle, delay: number): void {
    if (old.state !== 'exited') this.leaving.add(old);
    const go = () => {
      if (this.children[old.index] !== old || this.e.stopping() || this.e.gaveUp()) return;
      try {
        this.spawn(old.index);
      } catch (err) {
        // fork() itself failed (EAGAIN, ENOMEM): a start that failed, with nothing to blame.
        const how = `could not be forked: ${(err as Error)?.message}`;
        this.e.logger.error({ err, processIndex: old.index }, `process ${old.index} ${how}`);
        this.follow(old, this.policy.died({ settled: 0, blamed: 0, fatal: true }), how);
        this.e.checkDone();
      }
    };
    if (delay === 0) return go();
    // Kept referenced: while a replacement is pending it may be the only thing alive, and the
    // process must not end with tasks waiting. The teardown clears it.
    const timer = setTimeout(() => {
      this.respawnTimers.delete(timer);
      go();
    }, delay);
    this.respawnTimers.add(timer);
  }

  /** `lifecycleDurationHard`: an over-age child is drained briefly, then killed. */
  private checkHealth(): void {
    const hard = this.e.opts.lifecycleDurationHard;
    if (!hard) return;
    const now = Date.now();
    for (const c of this.live()) {
      // A retiring child (a soft limit) lets its tasks run, but the hard limit still applies to it.
      if ((c.state !== 'ready' && c.state !== 'retiring') || now - c.spawnedAt < hard) continue;
      // Drained briefly, then killed: unstarted tasks come back, running ones settle `timeout`.
      if (c.state === 'ready') {
        this.note(c.index, 'hard');
        this.follow(c, this.policy.retiring());
      }
      c.state = 'stopping';
      const grace = Math.min(5000, Math.max(100, Math.round(hard / 10)));
      c.post({ t: 'stop', graceMs: grace, reason: 'hard', leftover: Code.Timeout });
      setTimeout(() => c.killTree(), grace + this.e.opts.abortGrace + 2000).unref();
    }
  }
}
