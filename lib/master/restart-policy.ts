/**
 * When to replace a child, after how long, and when to give up: every supervision decision
 * about restarts lives here, not in the message handlers.
 *
 * Like an OTP supervisor's restart intensity: a child that dies before settling a single task
 * counts as a failed start; after `maxFailures` in a row the engine stops trying.
 */
export class RestartPolicy {
  private consecutiveFailures = 0;

  constructor(
    readonly maxFailures = 5,
    private readonly baseDelayMs = 100,
    private readonly maxDelayMs = 5000,
  ) {}

  /** A child became ready and settled work: the streak of failures is over. */
  succeeded(): void {
    this.consecutiveFailures = 0;
  }

  /**
   * A child died. Returns the delay before its replacement, or `undefined` when the engine
   * should stop replacing (a crash loop).
   */
  failed(wasHealthy: boolean): number | undefined {
    if (wasHealthy) {
      this.consecutiveFailures = 0;
      return 0;
    }
    this.consecutiveFailures++;
    if (this.consecutiveFailures >= this.maxFailures) return undefined;
    return Math.min(this.baseDelayMs * 2 ** (this.consecutiveFailures - 1), this.maxDelayMs);
  }

  get failures(): number {
    return this.consecutiveFailures;
  }
}
