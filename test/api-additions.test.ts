/** Round-2 API additions (issue 16): run(), with real child processes and threads. */

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  type Meta,
  MPMS,
  QueueFullError,
  TaskCancelledError,
  TaskTimeoutError,
  UnrecoverableError,
  WorkerCrashedError,
} from '../dist/index.js';
import { fixture, guardChildren, runNode } from './helpers.js';

guardChildren();

const basic = fixture('basic-worker.mjs');

describe('run()', () => {
  it('resolves with the result on ok and rejects with the outcome error (err.meta) otherwise', async () => {
    const collected: number[] = [];
    const m = new MPMS({
      worker: basic,
      processes: 2,
      threads: 2,
      collector: (meta) => void collected.push(meta.taskId),
    });
    const seen: Meta[] = [];
    m.on('task', (meta) => seen.push(meta));
    await m.start();
    const putId = await m.put('echo', 'from put');
    expect(await m.run(['echo', { a: 1 }])).toEqual({ a: 1 });
    expect(await m.run(['add', 41])).toBe(42);

    const thrown = await m.run(['throw', 'x']).catch((e: Error) => e);
    expect(thrown).toBeInstanceOf(Error);
    expect((thrown as Error).name).toBe('TypeError');
    expect((thrown as Error).message).toBe('bad x');
    const meta = (thrown as Error & { meta: Meta }).meta;
    expect(meta.status).toBe('error');
    expect(meta.attempts).toBe(1);
    expect(meta.args).toEqual(['throw', 'x']);

    const timedOut = await m.run(['sleep', 10_000], { timeout: 100 }).catch((e: Error) => e);
    expect(timedOut).toBeInstanceOf(TaskTimeoutError);
    expect((timedOut as Error & { meta: Meta }).meta.status).toBe('timeout');

    const crashed = await m.run(['exit-thread', 7]).catch((e: Error) => e);
    expect(crashed).toBeInstanceOf(WorkerCrashedError);
    expect((crashed as Error & { meta: Meta }).meta.status).toBe('crashed');

    const ac = new AbortController();
    ac.abort();
    const cancelled = await m.run(['echo', 1], { signal: ac.signal }).catch((e: Error) => e);
    expect(cancelled).toBeInstanceOf(TaskCancelledError);
    expect((cancelled as Error & { meta: Meta }).meta.status).toBe('cancelled');

    const summary = await m.join();
    // The collector saw only the put() task; the 'task' listeners and the summary saw them all.
    expect(collected).toEqual([putId]);
    expect(seen).toHaveLength(7);
    expect(summary).toMatchObject({ total: 7, ok: 3, error: 1, timeout: 1, crashed: 1, cancelled: 1 });
  }, 60_000);

  it('run() tasks never reach iterResults(), and the iterator ends once put() tasks are read', async () => {
    const m = new MPMS({ worker: basic, processes: 1, threads: 2 });
    await m.start();
    const it = m.iterResults();
    const runs = Promise.all([1, 2, 3].map((i) => m.run(['add', i])));
    await m.put('echo', 'p');
    expect(await runs).toEqual([2, 3, 4]);
    const joined = m.join();
    const got: unknown[] = [];
    for await (const r of it) got.push(r.result);
    expect(got).toEqual(['p']);
    expect((await joined).total).toBe(4);
  }, 60_000);

  it('10,000 concurrent run() calls with a small queue: waiting callers hold no task', async () => {
    const max = 8;
    const m = new MPMS({ worker: basic, processes: 2, threads: 2, taskQueueMaxsize: max });
    await m.start();
    let maxQueued = 0;
    m.on('task', () => (maxQueued = Math.max(maxQueued, m.metrics().queued)));
    const calls = Array.from({ length: 10_000 }, (_, i) => m.run(['add', i]));
    // Every call was made; only what the queue and the children's windows take is accepted.
    const acceptedEarly = m.totalCount;
    const early = m.metrics();
    const results = await Promise.all(calls).finally(() => m.terminate());
    expect(results[0]).toBe(1);
    expect(results[9_999]).toBe(10_000);
    expect(maxQueued).toBeLessThanOrEqual(max);
    expect(early.queued).toBeLessThanOrEqual(max);
    expect(acceptedEarly).toBe(early.queued + early.running);
    expect(acceptedEarly).toBeLessThan(100);
    const summary = await m.join();
    expect(summary).toMatchObject({ total: 10_000, ok: 10_000 });
  }, 120_000);

  it('honours putTimeout while the queue stays full', async () => {
    const m = new MPMS({ worker: basic, processes: 1, threads: 1, taskQueueMaxsize: 1, putTimeout: 50 });
    await m.start();
    const ac = new AbortController();
    // Fill the child's window and the queue with tasks that end only when aborted.
    let accepted = 0;
    try {
      // Fill the child's window and the queue with tasks that end only when the engine stops.
      for (;;) {
        const r = await m.submit(['sleep', 60_000], { signal: ac.signal }).catch((e: Error) => e);
        if (r instanceof QueueFullError) break;
        accepted++;
      }
      const err = await m.run(['echo', 1]).catch((e: Error) => e);
      expect(err).toBeInstanceOf(QueueFullError);
      expect(m.totalCount).toBe(accepted);
    } finally {
      await m.terminate();
    }
  }, 60_000);

  it('a run() still waiting for room when a shutdown starts rejects with TaskCancelledError', async () => {
    const m = new MPMS({ worker: basic, processes: 1, threads: 1, taskQueueMaxsize: 1 });
    await m.start();
    const running = m.run(['sleep', 60_000]).catch((e: Error) => e);
    const waiting: Promise<unknown>[] = [];
    for (let i = 0; i < 20; i++) waiting.push(m.run(['echo', i]).catch((e: Error) => e));
    const summary = await m.gracefulShutdown({ timeout: 100 });
    const outcomes = await Promise.all(waiting);
    for (const o of outcomes) expect(o).toBeInstanceOf(TaskCancelledError);
    expect(await running).toBeInstanceOf(TaskCancelledError);
    // Accepted ones are in the summary; the ones never accepted are not.
    expect(summary.total).toBeLessThan(21);
    expect(summary.cancelled).toBe(summary.total);
  }, 60_000);
});

describe('named exports per task', () => {
  const worker = fixture('exports-worker.mjs');

  it('submit()/run() call the export they name; a missing or non-function export fails only that task', async () => {
    const results = new Map<number, { status: string; result: unknown }>();
    const m = new MPMS({
      worker,
      processes: 1,
      threads: 2,
      collector: (meta, result) => void results.set(meta.taskId, { status: meta.status, result }),
    });
    await m.start();
    const a = await m.submit([3, 4], { export: 'resize' });
    const b = await m.put('x');
    const c = await m.submit([1], { export: 'default' });
    expect(await m.run([21], { export: 'slowDouble' })).toBe(42);
    expect(await m.run([5, 6], { export: 'resize' })).toEqual({ w: 10, h: 12 });
    const missing = await m.run([1], { export: 'nope' }).catch((e: Error) => e);
    expect((missing as Error).message).toMatch(/has no export `nope` \(function exports: .*resize/);
    expect((missing as Error & { meta: Meta }).meta.status).toBe('error');
    const notFn = await m.run([1], { export: 'notAFunction' }).catch((e: Error) => e);
    expect((notFn as Error).message).toMatch(/export `notAFunction` of .* is a number, not a function/);
    // The engine goes on, on the same threads (no restart), mixing exports in one batch.
    const mixed = await Promise.all(
      Array.from({ length: 50 }, (_, i) => (i % 2 ? m.run([i], { export: 'slowDouble' }) : m.run([i]))),
    );
    expect(mixed[1]).toBe(2);
    expect(mixed[2]).toBe('default 2');
    const summary = await m.join();
    expect(results.get(a)).toEqual({ status: 'ok', result: { w: 6, h: 8 } });
    expect(results.get(b)).toEqual({ status: 'ok', result: 'default x' });
    expect(results.get(c)).toEqual({ status: 'ok', result: 'default 1' });
    expect(summary).toMatchObject({ total: 57, ok: 55, error: 2 });
    expect(m.metrics().restarts).toEqual({ crash: 0, lifecycle: 0, hard: 0, gracefulDie: 0, initFailure: 0 });
  }, 60_000);

  it('rejects a bad export option at the call', async () => {
    const m = new MPMS({ worker, processes: 1, threads: 1 });
    await m.start();
    await expect(m.submit([1], { export: '' })).rejects.toThrow(/`export` must be a non-empty string/);
    await m.join();
  }, 30_000);
});

describe('typed tasks', () => {
  it('tsc accepts the correct calls of test/types/typed.ts and rejects each @ts-expect-error line', () => {
    const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
    const project = fileURLToPath(new URL('./types/tsconfig.json', import.meta.url));
    const r = spawnSync(process.execPath, [tsc, '-p', project], { encoding: 'utf8', timeout: 120_000 });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  }, 150_000);
});

describe('retry policy', () => {
  const worker = fixture('retry-policy-worker.mjs');
  const tmp = () => path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mpms-retry-')), 'log');
  const starts = (file: string, id: number) =>
    fs
      .readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(' ').map(Number))
      .filter(([t]) => t === id)
      .map(([, a, at]) => ({ a: a!, at: at! }));

  it("retryOn: ['error'] with retryDelay/backoff: attempts in order, delays within jitter bounds; the error says how many ran", async () => {
    const file = tmp();
    const m = new MPMS({
      worker,
      processes: 1,
      threads: 2,
      retries: 3,
      retryOn: ['error'],
      retryDelay: 150,
      retryBackoff: 2,
    });
    await m.start();
    const err = (await m.run([file, 'throw']).catch((e: Error) => e)) as Error & { meta: Meta; attempts: number };
    expect(err.name).toBe('RangeError');
    expect(err.meta.attempts).toBe(4);
    expect(err.attempts).toBe(4);
    expect(err.message).toBe('failed attempt 4');
    const s = starts(file, err.meta.taskId);
    expect(s.map((x) => x.a)).toEqual([1, 2, 3, 4]);
    // Each gap is at least the jittered delay (150, 300, 600 ms, -20%); generous above (a loaded machine).
    [150, 300, 600].forEach((d, i) => {
      const gap = s[i + 1]!.at - s[i]!.at;
      expect(gap).toBeGreaterThanOrEqual(Math.floor(d * 0.8) - 2);
      expect(gap).toBeLessThan(d * 1.2 + 5_000);
    });
    // Per task: no retries for this one, and retry on error succeeds on the 2nd attempt for that one.
    const once = (await m.run([file, 'throw'], { retries: 0 }).catch((e: Error) => e)) as Error & { meta: Meta };
    expect(once.meta.attempts).toBe(1);
    expect(await m.run([file, 'throw', 2], { retryDelay: 0 })).toBe('ok on 2');
    await m.join();
  }, 60_000);

  it('UnrecoverableError is never retried; errors are not retried by default; crashes are', async () => {
    const file = tmp();
    const m = new MPMS({ worker, processes: 1, threads: 1, retries: 2, retryOn: ['error', 'crashed'] });
    await m.start();
    const u = (await m.run([file, 'unrecoverable']).catch((e: Error) => e)) as Error & { meta: Meta };
    expect(u).toBeInstanceOf(Error);
    expect(u.name).toBe(new UnrecoverableError('x').name);
    expect(u.meta.attempts).toBe(1);
    const e = (await m.run([file, 'throw'], { retryOn: ['crashed'] }).catch((x: Error) => x)) as Error & { meta: Meta };
    expect(e.meta.attempts).toBe(1);
    expect(await m.run([file, 'exit', 2])).toBe('ok on 2');
    await m.join();
  }, 60_000);

  it('a task waiting out its delay holds no thread and no queue slot; a shutdown cancels it and lists it in unstarted', async () => {
    const file = tmp();
    const m = new MPMS({
      worker,
      processes: 1,
      threads: 1,
      taskQueueMaxsize: 1,
      retries: 1,
      retryOn: ['error'],
      retryDelay: 60_000,
    });
    await m.start();
    const failing = m.run([file, 'throw']).catch((x: Error) => x);
    // While it waits (delayed: 1), other tasks use the only thread and the only queue slot.
    while (m.metrics().delayed === 0) await new Promise((r) => setTimeout(r, 10));
    expect(m.metrics().queued).toBe(0);
    expect(await Promise.all([1, 2, 3].map(() => m.run([file, 'ok'])))).toEqual(['ok', 'ok', 'ok']);
    const summary = await m.gracefulShutdown({ timeout: 1000 });
    const err = (await failing) as Error & { meta: Meta };
    expect(err.name).toBe('TaskCancelledError');
    expect(err.meta.attempts).toBe(1);
    expect(summary.unstarted.map((u) => u.taskId)).toEqual([err.meta.taskId]);
    expect(summary).toMatchObject({ total: 4, ok: 3, cancelled: 1 });
    expect(m.metrics().delayed).toBe(0);
  }, 60_000);

  it('rejects bad retry settings at once', async () => {
    expect(() => new MPMS({ worker, retryOn: ['ok' as 'error'], retryBackoff: 0.5, retryDelay: -1 })).toThrow(
      /retryOn[\s\S]*retryDelay[\s\S]*retryBackoff|retryOn/,
    );
    const m = new MPMS({ worker, processes: 1, threads: 1 });
    await m.start();
    await expect(m.submit([1], { retries: -1 })).rejects.toThrow(/`retries` must be an integer >= 0/);
    await m.join();
  }, 30_000);
});

describe('abortGrace', () => {
  it('a task that ignores its abort keeps its thread abortGrace ms, then the thread is terminated', async () => {
    const seen: number[] = [];
    for (const abortGrace of [100, 1500]) {
      const m = new MPMS({ worker: basic, processes: 1, threads: 1, abortGrace });
      await m.start();
      const restarted = new Promise<number>((r) => m.once('restart', () => r(Date.now())));
      const err = (await m.run(['spin'], { timeout: 100 }).catch((e: Error) => e)) as Error & { meta: Meta };
      expect(err).toBeInstanceOf(TaskTimeoutError);
      // The thread is replaced once the grace after the timeout has passed.
      seen.push((await restarted) - err.meta.endedAt!);
      expect(await m.run(['add', 1])).toBe(2);
      await m.join();
    }
    expect(seen[0]).toBeLessThan(seen[1]!);
    expect(seen[1]).toBeGreaterThanOrEqual(1500 - 600);
  }, 60_000);
});

describe('progress', () => {
  const worker = fixture('progress-worker.mjs');

  it("delivers progress to onProgress and 'progress' listeners, coalesced (latest wins), in order, never after the outcome", async () => {
    const m = new MPMS({ worker, processes: 1, threads: 2, meta: { job: 'p' } });
    const events: Array<{ id: number; value: unknown }> = [];
    m.on('progress', (meta, value) => events.push({ id: meta.taskId, value }));
    await m.start();
    const got: unknown[] = [];
    let settled = false;
    const r = await m.run([10_000, 3], {
      onProgress: (v, info) => {
        expect(settled).toBe(false);
        expect(info.job).toBe('p');
        got.push(v);
      },
    });
    settled = true;
    expect(r).toBe('done');
    // 10,000 synchronous reports coalesce to the last one; each step after a yield arrives.
    expect(got).toEqual([{ i: 9_999 }, { step: 0 }, { step: 1 }, { step: 2 }]);
    expect(events.map((e) => e.value)).toEqual(got);
    // A task that never reports costs no message: no event for a plain run.
    const before = events.length;
    await m.run([0, 0]);
    expect(events.length).toBe(before);
    await m.join();
  }, 60_000);
});

describe('running()', () => {
  it('lists the tasks running now (oldest first) with where and since when; queued ones are not listed', async () => {
    const m = new MPMS({ worker: fixture('exports-worker.mjs'), processes: 2, threads: 2 });
    await m.start();
    let started = 0;
    const allStarted = new Promise<void>((r) => m.on('progress', () => ++started === 4 && r()));
    const t0 = Date.now();
    const held = [0, 1, 2, 3].map(() => m.run([1500], { export: 'hold' }));
    const plain = m.run(['x']); // the default export; runs after a slot frees up
    await allStarted;
    const list = m.running();
    expect(list).toHaveLength(4);
    expect(new Set(list.map((r) => `${r.processIndex}/${r.threadIndex}`)).size).toBe(4);
    for (const r of list) {
      expect(r).toMatchObject({ attempt: 1, export: 'hold' });
      expect(r.startedAt).toBeGreaterThanOrEqual(t0);
      expect(r.runMs).toBeGreaterThanOrEqual(0);
      expect(r.pid).toBeGreaterThan(0);
    }
    expect(list.map((r) => r.startedAt)).toEqual([...list.map((r) => r.startedAt)].sort((a, b) => a - b));
    await Promise.all([...held, plain]);
    expect(m.running()).toEqual([]);
    await m.join();
  }, 60_000);
});

describe('CLI: an input line may name an export', () => {
  it('{"export": "resize", "args": [...]} calls that export; other objects stay one argument', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mpms-cli-export-'));
    const input = path.join(dir, 'in.jsonl');
    fs.writeFileSync(
      input,
      ['{"export": "resize", "args": [3, 4]}', '[1]', '{"export": "resize"}', '{"export": "nope", "args": [1]}'].join(
        '\n',
      ) + '\n',
    );
    const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
    const r = await runNode(
      [cli, 'run', fixture('exports-worker.mjs'), '--input', input, '--output', '-', '-p', '1', '-t', '1'],
      { ms: 30_000 },
    );
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { taskId: number; status: string; result?: unknown; error?: { message: string } });
    lines.sort((a, b) => a.taskId - b.taskId);
    expect(lines.map((l) => l.status)).toEqual(['ok', 'ok', 'ok', 'error']);
    expect(lines[0]!.result).toEqual({ w: 6, h: 8 });
    expect(lines[1]!.result).toBe('default 1');
    expect(lines[2]!.result).toBe('default [object Object]');
    expect(JSON.stringify(lines[3])).toMatch(/has no export `nope`/);
    expect(r.code).toBe(1);
  }, 60_000);
});
