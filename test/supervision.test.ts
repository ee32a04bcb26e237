import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MPMS, TaskTimeoutError, type Meta } from '../dist/index.js';
import { guardChildren, fixture, waitGone } from './helpers.js';

const worker = fixture('supervision-worker.mjs');

async function collectAll(m: MPMS, tasks: unknown[][]) {
  const got: { meta: Meta; result: unknown }[] = [];
  const reading = (async () => {
    for await (const r of m.iterResults()) got.push(r);
  })();
  for (const t of tasks) await m.put(...t);
  const summary = await m.join();
  await reading;
  return { got, summary };
}

// Whatever a test started must be gone once it ends.
guardChildren();

describe('supervision', () => {
  it('a task spinning forever with taskTimeout 1000 settles timeout ~1 s after it started; the others ok', async () => {
    const m = new MPMS({ worker, processes: 2, threads: 2, taskTimeout: 1000 });
    await m.start();
    const tasks: unknown[][] = Array.from({ length: 20 }, () => ['ok']);
    tasks[3] = ['spin'];
    const got: { meta: Meta; result: unknown }[] = [];
    const reading = (async () => {
      for await (const r of m.iterResults()) got.push(r);
    })();
    const t0 = Date.now();
    // A yardstick run beside it, under the same load: a 3 s sleep, with a limit of its own.
    await m.submit(['sleep', 3000], { timeout: 10_000 });
    for (const t of tasks) await m.put(...t);
    const summary = await m.join();
    await reading;
    // Not a hang: the 3 s yardstick plus start and stop.
    expect(Date.now() - t0).toBeLessThan(13_000);
    expect(summary).toMatchObject({ total: 21, ok: 20, timeout: 1 });
    const spun = got.find((r) => r.meta.status === 'timeout')!;
    const slept = got.find((r) => r.meta.args[0] === 'sleep')!;
    expect(spun.result).toBeInstanceOf(TaskTimeoutError);
    // Measured from the start of the run, not from put(): about 1 s, never less — and so well
    // before a 3 s task that ran beside it (a ratio, not a wall-clock bound a loaded machine breaks).
    expect(spun.meta.runMs).toBeGreaterThanOrEqual(1000);
    expect(spun.meta.runMs!).toBeLessThan(slept.meta.runMs!);
    expect(m.metrics().restarts.hard + m.metrics().restarts.crash).toBeGreaterThanOrEqual(1);
    expect(await waitGone(new Set(got.map((r) => r.meta.pid!)))).toEqual([]);
  });

  it('a task that honours its AbortSignal ends cleanly on timeout, without a thread restart', async () => {
    const m = new MPMS({ worker, processes: 1, threads: 1 });
    await m.start();
    const got: Meta[] = [];
    m.on('task', (meta) => got.push(meta));
    await m.submit(['abortable'], { timeout: 300 });
    await m.put('ok');
    const summary = await m.join();
    expect(summary).toMatchObject({ total: 2, ok: 1, timeout: 1 });
    expect(m.metrics().restarts).toMatchObject({ hard: 0, crash: 0 });
  });

  it('lifecycle 10, 200 tasks at P2xT2: all ok, no thread ran more than 10', async () => {
    const m = new MPMS({ worker, processes: 2, threads: 2, lifecycle: 10 });
    await m.start();
    const { got, summary } = await collectAll(m, Array.from({ length: 200 }, () => ['ok']));
    expect(summary).toMatchObject({ total: 200, ok: 200 });
    for (const r of got) expect((r.result as { ran: number }).ran).toBeLessThanOrEqual(10);
    expect(m.metrics().restarts.lifecycle).toBeGreaterThanOrEqual(200 / 10 - 4);
  });

  it('graceful die on task 10 of 100: 99 ok + 1 error, none lost, the process replaced', async () => {
    const m = new MPMS({ worker, processes: 2, threads: 2, workerGracefulDieTimeout: 2000 });
    await m.start();
    const restarts: string[] = [];
    m.on('restart', (r) => restarts.push(r.reason));
    const tasks: unknown[][] = Array.from({ length: 100 }, () => ['ok']);
    tasks[9] = ['die'];
    const { got, summary } = await collectAll(m, tasks);
    expect(summary).toMatchObject({ total: 100, ok: 99, error: 1, crashed: 0, cancelled: 0 });
    expect(new Set(got.map((r) => r.meta.taskId)).size).toBe(100);
    expect(restarts).toContain('gracefulDie');
  });

  it('retries: a task whose process is killed is re-run up to `retries` times, then crashed', async () => {
    const m = new MPMS({ worker: fixture('basic-worker.mjs'), processes: 2, threads: 1, retries: 1 });
    await m.start();
    const got: Meta[] = [];
    m.on('task', (meta) => got.push(meta));
    await m.put('kill-process');
    for (let i = 0; i < 10; i++) await m.put('add', i);
    const summary = await m.join();
    const poison = got.find((x) => x.args[0] === 'kill-process')!;
    expect(poison.status).toBe('crashed');
    expect(poison.attempts).toBe(2);
    expect(summary.total).toBe(11);
    // Unstarted tasks never suffer from a death (start logs); at most a few finished ones whose
    // outcomes had not left the process are retried.
    expect(summary.ok).toBeGreaterThanOrEqual(10 - 3);
    expect(m.metrics().restarts.crash).toBeLessThanOrEqual(2);
  });

  it('keepAlive: a lifecycle-1 thread waits for background work before its finalizer runs', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mpms-keep-'));
    const log = path.join(dir, 'log');
    const m = new MPMS({ worker, processes: 1, threads: 1, lifecycle: 1, initArgs: { log } });
    await m.start();
    await m.put('background', log);
    const summary = await m.join();
    expect(summary.ok).toBe(1);
    const lines = fs.readFileSync(log, 'utf8').trim().split('\n');
    // The background work finished before the retiring thread (the one that ran it) ran its finalizer.
    const bg = lines.findIndex((l) => l.startsWith('background done'));
    expect(bg).toBeGreaterThanOrEqual(0);
    const thread = lines[bg]!.split(' ')[2];
    const fin = lines.findIndex((l) => l.startsWith(`threadFinalizer ${thread} `));
    expect(fin).toBeGreaterThan(bg);
  });

  it('keepAlive is bounded: work that never ends delays retirement by hookTimeout, not for ever', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mpms-keep-'));
    const log = path.join(dir, 'log');
    const m = new MPMS({ worker, processes: 1, threads: 1, lifecycle: 1, hookTimeout: 400, initArgs: { log } });
    await m.start();
    await m.put('background-forever');
    await m.put('ok');
    const t0 = Date.now();
    const summary = await m.join();
    expect(summary).toMatchObject({ total: 2, ok: 2 });
    expect(Date.now() - t0).toBeLessThan(5000);
    // The retiring thread gave up waiting and still ran its finalizer.
    expect(fs.readFileSync(log, 'utf8')).toMatch(/threadFinalizer/);
  });
});
