/**
 * How many tasks a thread may hold beyond those it runs (its prefetch), from how long tasks
 * take. Short tasks need a deep prefetch, or the thread idles while outcomes and refills cross
 * the hops; long tasks need almost none, and a deep one would only strand tasks behind a slow
 * one while other threads idle. Used by the child (thread windows) and the master (child windows).
 */

/** About this many ms of work should wait in a thread's queue. */
const QUEUED_MS = 2;
const MIN_PREFETCH = 1;
/**
 * At most this many tasks wait in a thread beyond one per concurrent slot. Measured (200k no-op
 * tasks, P2×T2): 64 → ~200k/s, 256 → ~250k/s, 512 and 1024 no better; deeper only costs memory.
 */
const MAX_QUEUED = 256;

/** Tasks one thread may hold: one running per slot, plus ≈ QUEUED_MS of work waiting. */
export function threadWindow(concurrency: number, avgRunMs: number): number {
  const perSlot = Math.max(MIN_PREFETCH, Math.round(QUEUED_MS / Math.max(avgRunMs, 0.001)));
  // The cap is per thread, not per slot: an async worker with 32 slots needs no 32 × 256 queue.
  return concurrency + Math.min(concurrency * perSlot, Math.max(concurrency, MAX_QUEUED));
}

/** About this many ms of work should wait in a child's relay, to cover the master↔child hop. */
const HOP_MS = 2;

/**
 * The longest a child holds finished outcomes back to send them together (see
 * `Outbox.flushOrHold`, child/outbox.ts): each message across the pipe wakes the master, and the master's refill
 * wakes the child. A child holds outcomes only while its threads have queued work to go on
 * with, so its window must cover this on top of the hop.
 */
export const HOLD_MS = 10;

/**
 * Tasks one child may hold: what its threads may hold, plus enough to keep them fed while a
 * refill crosses the master↔child hop and while outcomes are held back to leave together —
 * `HOP_MS + HOLD_MS` of work, counted in time: tasks a child holds cannot run elsewhere, so at
 * the end of a job a child left with a backlog keeps the other children's cores idle, and this
 * bounds that backlog to ~12 ms of work (measured: 5 ms CPU tasks at P2×T1 ran at 0.95 of bare
 * processes with a fixed 2× + 16 window). Tiny tasks stop at `MAX_QUEUED` per thread, so a
 * child never holds more than twice what its threads may hold.
 */
export function childWindow(threads: number, concurrency: number, avgRunMs: number): number {
  const threadsHold = threads * threadWindow(concurrency, avgRunMs);
  const hop = Math.ceil((threads * concurrency * (HOP_MS + HOLD_MS)) / Math.max(avgRunMs, 0.001));
  return threadsHold + Math.min(hop, threads * Math.max(concurrency, MAX_QUEUED));
}

/** An exponentially weighted average of task run times, starting pessimistic (long tasks: shallow windows). */
export class RunTimeAverage {
  ms = 1;
  /** Run times observed (or inherited with the average): until a few, `ms` is mostly the guess. */
  observed = 0;
  observe(runMs: number): void {
    this.ms += (runMs - this.ms) * 0.05;
    this.observed++;
  }

  /** Takes over what `other` learnt (a replacement thread inherits its predecessor's). */
  inherit(other: RunTimeAverage): void {
    this.ms = other.ms;
    this.observed = other.observed;
  }
}
