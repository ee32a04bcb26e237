/**
 * Whether to replace a child process, after how long, and when to give up: every such decision
 * of the master is taken here. The engine reports what happened (a child retires, is stopped
 * by a hard limit, died — and what its start logs blame) and does what this returns.
 *
 * Like an OTP supervisor's restart intensity, with blame. A child that dies while its start
 * logs show a task running died of that task (a task that SIGKILLs its process, a native
 * crash, the OOM killer taking a task's allocation): the task is charged — it is retried or
 * settles `crashed` — and the death does not count towards giving up, so one poison task
 * cannot stop the engine for every other task. The breaker is for children that die with no
 * task to blame, before settling any: a module that exits at import, a failing initializer, a
 * child killed at boot. After `maxFailures` of those in a row the engine gives up.
 */

import { Backoff, type BackoffPolicy, DEFAULT_BACKOFF } from '../shared/backoff.js';

/** How a child ended, as far as the master can tell. */
export interface ChildEnd {
  /** Outcomes it settled before it died. */
  settled: number;
  /** Tasks its threads' start logs show running when it died: the death is theirs. */
  blamed: number;
  /** It said it could not start (`fatal`: a failing initializer, a missing module). */
  fatal: boolean;
}

/** What to do about a child that died: replace it after `delayMs`, or give up (`why`). */
export type RestartDecision = { replace: true; delayMs: number } | { replace: false; why: string };

export class RestartPolicy {
  private readonly backoff: Backoff;

  constructor(policy: Readonly<BackoffPolicy> = DEFAULT_BACKOFF) {
    this.backoff = new Backoff(policy);
  }

  get maxFailures(): number {
    return this.backoff.policy.maxFailures;
  }

  /** A child settled work: the streak of failures is over. */
  succeeded(): void {
    this.backoff.reset();
  }

  /**
   * A child is being retired (a soft limit, a graceful die) or stopped by a hard limit: it was
   * healthy, and its replacement starts at once (it serves while the old one drains).
   */
  retiring(): RestartDecision {
    return { replace: true, delayMs: 0 };
  }

  /** A child died unasked (or could not be forked at all: `{ settled: 0, blamed: 0, fatal: true }`). */
  died(end: ChildEnd): RestartDecision {
    if (!end.fatal && end.blamed > 0) return { replace: true, delayMs: 0 };
    if (!end.fatal && end.settled > 0) {
      this.backoff.reset();
      return { replace: true, delayMs: 0 };
    }
    const step = this.backoff.failed();
    if (step.giveUp) {
      const n = this.backoff.failures;
      return { replace: false, why: `${n} child processes in a row died before finishing a task, with no task to blame` };
    }
    return { replace: true, delayMs: step.delayMs };
  }

  get failures(): number {
    return this.backoff.failures;
  }
}
