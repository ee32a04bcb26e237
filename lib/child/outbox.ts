/**
 * What the child owes the master: finished outcomes and attempts handed back unstarted, sent in
 * batches (columns, protocol.ts). A batch leaves at once when no write is under way; while one
 * is, new outcomes coalesce and leave one event-loop turn after it completes. Outcomes of
 * ms-scale tasks may be held back a little to leave with the next ones (`flushOrHold`).
 */
import fs from 'node:fs';
import { Code, type FromChild, type ResultWire, replacedResult, resultId, toOutcomeColumns } from '../protocol.js';
import { unsendable } from '../shared/outcomes.js';
import { HOLD_MS } from '../shared/windows.js';
import type { ThreadSlot } from './thread-slot.js';

export type Send = (msg: FromChild, cb?: (err: Error | null) => void) => void;

/** What the outbox needs of its relay. */
export interface OutboxHost {
  send: Send;
  log(level: 'debug', msg: string): void;
  /** Threads serving their slots: a hold reads how long their queued work lasts. */
  threads(): readonly ThreadSlot[];
  /** Attempts waiting in the child's queue. */
  queued(): number;
  stopping(): boolean;
  /** A write completed: the relay may hand out more tasks before the next batch leaves. */
  afterSend(): void;
}

export class Outbox {
  private done: ResultWire[] = [];
  private returned: number[] = [];
  /** Start logs of threads that died, removed once the batch with their crashed outcomes is written. */
  private deadLogs: string[] = [];
  private sending = false;
  private readonly afterSend = () => {
    this.sending = false;
    this.host.afterSend();
    this.flushOrHold();
  };
  /** When the oldest outcome held back (see flushOrHold) finished; 0 when none is held. */
  private heldSince = 0;
  private holdTimer: NodeJS.Timeout | undefined;
  private readonly holdExpired = () => {
    this.holdTimer = undefined;
    this.flush();
  };

  constructor(private readonly host: OutboxHost) {}

  /** An outcome decided (by a thread, or here): leaves with the next batch. */
  add(r: ResultWire): void {
    this.done.push(r);
  }

  /** An attempt handed back unstarted: the master queues it again. */
  giveBack(id: number): void {
    this.returned.push(id);
  }

  /** A dead thread's start log: the master needs it until the batch after its exit is written. */
  dropAfterNextWrite(startLog: string): void {
    this.deadLogs.push(startLog);
  }

  /**
   * Sends finished outcomes now, or holds them back a little to leave with the next ones: each
   * message wakes the master (and its refill wakes this child), and on a busy machine a wake-up
   * costs ~100–200 µs of CPU — as much as the work of a short task. They are held only while
   * the threads have queued work to go on with until the next outcome is expected plus a hop
   * (so no thread runs dry waiting for the refill this message asks for), and never longer
   * than HOLD_MS: a lone task's outcome, or the last of a job, leaves at once.
   */
  flushOrHold(): void {
    // Short tasks fill a message within a hop anyway (and batch while a write is under way):
    // holding them would only add latency.
    const n = this.done.length;
    if (n === 0 || n >= HOLD_BATCH || this.returned.length > 0 || this.host.stopping()) {
      this.flush();
      return;
    }
    const now = Date.now();
    const { fedMs, nextMs } = this.outlook();
    // Held only if the next outcome is due within the bound: the flush then rides on its
    // arrival (this child is awake for it anyway) instead of on a timer of its own, which
    // would be one more wake-up. The timer only bounds a hold when outcomes come late.
    const until = (this.heldSince || now) + HOLD_MS;
    if (fedMs > 0 && now + nextMs <= until) {
      if (this.heldSince === 0) {
        this.heldSince = now;
        this.holdTimer = setTimeout(this.holdExpired, HOLD_MS);
      }
      return;
    }
    this.flush();
  }

  /**
   * `fedMs`: how long (ms) the threads can go on with the tasks queued for them (in them and
   * here, not running) beyond the next outcome expected and a refill's hop; ≤ 0 when an
   * outcome held now could leave a thread idle. `nextMs`: when the next outcome is expected.
   */
  private outlook(): { fedMs: number; nextMs: number } {
    let queued = this.host.queued();
    let perMs = 0; // tasks the threads finish per ms
    let slots = 0;
    for (const slot of this.host.threads()) {
      if (!slot.ready || slot.retiring || slot.exited) continue;
      // Its average still the initial guess (1 ms): no-op tasks would read as ms-scale.
      if (slot.runTime.observed < HOLD_MIN_OBSERVED) return { fedMs: 0, nextMs: Infinity };
      queued += Math.max(0, slot.inflight - slot.concurrency);
      perMs += slot.concurrency / Math.max(slot.runTime.ms, 0.001);
      slots += slot.concurrency;
    }
    // Sub-ms tasks: outcomes come in numbers and each message carries many; a hold would only
    // add latency (measured: round trips under a no-op flood, p50 +1–4 ms).
    if (perMs === 0 || queued === 0 || slots / perMs < HOLD_MIN_RUN_MS) return { fedMs: 0, nextMs: Infinity };
    return { fedMs: (queued - 1) / perMs - HOLD_HOP_MS, nextMs: 1 / perMs };
  }

  /**
   * Sends the pending outcomes to the master. While a send is under way they coalesce, and the
   * next batch leaves one event-loop turn after the write completed.
   */
  flush(): void {
    // While a send is under way, held outcomes stay held: they leave right after it (afterSend
    // finds their hold expired), never a whole HOLD_MS later.
    if (this.sending) return;
    if (this.heldSince !== 0) {
      this.heldSince = 0;
      clearTimeout(this.holdTimer);
      this.holdTimer = undefined;
    }
    if (this.done.length === 0 && this.returned.length === 0) return;
    const msg: FromChild = { t: 'batch' };
    const pending = this.done;
    if (pending.length) msg.done = toOutcomeColumns(pending);
    if (this.returned.length) msg.returned = this.returned;
    this.done = [];
    this.returned = [];
    this.sending = true;
    // Start logs of threads that died: their crashed outcomes are in this batch, so once it is
    // written the master no longer needs the logs.
    const logs = this.deadLogs;
    this.deadLogs = [];
    const after = (err: Error | null) => {
      if (err) return; // the master is gone; the disconnect handler ends this process
      for (const file of logs) fs.rmSync(file, { force: true });
      setImmediate(this.afterSend);
    };
    try {
      this.host.send(msg, after);
    } catch (err) {
      this.sendSplit(msg, pending, err as Error, after);
    }
  }

  /** A batch failed to serialize: send its outcomes one by one, replacing each unsendable one. */
  private sendSplit(
    msg: Extract<FromChild, { t: 'batch' }>,
    pending: ResultWire[],
    err: Error,
    after: (err: Error | null) => void,
  ): void {
    this.host.log('debug', `batch could not be sent whole (${err.message}); sending outcomes one by one`);
    delete msg.done;
    for (const r of pending) {
      try {
        this.host.send({ t: 'batch', done: toOutcomeColumns([r]) });
      } catch (e) {
        const wire = unsendable(
          `the result of task ${resultId(r)} cannot be sent to the master: ${(e as Error).message}`,
        );
        this.host.send({ t: 'batch', done: toOutcomeColumns([replacedResult(r, Code.Error, wire)]) });
      }
    }
    this.host.send(msg, after);
  }

  /** Waits (bounded) until every pending outcome has been written to the master. */
  async drain(ms: number): Promise<void> {
    const until = Date.now() + ms;
    while ((this.sending || this.done.length || this.returned.length) && Date.now() < until) {
      this.flush();
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

/** What a refill takes to arrive once outcomes leave (master wake-up, pump, write, read), with margin. */
const HOLD_HOP_MS = 2;
/** Outcomes that leave at once however much work is queued: a message this full is worth its wake-up. */
const HOLD_BATCH = 16;
/** Outcomes are held only for tasks that take this long on average (ms): see outlook(). */
const HOLD_MIN_RUN_MS = 0.5;
/**
 * Nor before each thread's average rests on this many of its tasks (its own or its
 * predecessor's): the average starts at 1 ms, and the first outcomes of a job of tiny tasks
 * were held (a child SIGKILLed early in a run then took finished outcomes with it).
 */
const HOLD_MIN_OBSERVED = 32;
