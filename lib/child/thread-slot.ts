/**
 * One worker thread as the child sees it: the Worker, the shared slots it writes, and the
 * attempts handed to it in order. Where an attempt is in the thread — waiting, running, or
 * left (finished) — is decided here and only here (`stateOf`, `partition`), from one reading of
 * the thread's shared memory: its consumed count and its running slots.
 */
import { Worker } from 'node:worker_threads';
import type { Readable } from 'node:stream';
import type { EventLoopUtilization } from 'node:perf_hooks';
import { SLOTS, taskAttempt, taskId, type ErrorWire, type StartPhase, type ThreadInit, type TaskWire } from '../protocol.js';
import type { ToThread } from '../protocol.js';
import { Ring } from '../shared/ring.js';
import { RunTimeAverage, threadWindow } from '../shared/windows.js';

const THREAD_ENTRY = new URL('../thread/entry.js', import.meta.url);
/** The shortest span (ms) of a thread's own work whose event-loop utilization is trusted. */
export const UTILIZATION_SPAN_MS = 100;

/**
 * What threads wrote to stdout/stderr and this process has not yet passed on: a Worker's output
 * reaches its parent as messages and is piped to the parent's own stdout/stderr from there, so
 * it may still be in flight after the thread has exited. One entry per thread, gone once both
 * its streams have ended (everything it wrote was handed to this process's stdout/stderr).
 */
const pendingOutput = new Set<Promise<void>>();

/** Resolves once every thread started so far has had all of its output passed on (see pendingOutput). */
export function threadOutputPassedOn(): Promise<void> {
  return Promise.all(pendingOutput).then(() => undefined);
}

function ended(stream: Readable): Promise<void> {
  return new Promise((resolve) => {
    if (stream.readableEnded || stream.destroyed) return resolve();
    stream.once('end', resolve).once('close', resolve).once('error', () => resolve());
  });
}

/** Where an attempt handed to a thread is (see ThreadSlot.stateOf). */
export type AttemptState = { at: 'waiting' } | { at: 'running'; startedAt: number } | { at: 'left' };

export class ThreadSlot {
  readonly worker: Worker;
  readonly shared: Float64Array;
  /** Attempts handed to the thread, oldest first; `sentBase` of them have already been trimmed off the front. */
  private readonly sent = new Ring<TaskWire>(64);
  private sentBase = 0;
  /** Tasks this thread holds (queued in it or running), as counted by the child. */
  inflight = 0;
  ready = false;
  retiring = false;
  exited = false;
  /** Set when the thread failed before it was ready (the phase it failed in). */
  failedStart: StartPhase | undefined;
  fatal: ErrorWire | undefined;
  /** Its last uncaught error, for the crash message. */
  lastError: Error | undefined;
  /** Terminated by the child because a task ignored its abort: its tasks' outcomes say so. */
  hardKilled = false;
  readonly startLog: string;
  /** Its own (jittered) lifecycle in tasks and in ms, 0 for none: the thread supervisor starts its successor ahead of it. */
  readonly lifecycle: number;
  readonly lifecycleDuration: number;
  readonly spawnedAt = Date.now();
  /**
   * A replacement started ahead of this thread's retirement, so that it is ready when this one
   * stops taking tasks; it takes this one's place then (see ThreadSupervisor.startSuccessor).
   */
  successor: ThreadSlot | undefined;
  /** Set once the supervisor decided whether to start a successor ahead (it asks once per thread). */
  aheadDecided = false;
  /** Its successor came due while it was itself on standby: decided when it takes its place. */
  successorDue = false;
  /** Starts the successor when this thread's lifecycleDuration is about to run out. */
  successorTimer: NodeJS.Timeout | undefined;
  /** Retires it when its lifecycleDuration, counted from when it took its slot, runs out. */
  durationTimer: NodeJS.Timeout | undefined;
  /**
   * Attempts settled here by an abort while this thread still held them (running, or waiting and
   * maybe started before the abort reached it), with when they were aborted: watched until they
   * leave the thread (see TaskWatchdog.checkAborted).
   */
  readonly aborted = new Map<TaskWire, { pos: number; at: number }>();
  /** After its finalizer, background work was still pending in it (it said what); it drains until it exits. */
  draining: string[] | undefined;
  /** It reported (or the child did for it) that work still pending was cut when it exited. */
  cutReported = false;
  /** Told to end its drain now: too many retired threads were draining (see ThreadSupervisor.boundDraining). */
  drainCutAsked = false;
  /** Terminates it if it outlives its drain deadline (see ThreadSupervisor.endDrainBy). */
  drainKill: NodeJS.Timeout | undefined;

  private workingSince: EventLoopUtilization | undefined;

  /** Run times of its tasks, which size its window (shared/windows.ts). */
  readonly runTime = new RunTimeAverage();

  constructor(
    readonly index: number,
    init: Omit<ThreadInit, 'slots' | 'threadIndex'>,
    readonly concurrency: number,
  ) {
    this.startLog = init.startLog;
    this.lifecycle = init.lifecycle;
    this.lifecycleDuration = init.lifecycleDuration;
    const slots = new SharedArrayBuffer(SLOTS.bytes(concurrency));
    this.shared = new Float64Array(slots);
    this.worker = new Worker(THREAD_ENTRY, {
      workerData: { ...init, threadIndex: index, slots } satisfies ThreadInit,
      name: `${init.name}:p${init.processIndex}:t${index}`,
    });
    const output: Promise<void> = Promise.all([ended(this.worker.stdout), ended(this.worker.stderr)]).then(() => {
      pendingOutput.delete(output);
    });
    pendingOutput.add(output);
  }

  /** Starts the span `utilization()` covers: its boot and any standby wait must not count. */
  markWorking(): void {
    this.workingSince = this.worker.performance.eventLoopUtilization();
  }

  /**
   * Its predecessor's utilization, which stands for this thread's own until that covers
   * UTILIZATION_SPAN_MS: the work is the same, and a reading over a few ms is mostly the
   * thread's own start (JIT, first tasks) — sleep tasks read 0.31–0.54 over their first ms and
   * 0.05–0.10 over their life.
   */
  inheritedUtilization: number | undefined;

  /**
   * Event-loop utilization since markWorking() — near 1 for CPU-bound work, low for I/O waits —
   * or, over a shorter span than UTILIZATION_SPAN_MS, its predecessor's; undefined when there
   * is no reading worth trusting yet.
   */
  utilization(): number | undefined {
    if (this.workingSince && !this.exited) {
      const elu = this.worker.performance.eventLoopUtilization(this.workingSince);
      // A worker that stopped reads zeros (the deltas turn negative): its last reading stands.
      if (elu.idle >= 0 && elu.active >= 0 && elu.idle + elu.active >= UTILIZATION_SPAN_MS) this.lastUtilization = elu.utilization;
    }
    return this.lastUtilization ?? this.inheritedUtilization;
  }

  private lastUtilization: number | undefined;

  /** Tasks it may hold: what it runs plus a prefetch sized by how long its tasks take. */
  get window(): number {
    return threadWindow(this.concurrency, this.runTime.ms);
  }

  get credit(): number {
    if (!this.ready || this.retiring || this.exited) return 0;
    const credit = this.window - this.inflight;
    // Refill when half the window is free or the thread runs low: fewer, larger messages.
    return credit * 2 >= this.window || this.inflight < this.concurrency ? credit : 0;
  }

  post(tasks: TaskWire[]): void {
    for (const t of tasks) this.sent.push(t);
    this.send({ t: 'tasks', tasks });
  }

  /** The one way a message reaches the thread: typed, so the protocol does not stop at this boundary. */
  send(msg: ToThread): void {
    this.worker.postMessage(msg);
  }

  /** Drops attempts from the front of the order list once they are no longer held here. */
  trim(stillHere: (task: TaskWire) => boolean): void {
    while (this.sent.length > 0 && !stillHere(this.sent.peek()!)) {
      this.sent.shift();
      this.sentBase++;
    }
  }

  /** Tasks the thread has taken from the head of its queue (started, or skipped as aborted). */
  get consumed(): number {
    return this.shared[SLOTS.consumed]!;
  }

  /** Absolute place of this attempt in the order it was handed to this thread, or -1 if no longer listed. */
  positionOf(task: TaskWire): number {
    for (let i = this.sent.length - 1; i >= 0; i--) {
      if (this.sent.at(i) === task) return this.sentBase + i;
    }
    return -1;
  }

  /**
   * Where this attempt is in the thread: still `waiting` (not consumed), `running` (in a slot,
   * with its start), or `left`: consumed and in no slot, so it finished and its outcome is on
   * its way (or it was skipped, aborted before it started). The count is read before the slots:
   * the thread fills a task's slot before it counts it consumed (see SLOTS), so a running task
   * never reads as `left`. Undefined if the attempt is not listed here. `pos`: its place, if
   * known already (an attempt no longer held may have been trimmed off the order list).
   */
  stateOf(task: TaskWire, pos = this.positionOf(task)): AttemptState | undefined {
    if (pos < 0) return undefined;
    const consumed = this.shared[SLOTS.consumed]!;
    const startedAt = this.runningSince(taskId(task), taskAttempt(task));
    if (startedAt > 0) return { at: 'running', startedAt };
    return pos < consumed ? { at: 'left' } : { at: 'waiting' };
  }

  /**
   * Splits the attempts still handed to this thread into those it had started (or skipped) and
   * those it never reached, from the consumed count the thread keeps in shared memory.
   */
  partition(stillHere: (task: TaskWire) => boolean): { started: TaskWire[]; unstarted: TaskWire[] } {
    const consumed = this.shared[SLOTS.consumed]!;
    const started: TaskWire[] = [];
    const unstarted: TaskWire[] = [];
    for (let i = 0; i < this.sent.length; i++) {
      const task = this.sent.at(i)!;
      if (!stillHere(task)) continue;
      if (this.sentBase + i < consumed) started.push(task);
      else unstarted.push(task);
    }
    return { started, unstarted };
  }

  /** The epoch ms at which this attempt of task `id` started in this thread, or 0 if it is not running now. */
  runningSince(id: number, attempt: number): number {
    for (let k = 0; k < this.concurrency; k++) {
      const at = SLOTS.idAt(k);
      if (this.shared[at] === id && this.shared[at + 1] === attempt) return this.shared[at + 2]!;
    }
    return 0;
  }

  /** Calls `visit(id, attempt, startedAt)` for every task running in this thread now. */
  forEachRunning(visit: (id: number, attempt: number, startedAt: number) => void): void {
    for (let k = 0; k < this.concurrency; k++) {
      const at = SLOTS.idAt(k);
      const id = this.shared[at]!;
      if (id !== 0) visit(id, this.shared[at + 1]!, this.shared[at + 2]!);
    }
  }
}
