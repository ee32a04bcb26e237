// The ledger (exactly one outcome per task) and the prefetch windows, without any process.
import { describe, expect, it } from 'vitest';
import { Ledger } from '../../dist/master/ledger.js';
import { Code } from '../../dist/protocol.js';
import { childWindow, RunTimeAverage, threadWindow } from '../../dist/shared/windows.js';

describe('Ledger', () => {
  it('settles each task once and counts it under its status', () => {
    const l = new Ledger();
    const a = l.create([1], 0, undefined, 0);
    const b = l.create([2], 0, { k: 1 }, 0);
    expect(b.id).toBe(a.id + 1);
    expect(l.size).toBe(2);
    expect(l.settle(a, Code.Ok, 1, 1)).toBe(true);
    expect(l.settle(a, Code.Crashed, 1, 1)).toBe(false);
    expect(l.settle(b, Code.Timeout, 5, 0)).toBe(true);
    expect(l.counts).toEqual({ ok: 1, error: 0, timeout: 1, crashed: 0, cancelled: 0 });
    expect(l.finished).toBe(2);
    expect(l.size).toBe(0);
    expect(l.summary(Date.now())).toMatchObject({ total: 2, ok: 1, timeout: 1 });
  });

  it('adopted tasks keep their id and later ids go above them', () => {
    const l = new Ledger();
    const r = l.adopt(41, [], 1, 0, undefined);
    expect(r).toMatchObject({ id: 41, attempts: 1, remote: true });
    expect(l.create([], 0, undefined, 0).id).toBe(42);
  });

  it('removes the abort listener when a task settles', () => {
    const l = new Ledger();
    const r = l.create([], 0, undefined, 0);
    let removed = 0;
    r.unlisten = () => removed++;
    l.settle(r, Code.Cancelled, 0, 0);
    expect(removed).toBe(1);
  });
});

describe('windows', () => {
  it('a thread holds one task per slot plus a prefetch that shrinks as tasks get longer', () => {
    expect(threadWindow(1, 1000)).toBe(2);
    expect(threadWindow(1, 0.0001)).toBe(1 + 256);
    expect(threadWindow(4, 1)).toBeLessThan(threadWindow(4, 0.1));
    // The cap is per thread, not per slot.
    expect(threadWindow(32, 0.0001)).toBe(32 + 256);
  });

  it('a child holds what its threads hold plus the work of the hop and the hold (HOP_MS + HOLD_MS), at most as much again', () => {
    const threads = 2 * threadWindow(1, 1000);
    expect(childWindow(2, 1, 1000)).toBe(threads + 1);
    // 1 ms tasks: 2 threads × 12 ms of work on top of what the threads hold.
    expect(childWindow(2, 1, 1)).toBe(2 * threadWindow(1, 1) + 24);
    // Tiny tasks: the extra stops at a thread's queue (256) per thread, never more than the threads hold.
    const tiny = 2 * threadWindow(1, 0.0001);
    expect(childWindow(2, 1, 0.0001)).toBe(tiny + 2 * 256);
    expect(childWindow(2, 1, 0.0001)).toBeLessThanOrEqual(2 * tiny);
  });

  it('a child of ms-scale tasks also holds ~12 ms of work beyond its threads (hop + outcomes held back)', () => {
    // 5 ms tasks, one thread: it holds 2 (one running, one queued); the child 3 more (12 ms / 5).
    expect(threadWindow(1, 5)).toBe(2);
    expect(childWindow(1, 1, 5)).toBe(2 + 3);
    // 10 ms tasks on 16 threads: 16 × 12 / 10 → 20 more.
    expect(childWindow(16, 1, 10)).toBe(16 * threadWindow(1, 10) + 20);
    // Never more than twice what the threads may hold at most.
    expect(childWindow(4, 8, 0.0001)).toBeLessThanOrEqual(2 * 4 * threadWindow(8, 0.0001));
  });

  it('a replacement inherits its predecessor\'s average with how many run times it rests on', () => {
    const old = new RunTimeAverage();
    for (let i = 0; i < 40; i++) old.observe(5);
    const next = new RunTimeAverage();
    expect(next.observed).toBe(0);
    next.inherit(old);
    expect(next.ms).toBe(old.ms);
    expect(next.observed).toBe(40);
  });

  it('the run-time average moves towards what it observes', () => {
    const avg = new RunTimeAverage();
    for (let i = 0; i < 200; i++) avg.observe(10);
    expect(avg.ms).toBeGreaterThan(9.9);
  });
});
