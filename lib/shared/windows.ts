/**
 * How many tasks a thread may hold beyond those it runs (its prefetch), from how long tasks
 * take. Short tasks need a deep prefetch, or the thread idles while outcomes and refills cross
 * the hops; long tasks need almost none, and a deep one would only strand tasks behind a slow
 * one while other threads idle. Used by the child (thread windows) and the master (child windows).
 */

/** About this many ms of work should wait in a thread's queue. */
const QUEUED_MS = 2;
const MIN_PREFETCH = 1;
const MAX_PREFETCH = 64;

export function prefetchFor(avgRunMs: number): number {
  return Math.max(MIN_PREFETCH, Math.min(MAX_PREFETCH, Math.round(QUEUED_MS / Math.max(avgRunMs, 0.01))));
}

/** An exponentially weighted average of task run times, starting pessimistic (long tasks: shallow windows). */
export class RunTimeAverage {
  ms = 1;
  observe(runMs: number): void {
    this.ms += (runMs - this.ms) * 0.05;
  }
}
