import { describe, expect, it } from 'vitest';
import { MPMS, WorkerCrashedError, type Meta } from '../dist/index.js';
import { guardChildren, childPids, fixture, waitGone } from './helpers.js';

const worker = fixture('basic-worker.mjs');

async function runAll(m: MPMS, tasks: unknown[][]) {
  const outcomes = new Map<number, { meta: Meta; result: unknown }[]>();
  const pids = new Set<number>();
  const collected = (async () => {
    for await (const r of m.iterResults()) {
      const list = outcomes.get(r.meta.taskId) ?? [];
      list.push(r);
      outcomes.set(r.meta.taskId, list);
      if (r.meta.pid) pids.add(r.meta.pid);
    }
  })();
  const ids: number[] = [];
  for (const args of tasks) ids.push(await m.put(...args));
  const summary = await m.join();
  await collected;
  return { ids, outcomes, summary, pids };
}

// Whatever a test started must be gone once it ends.
guardChildren();

describe('exactly one outcome per task', () => {
  it('100 tasks: task 5 SIGKILLs its child, task 50 exits its thread with code 3', async () => {
    const before = childPids();
    const m = new MPMS({ worker, processes: 2, threads: 2 });
    await m.start();
    const spawned = childPids().filter((p) => !before.includes(p));
    expect(spawned.length).toBe(2);
    const tasks = Array.from({ length: 100 }, (_, i) => (i === 5 ? ['kill-process'] : i === 50 ? ['exit-thread', 3] : ['add', i]));
    const t0 = Date.now();
    const { ids, outcomes, summary } = await runAll(m, tasks);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(outcomes.size).toBe(100);
    for (const id of ids) expect(outcomes.get(id)).toHaveLength(1);
    const killer = outcomes.get(ids[5]!)![0]!;
    expect(killer.meta.status).toBe('crashed');
    expect(killer.result).toBeInstanceOf(WorkerCrashedError);
    expect((killer.result as WorkerCrashedError).signal).toBe('SIGKILL');
    const exiter = outcomes.get(ids[50]!)![0]!;
    expect(exiter.meta.status).toBe('crashed');
    expect((exiter.result as WorkerCrashedError).exitCode).toBe(3);
    expect((exiter.result as WorkerCrashedError).scope).toBe('thread');
    expect(summary.ok).toBeGreaterThanOrEqual(90);
    expect(summary.total).toBe(100);
    expect(summary.ok + summary.error + summary.timeout + summary.crashed + summary.cancelled).toBe(100);
    expect(m.metrics().restarts.crash).toBeGreaterThanOrEqual(2);
    // Every child we started, and every replacement, is gone.
    expect(await waitGone(spawned)).toEqual([]);
    expect(childPids().filter((p) => !before.includes(p))).toEqual([]);
  });

  it('a child killed while its thread holds prefetched tasks: only the running task is crashed; the others run elsewhere', async () => {
    const m = new MPMS({ worker, processes: 1, threads: 1 });
    await m.start();
    const tasks: unknown[][] = [['sleep-then-kill', 300], ...Array.from({ length: 10 }, (_, i) => ['add', i])];
    const { ids, outcomes, summary } = await runAll(m, tasks);
    expect(outcomes.get(ids[0]!)![0]!.meta.status).toBe('crashed');
    expect(summary).toMatchObject({ total: 11, ok: 10, crashed: 1 });
    for (const id of ids.slice(1)) expect(outcomes.get(id)![0]!.meta.attempts).toBe(1);
  });

  it.each([
    ['abort-process', 'a native abort (SIGABRT) kills the child', (r: WorkerCrashedError) => expect(r.signal).toBe('SIGABRT')],
    ['segv-process', 'a segfault (SIGSEGV) kills the child', (r: WorkerCrashedError) => expect(r.signal).toBe('SIGSEGV')],
    ['timer-throw', 'an uncaught error in a timer ends the thread', (r: WorkerCrashedError) => expect(r.message).toMatch(/uncaught in a timer/)],
  ] as const)('%s: %s; that task settles crashed, the rest ok', async (kind, _what, check) => {
    const m = new MPMS({ worker, processes: 2, threads: 2 });
    await m.start();
    const tasks: unknown[][] = Array.from({ length: 40 }, (_, i) => ['add', i]);
    tasks[10] = [kind];
    const { ids, outcomes, summary, pids } = await runAll(m, tasks);
    expect(outcomes.size).toBe(40);
    for (const id of ids) expect(outcomes.get(id)).toHaveLength(1);
    const bad = outcomes.get(ids[10]!)![0]!;
    expect(bad.meta.status).toBe('crashed');
    expect(bad.result).toBeInstanceOf(WorkerCrashedError);
    check(bad.result as WorkerCrashedError);
    expect(summary.total).toBe(40);
    // A child's death costs the tasks running in it (the culprit and its sibling thread's) and
    // any that had finished but whose outcomes had not left it yet; never an unstarted one.
    expect(summary.ok).toBeGreaterThanOrEqual(40 - 2 * 4);
    expect(await waitGone(pids)).toEqual([]);
  });

  it('process.abort() called in a worker thread is refused by Node: the task settles error, nothing crashes', async () => {
    const m = new MPMS({ worker, processes: 1, threads: 1 });
    await m.start();
    const { outcomes, ids, summary } = await runAll(m, [['abort-call'], ['add', 1]]);
    expect(outcomes.get(ids[0]!)![0]!.meta.status).toBe('error');
    expect(summary).toMatchObject({ ok: 1, error: 1, crashed: 0 });
  });

  it.each([
    ['exit-thread', 'exits its thread', {}],
    ['spin', 'spins past its time limit', { taskTimeout: 300 }],
  ] as const)('a finished task is never lost with its thread when the next task %s', async (kind, _what, extra) => {
    for (let round = 0; round < 3; round++) {
      // A synchronous worker with concurrency 2: the finished tasks and the culprit run in one
      // turn of the thread's event loop, before any batch of outcomes has left.
      const m = new MPMS({ worker: fixture('sync-worker.mjs'), processes: 1, threads: 1, concurrency: 2, ...extra });
      await m.start();
      const { ids, outcomes } = await runAll(m, [['echo', { a: round }], ['echo', new Map([[1, 2]])], [kind, 3]]);
      expect(outcomes.get(ids[0]!)![0]!.meta.status).toBe('ok');
      expect(outcomes.get(ids[1]!)![0]!.meta.status).toBe('ok');
      expect(outcomes.get(ids[2]!)![0]!.meta.status).not.toBe('ok');
    }
  });

  it('meta and result follow the contract; worker errors are rebuilt with name, stack, cause and fields', async () => {
    const m = new MPMS({ worker, processes: 1, threads: 2, meta: { job: 'j1' } });
    await m.start();
    const { ids, outcomes } = await runAll(m, [['add', 1], ['throw', 7], ['echo', { when: new Date(0), big: 10n ** 20n, buf: Buffer.from('abc'), map: new Map([[1, new Uint16Array([1, 2])]]) }]]);
    const ok = outcomes.get(ids[0]!)![0]!;
    expect(ok.result).toBe(2);
    expect(ok.meta).toMatchObject({ taskId: ids[0], args: ['add', 1], status: 'ok', attempts: 1, processIndex: 0, job: 'j1' });
    expect(ok.meta.runMs).toBeGreaterThanOrEqual(0);
    expect(ok.meta.waitMs).toBeGreaterThanOrEqual(0);
    expect(typeof ok.meta.pid).toBe('number');
    expect([0, 1]).toContain(ok.meta.threadIndex);
    const err = outcomes.get(ids[1]!)![0]!;
    expect(err.meta.status).toBe('error');
    const e = err.result as Error & { code?: string; cause?: Error };
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('TypeError');
    expect(e.message).toBe('bad 7');
    expect(e.stack).toMatch(/basic-worker\.mjs/);
    expect(e.code).toBe('E_BAD');
    expect(e.cause).toBeInstanceOf(Error);
    expect(e.cause!.message).toBe('root cause');
    const echo = outcomes.get(ids[2]!)![0]!.result as { when: Date; big: bigint; buf: Buffer; map: Map<number, Uint16Array> };
    expect(echo.when).toBeInstanceOf(Date);
    expect(echo.big).toBe(10n ** 20n);
    expect(Buffer.isBuffer(echo.buf)).toBe(true);
    expect(echo.buf.toString()).toBe('abc');
    expect(echo.map.get(1)).toBeInstanceOf(Uint16Array);
  });
});
