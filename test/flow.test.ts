import { describe, expect, it } from 'vitest';
import { EngineStateError, MPMS, QueueFullError, type Meta, type MPMSOptions } from '../dist/index.js';
import { captureLogger, childPids, fixture, gate, guardChildren, outcomeCounter, waitGone } from './helpers.js';

// Whatever a test started must be gone once it ends.
guardChildren();

const worker = fixture('flow-worker.mjs');

/**
 * Puts one blocking task, then fast ones until the child's window and the master queue are both
 * full (the master queue holds `taskQueueMaxsize`). Returns the ids accepted.
 */
async function fillUp(m: MPMS, gateFile: string, max: number): Promise<number[]> {
  const ids = [await m.put('gate', gateFile)];
  for (let i = 0; m.metrics().queued < max; i++) {
    if (i > 1000) throw new Error('the queue never filled: is dispatch bounded at all?');
    ids.push(await m.put('add', i));
  }
  return ids;
}

describe('task-side flow control', () => {
  it('putTimeout: once the queue and the child window are full, put() rejects with QueueFullError; nothing accepted is lost', async () => {
    const g = gate();
    const m = new MPMS({ worker, processes: 1, threads: 1, taskQueueMaxsize: 2, putTimeout: 200, collector: () => {} });
    await m.start();
    const { seen } = outcomeCounter(m);
    const ids = await fillUp(m, g.file, 2);
    expect(m.metrics().queued).toBe(2);
    const acceptedBefore = m.totalCount;
    expect(acceptedBefore).toBe(ids.length);

    const t0 = Date.now();
    await expect(m.put('add', -1)).rejects.toBeInstanceOf(QueueFullError);
    // It did wait for room (not an instant refusal); the exact time is not asserted.
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
    await expect(m.submit(['add', -2])).rejects.toBeInstanceOf(QueueFullError);
    // The refused tasks were not accepted.
    expect(m.totalCount).toBe(acceptedBefore);

    g.open();
    const summary = await m.join();
    expect(summary).toMatchObject({ total: ids.length, ok: ids.length });
    expect(seen.size).toBe(ids.length);
    for (const id of ids) expect(seen.get(id)).toHaveLength(1);
  });

  it('put() calls waiting for room resolve once room appears, in FIFO order', async () => {
    const g = gate();
    const m = new MPMS({ worker, processes: 1, threads: 1, taskQueueMaxsize: 2, putTimeout: 30_000, collector: () => {} });
    await m.start();
    const { seen } = outcomeCounter(m);
    const ids = await fillUp(m, g.file, 2);
    const order: number[] = [];
    const waiting = [0, 1, 2, 3].map((k) =>
      m.put('add', 1000 + k).then((id) => {
        order.push(k);
        return id;
      }),
    );
    // Nothing can make room while the gate is shut.
    await new Promise((r) => setTimeout(r, 100));
    expect(order).toEqual([]);
    expect(m.totalCount).toBe(ids.length);

    g.open();
    const late = await Promise.all(waiting);
    expect(order).toEqual([0, 1, 2, 3]);
    // Accepted in the order they were called.
    for (let k = 1; k < late.length; k++) expect(late[k]!).toBeGreaterThan(late[k - 1]!);
    const summary = await m.join();
    expect(summary).toMatchObject({ total: ids.length + 4, ok: ids.length + 4 });
    for (const id of [...ids, ...late]) expect(seen.get(id)).toHaveLength(1);
  });
});

describe('result-side flow control', () => {
  it('a slow async collector (1 ms/result) with resultQueueMaxsize 5: bounded backlog, 3000 results in order of decision, once each', async () => {
    const decided: number[] = [];
    const collected: number[] = [];
    let maxBacklog = 0;
    let maxInSystem = 0;
    let m!: MPMS;
    m = new MPMS({
      worker,
      processes: 1,
      threads: 2,
      resultQueueMaxsize: 5,
      collector: async (meta) => {
        collected.push(meta.taskId);
        // Outcomes decided but not yet handed to the collector.
        const backlog = m.finishCount - collected.length;
        const mt = m.metrics();
        maxBacklog = Math.max(maxBacklog, backlog);
        maxInSystem = Math.max(maxInSystem, mt.running + mt.queued + backlog);
        await new Promise((r) => setTimeout(r, 1));
      },
    });
    m.on('task', (meta) => decided.push(meta.taskId));
    await m.start();
    const ids: number[] = [];
    for (let i = 0; i < 3000; i++) ids.push(await m.put(i));
    const summary = await m.join();
    expect(summary).toMatchObject({ total: 3000, ok: 3000 });
    expect(collected).toHaveLength(3000);
    expect(new Set(collected).size).toBe(3000);
    expect(collected).toEqual(decided);
    expect([...collected].sort((a, b) => a - b)).toEqual(ids);
    // resultQueueMaxsize (5) plus what the one child may hold when dispatch pauses: its window,
    // at most threads (2) × (concurrency 1 + 256 queued) × 2 = 1028 (docs/architecture.md).
    // Without the bound this would reach ~3000.
    expect(maxBacklog).toBeLessThanOrEqual(5 + 1028);
    expect(maxInSystem).toBeLessThanOrEqual(5 + 1028 + 42);
  });

  it('a collector that throws (sync) or rejects (async) for some results: the engine goes on, every outcome is delivered', async () => {
    for (const kind of ['sync', 'async'] as const) {
      const { logger, lines } = captureLogger();
      const calls: number[] = [];
      const m = new MPMS({
        worker,
        processes: 2,
        threads: 2,
        logger,
        resultQueueMaxsize: 5,
        collector:
          kind === 'sync'
            ? (meta, result) => {
                calls.push(meta.taskId);
                if ((result as number) % 7 === 0) throw new Error(`collector dislikes ${String(result)}`);
              }
            : async (meta, result) => {
                calls.push(meta.taskId);
                await new Promise((r) => setImmediate(r));
                if ((result as number) % 7 === 0) throw new Error(`collector dislikes ${String(result)}`);
              },
      });
      await m.start();
      const ids: number[] = [];
      for (let i = 0; i < 100; i++) ids.push(await m.put(i));
      const summary = await m.join();
      expect(summary, kind).toMatchObject({ total: 100, ok: 100 });
      expect(calls.length, kind).toBe(100);
      expect([...calls].sort((a, b) => a - b), kind).toEqual(ids);
      // The failures were logged, not swallowed.
      expect(lines.filter((l) => /collector (threw|rejected)/.test(l.msg)).length, kind).toBe(15);
    }
  });

  it('a sync collector and an async collector both get every (meta, result)', async () => {
    for (const kind of ['sync', 'async'] as const) {
      const got = new Map<number, { meta: Meta; result: unknown }[]>();
      const keep = (meta: Meta, result: unknown) => {
        const list = got.get(meta.taskId) ?? [];
        list.push({ meta, result });
        got.set(meta.taskId, list);
      };
      const m = new MPMS({
        worker,
        processes: 2,
        threads: 2,
        meta: { run: kind },
        collector: kind === 'sync' ? keep : async (meta, result) => {
          await new Promise((r) => setTimeout(r, 1));
          keep(meta, result);
        },
      });
      await m.start();
      const ids: number[] = [];
      for (let i = 0; i < 150; i++) ids.push(await m.put('add', i));
      const summary = await m.join();
      expect(summary, kind).toMatchObject({ total: 150, ok: 150 });
      expect(got.size, kind).toBe(150);
      ids.forEach((id, i) => {
        const list = got.get(id)!;
        expect(list, kind).toHaveLength(1);
        expect(list[0]!.result).toBe(i + 1);
        expect(list[0]!.meta).toMatchObject({ taskId: id, args: ['add', i], status: 'ok', run: kind });
      });
    }
  });

  it('iterResults() read slowly (5 ms per item): all 300 outcomes arrive, once each', async () => {
    const m = new MPMS({ worker, processes: 2, threads: 2 });
    await m.start();
    const got: number[] = [];
    const reading = (async () => {
      for await (const { meta, result } of m.iterResults()) {
        expect(result).toBe((meta.args[1] as number) + 1);
        got.push(meta.taskId);
        await new Promise((r) => setTimeout(r, 1));
      }
    })();
    const ids: number[] = [];
    for (let i = 0; i < 300; i++) ids.push(await m.put('add', i));
    const summary = await m.join();
    await reading;
    expect(summary).toMatchObject({ total: 300, ok: 300 });
    expect(got).toHaveLength(300);
    expect([...got].sort((a, b) => a - b)).toEqual(ids);
  });

  it('neither collector nor iterResults, fewer tasks than fit in flight: join() resolves, outcomes counted and kept unread with a warning', async () => {
    const { logger, lines } = captureLogger();
    const m = new MPMS({ worker, processes: 1, threads: 1, resultQueueMaxsize: 10, logger });
    await m.start();
    for (let i = 0; i < 30; i++) await m.put(i);
    const summary = await m.join();
    expect(summary).toMatchObject({ total: 30, ok: 30 });
    expect(lines.some((l) => l.level === 40 && /unread|never read|dropped/.test(l.msg))).toBe(true);
  });

  it('neither collector nor iterResults: of 500 awaited puts, the one that would wait for a reader for ever rejects naming the fix; nothing accepted is lost: join(), then a late iterResults() yields every outcome', async () => {
    const { logger, lines } = captureLogger();
    const m = new MPMS({ worker, processes: 2, threads: 2, logger });
    await m.start();
    const ids: number[] = [];
    let refused: unknown;
    try {
      for (let i = 0; i < 500; i++) ids.push((await m.put(i))!);
    } catch (err) {
      refused = err;
    }
    // Outcomes are held for a reader (dispatch pauses at resultQueueMaxsize), never dropped.
    expect(refused).toBeInstanceOf(EngineStateError);
    expect((refused as Error).message).toMatch(/iterResults\(\).*collector/s);
    expect(ids.length).toBeGreaterThan(0);
    const summary = await m.join();
    expect(summary).toMatchObject({ total: ids.length, ok: ids.length });
    expect(lines.filter((l) => l.level === 40 && /unread/.test(l.msg))).toHaveLength(1);
    const read: number[] = [];
    for await (const { meta } of m.iterResults()) read.push(meta.taskId);
    expect(read.sort((a, b) => a - b)).toEqual(ids);
  }, 30_000);
});

describe('memory', () => {
  it('200,000 no-op tasks streamed through await put() (P2xT2, counting collector): master RSS growth < 150 MiB', async () => {
    const before = childPids();
    let total = 0;
    let ok = 0;
    const m = new MPMS({
      worker,
      processes: 2,
      threads: 2,
      collector: (meta) => {
        total++;
        if (meta.status === 'ok') ok++;
      },
    } satisfies MPMSOptions);
    await m.start();
    const spawned = childPids().filter((p) => !before.includes(p));
    const base = process.memoryUsage().rss;
    let maxRss = base;
    const sample = setInterval(() => (maxRss = Math.max(maxRss, process.memoryUsage().rss)), 50);
    try {
      for (let i = 0; i < 200_000; i++) {
        await m.put(i);
        if ((i & 1023) === 0) maxRss = Math.max(maxRss, process.memoryUsage().rss);
      }
      const summary = await m.join();
      maxRss = Math.max(maxRss, process.memoryUsage().rss);
      expect(summary).toMatchObject({ total: 200_000, ok: 200_000 });
    } finally {
      clearInterval(sample);
    }
    expect(total).toBe(200_000);
    expect(ok).toBe(200_000);
    const growthMiB = (maxRss - base) / 1048576;
    expect(growthMiB).toBeLessThan(150);
    expect(await waitGone(spawned)).toEqual([]);
  }, 120_000);
});
