// The one back-off (both layers) and the master's restart decisions built on it.
import { describe, expect, it } from 'vitest';
import { Backoff, backoffDelay, DEFAULT_BACKOFF } from '../../dist/shared/backoff.js';
import { RestartPolicy } from '../../dist/master/restart-policy.js';

describe('Backoff', () => {
  it('doubles from the base, caps, and gives up at the limit', () => {
    const b = new Backoff({ maxFailures: 8, baseDelayMs: 100, maxDelayMs: 1000 });
    const steps = Array.from({ length: 8 }, () => b.failed());
    expect(steps.slice(0, 7).map((s) => (s.giveUp ? -1 : s.delayMs))).toEqual([100, 200, 400, 800, 1000, 1000, 1000]);
    expect(steps[7]).toEqual({ giveUp: true });
    b.reset();
    expect(b.failures).toBe(0);
    expect(b.failed()).toEqual({ giveUp: false, delayMs: 100 });
  });

  it('defaults to 100 ms x 2^n, giving up at the 5th failure in a row', () => {
    expect([1, 2, 3, 4].map((n) => backoffDelay(DEFAULT_BACKOFF, n))).toEqual([100, 200, 400, 800]);
    const b = new Backoff();
    for (let i = 0; i < 4; i++) expect(b.failed().giveUp).toBe(false);
    expect(b.failed().giveUp).toBe(true);
  });
});

describe('RestartPolicy (master)', () => {
  const unblamed = { settled: 0, blamed: 0, fatal: false };

  it('replaces a retiring child at once', () => {
    expect(new RestartPolicy().retiring()).toEqual({ replace: true, delayMs: 0 });
  });

  it('backs off on deaths with nothing settled and nothing to blame, then gives up', () => {
    const p = new RestartPolicy();
    expect([1, 2, 3, 4].map(() => p.died(unblamed))).toEqual([100, 200, 400, 800].map((delayMs) => ({ replace: true, delayMs })));
    const last = p.died(unblamed);
    expect(last.replace).toBe(false);
    expect(p.failures).toBe(5);
  });

  it('a death blamed on a task does not count towards giving up', () => {
    const p = new RestartPolicy();
    for (let i = 0; i < 4; i++) p.died(unblamed);
    for (let i = 0; i < 20; i++) expect(p.died({ settled: 0, blamed: 1, fatal: false })).toEqual({ replace: true, delayMs: 0 });
    expect(p.died(unblamed).replace).toBe(false);
  });

  it('a child that settled work ends the streak; a fatal start never does', () => {
    const p = new RestartPolicy();
    for (let i = 0; i < 4; i++) p.died(unblamed);
    expect(p.died({ settled: 3, blamed: 0, fatal: false })).toEqual({ replace: true, delayMs: 0 });
    expect(p.failures).toBe(0);
    for (let i = 0; i < 4; i++) p.died({ settled: 9, blamed: 2, fatal: true });
    expect(p.died({ settled: 9, blamed: 2, fatal: true }).replace).toBe(false);
  });
});
