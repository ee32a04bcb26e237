/**
 * The one restart back-off of mpms, used by both supervisors (the master's for processes, the
 * child's for threads): after the n-th start failure in a row, wait `base × 2^(n-1)` ms, capped;
 * after `maxFailures` in a row, give up. Like an OTP supervisor's restart intensity: a broken
 * module or initializer cannot spin the CPU, and a loop of failures ends in one clear error.
 */
export interface BackoffPolicy {
  /** Failures in a row after which the supervisor gives up. */
  maxFailures: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

/** 100 ms, 200, 400, 800, then give up at the 5th failure in a row (cap 5 s for larger limits). */
export const DEFAULT_BACKOFF: Readonly<BackoffPolicy> = { maxFailures: 5, baseDelayMs: 100, maxDelayMs: 5000 };

/** What to do after a failure: restart after `delayMs`, or give up. */
export type BackoffStep = { giveUp: false; delayMs: number } | { giveUp: true };

/** Counts failures in a row and says how long to wait before the next start, or to give up. */
export class Backoff {
  private streak = 0;

  constructor(readonly policy: Readonly<BackoffPolicy> = DEFAULT_BACKOFF) {}

  /** Failures in a row so far. */
  get failures(): number {
    return this.streak;
  }

  /** A start succeeded (did work): the streak is over. */
  reset(): void {
    this.streak = 0;
  }

  /** One more failure in a row. */
  failed(): BackoffStep {
    this.streak++;
    if (this.streak >= this.policy.maxFailures) return { giveUp: true };
    return { giveUp: false, delayMs: backoffDelay(this.policy, this.streak) };
  }
}

/** The wait before the next start after `failures` failures in a row (>= 1). */
export function backoffDelay(policy: Readonly<BackoffPolicy>, failures: number): number {
  return Math.min(policy.baseDelayMs * 2 ** (failures - 1), policy.maxDelayMs);
}
