/**
 * What the user's side of the engine may do — collector, iterResults() reader, listeners,
 * follow-up puts, re-entrant calls, Ctrl+C in a put loop — must never hang the engine, lose an
 * outcome or kill the master (issue 14 items 1, 2, 4, 5, 10; issue 17 item 6).
 *
 * A deadlock can only show as time passing; `within()` turns one into a failure with the
 * engine's metrics, and every engine a test made is terminated after it.
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { EngineStateError, type MPMS, SerializationError, type Meta, type MPMSOptions, type TaskResult } from '../dist/index.js';
import { captureLogger, fixture, gate, guardChildren, outcomeCounter, signal, trackedEngines, until, waitGone, within } from './helpers.js';

// Whatever a test started must be gone once it ends.
guardChildren();

const worker = fixture('user-side-worker.mjs');

const engine = trackedEngines(worker);

// A crawl: each outcome yields 3 follow-ups until depth 0; 1 + 3 + ... + 3^5 = 364 tasks.
const ROOT = [5, 3] as const;
const CRAWL = 364;

const SIZES: Array<{ name: string; o: Partial<MPMSOptions> }> = [
  { name: 'default queue sizes', o: {} },
  { name: 'taskQueueMaxsize 1, resultQueueMaxsize 1', o: { taskQueueMaxsize: 1, resultQueueMaxsize: 1 } },
  { name: 'taskQueueMaxsize 1', o: { taskQueueMaxsize: 1 } },
  { name: 'resultQueueMaxsize 1', o: { resultQueueMaxsize: 1 } },
  { name: 'taskQueueMaxsize 4, resultQueueMaxsize 2', o: { taskQueueMaxsize: 4, resultQueueMaxsize: 2 } },
];

describe('a consumer that puts follow-ups (crawler) never deadlocks (issue 14.1)', () => {
  for (const size of SIZES) {
    it(`async collector awaiting put() of follow-ups, P1xT2, ${size.name}`, async () => {
      let collected = 0;
      const crawled = signal();
      const m: MPMS = engine({
        processes: 1,
        threads: 2,
        ...size.o,
        collector: async (_meta, result) => {
          for (const child of result as Array<[number, number]>) await m.put('node', child);
          // Every accepted task collected, follow-ups included: the crawl is over.
          if (++collected === m.totalCount) crawled.fire();
        },
      });
      const outcomes = outcomeCounter(m);
      await m.start();
      await m.put('node', ROOT);
      await within(crawled.promise, 30_000, () => m.metrics());
      const summary = await m.join();
      expect(summary).toMatchObject({ total: CRAWL, ok: CRAWL });
      expect(collected).toBe(CRAWL);
      expect(outcomes.once()).toBe(true);
    });

    it(`for await over iterResults() putting follow-ups, P1xT2, ${size.name}`, async () => {
      const m = engine({ processes: 1, threads: 2, ...size.o });
      const outcomes = outcomeCounter(m);
      await m.start();
      const reading = (async () => {
        let read = 0;
        for await (const { result } of m.iterResults()) {
          for (const child of result as Array<[number, number]>) await m.put('node', child);
          if (++read === m.totalCount) m.close();
        }
        return read;
      })();
      await m.put('node', ROOT);
      expect(await within(reading, 30_000, () => m.metrics())).toBe(CRAWL);
      const summary = await m.join();
      expect(summary).toMatchObject({ total: CRAWL, ok: CRAWL });
      expect(outcomes.once()).toBe(true);
    });
  }

  // The engine recognises the consumer's put by its stack: the shapes follow-ups are put in.
  type Put = (m: MPMS, children: Array<[number, number]>) => Promise<unknown>;
  const helper = async (m: MPMS, c: [number, number]) => {
    await null;
    return m.put('node', c);
  };
  const SHAPES: Array<[string, Put]> = [
    ['an awaited helper', async (m, cs) => { for (const c of cs) await helper(m, c); }],
    ['Promise.all', (m, cs) => Promise.all(cs.map((c) => m.put('node', c)))],
    ['Promise.all after an await', async (m, cs) => { await null; await Promise.all(cs.map((c) => helper(m, c))); }],
    ['a .then chain', (m, cs) => Promise.resolve().then(() => Promise.all(cs.map((c) => m.put('node', c))))],
    ['return helper() without await', async (m, cs) => { await null; return (async () => { for (const c of cs) await helper(m, c); })(); }],
    ['an async .then callback', (m, cs) => Promise.resolve().then(async () => { for (const c of cs) await helper(m, c); })],
  ];
  for (const [shape, putAll] of SHAPES) {
    it(`follow-ups put through ${shape}, collector and reader, taskQueueMaxsize 1, resultQueueMaxsize 1`, async () => {
      for (const kind of ['collector', 'reader'] as const) {
        let collected = 0;
        const crawled = signal();
        const m: MPMS = engine({
          processes: 1,
          threads: 2,
          taskQueueMaxsize: 1,
          resultQueueMaxsize: 1,
          ...(kind === 'collector'
            ? {
                collector: async (_meta: Meta, result: unknown) => {
                  await putAll(m, result as Array<[number, number]>);
                  if (++collected === m.totalCount) crawled.fire();
                },
              }
            : {}),
        });
        await m.start();
        if (kind === 'reader') {
          void (async () => {
            for await (const { result } of m.iterResults()) {
              await putAll(m, result as Array<[number, number]>);
              if (++collected === m.totalCount) crawled.fire();
            }
          })();
        }
        await m.put('node', [4, 3]);
        await within(crawled.promise, 30_000, () => ({ kind, ...m.metrics() }));
        expect((await m.join()).ok, kind).toBe(121);
      }
    });
  }

  it('the collector helps itself past the queue bound, other producers do not: a put loop beside a crawling, slow collector stays within taskQueueMaxsize', async () => {
    // A slow collector (so outcomes pile up and dispatch pauses) that puts one follow-up for each
    // of the first 100 outcomes, while the main loop puts 1,000 tasks. Only the collector's own
    // puts may go over the queue bound (docs/guarantees.md): the main loop's never do.
    const Q = 8;
    const S = 4;
    let followUps = 0;
    let collected = 0;
    let overshoot = 0;
    const m: MPMS = engine({
      processes: 1,
      threads: 2,
      taskQueueMaxsize: Q,
      resultQueueMaxsize: S,
      collector: async (meta) => {
        collected++;
        await new Promise((r) => setTimeout(r, 1));
        if ((meta.args[0] as number) < 100) {
          followUps++;
          await m.put(1000 + (meta.args[0] as number));
        }
      },
    });
    const outcomes = outcomeCounter(m);
    await m.start();
    const producing = (async () => {
      for (let i = 0; i < 1000; i++) {
        await m.put(i);
        // Over the bound by more than the follow-ups the collector put so far: a producer got in.
        overshoot = Math.max(overshoot, m.metrics().queued - Q - followUps);
      }
    })();
    await within(producing, 60_000, () => ({ ...m.metrics(), followUps, collected }));
    const summary = await within(m.join(), 60_000, () => m.metrics());
    expect(summary).toMatchObject({ total: 1100, ok: 1100 });
    expect(followUps).toBe(100);
    expect(collected).toBe(1100);
    expect(overshoot).toBeLessThanOrEqual(0);
    expect(outcomes.once()).toBe(true);
  }, 90_000);
});

describe('a reader that leaves (issue 14.2)', () => {
  for (const how of ['break', 'throw'] as const) {
    it(`resultQueueMaxsize 5, the for-await reader ${how === 'break' ? 'breaks' : 'throws'} after 10 outcomes: join() ends, every task counted, one warning`, async () => {
      const { logger, lines } = captureLogger();
      const m = engine({ processes: 1, threads: 2, resultQueueMaxsize: 5, taskQueueMaxsize: 100, logger });
      const outcomes = outcomeCounter(m);
      await m.start();
      const dispatchPaused = signal();
      const reading = (async () => {
        let n = 0;
        for await (const _ of m.iterResults()) {
          if (++n < 10) continue;
          // Leave only once dispatch waits for this reader and nothing is in flight: no outcome
          // is on its way that could make room by itself.
          await dispatchPaused.promise;
          if (how === 'break') break;
          throw new Error('the reader fails');
        }
        return n;
      })().catch((err: Error) => err);
      for (let i = 0; i < 100; i++) await m.put(i);
      await within(until(() => m.metrics().running === 0 && m.metrics().finished >= 15), 30_000, () => m.metrics());
      expect(m.metrics().queued).toBeGreaterThan(0);
      dispatchPaused.fire();
      const summary = await within(m.join(), 30_000, () => m.metrics());
      expect(summary).toMatchObject({ total: 100, ok: 100 });
      expect(outcomes.once()).toBe(true);
      expect(outcomes.seen.size).toBe(100);
      const left = await reading;
      if (how === 'break') expect(left).toBe(10);
      else expect((left as Error).message).toBe('the reader fails');
      // 5 were kept for a later reader, the rest dropped: a later reader is told at once.
      expect(() => m.iterResults()).toThrow(EngineStateError);
      expect(lines.filter((l) => l.level === 40 && /left before the end/.test(l.msg))).toHaveLength(1);
    });
  }

  it('a for-await reader that calls join() itself at its 10th outcome: join() ends, and the reader still gets every outcome', async () => {
    const m = engine({ processes: 1, threads: 2, taskQueueMaxsize: 300, resultQueueMaxsize: 5 });
    const outcomes = outcomeCounter(m);
    const g = gate();
    await m.start();
    let joined: unknown;
    const reading = (async () => {
      const read: number[] = [];
      for await (const { meta } of m.iterResults()) {
        read.push(meta.taskId);
        if (read.length === 10) joined = await m.join();
      }
      return read;
    })();
    for (let i = 0; i < 200; i++) await m.put('gate', g.file);
    g.open();
    const read = await within(reading, 30_000, () => m.metrics());
    expect(joined).toMatchObject({ total: 200, ok: 200 });
    expect(read).toEqual(outcomes.order);
    expect(read).toHaveLength(200);
  });
});

describe("a task's result the master cannot decode (issue 14.4)", () => {
  it('a task returns an array nested 6,000 deep among 40 others in the same batch: it settles error (SerializationError naming it), the others ok, the master lives', async () => {
    const got = new Map<number, TaskResult>();
    const m = engine({ processes: 1, threads: 1, collector: (meta, result) => void got.set(meta.taskId, { meta, result }) });
    await m.start();
    const ids: number[] = [];
    for (let i = 0; i < 20; i++) ids.push((await m.put(i))!);
    const deepId = (await m.put('deep', 6000))!;
    for (let i = 20; i < 40; i++) ids.push((await m.put(i))!);
    const summary = await within(m.join(), 30_000, () => m.metrics());
    expect(summary).toMatchObject({ total: 41, ok: 40, error: 1 });
    const deep = got.get(deepId)!;
    expect(deep.meta.status).toBe('error');
    expect(deep.result).toBeInstanceOf(SerializationError);
    expect((deep.result as Error).message).toMatch(new RegExp(`task ${deepId}\\b`));
    ids.forEach((id, i) => expect(got.get(id)?.result).toBe(i));
  });
});

describe('user callbacks cannot break the ledger (issue 14.5)', () => {
  it("a throwing 'task' listener and a throwing 'restart' listener: every outcome settles once and reaches the collector, nothing escapes", async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    try {
      const { logger, lines } = captureLogger();
      const collected: number[] = [];
      const m = engine({ processes: 1, threads: 2, logger, collector: (meta) => void collected.push(meta.taskId) });
      const outcomes = outcomeCounter(m);
      let after = 0;
      m.on('task', () => {
        throw new Error('task listener fails');
      });
      m.on('task', () => void after++);
      m.on('restart', () => {
        throw new Error('restart listener fails');
      });
      await m.start();
      const ids: number[] = [];
      for (let i = 0; i < 50; i++) {
        ids.push((await m.put(i))!);
        if (i === 25) ids.push((await m.put('exit'))!);
      }
      const summary = await within(m.join(), 30_000, () => m.metrics());
      expect(summary).toMatchObject({ total: 51, ok: 50, crashed: 1 });
      expect([...collected].sort((a, b) => a - b)).toEqual(ids);
      expect(collected).toEqual(outcomes.order);
      expect(outcomes.once()).toBe(true);
      // The listener after the throwing one still ran for every outcome.
      expect(after).toBe(51);
      expect(lines.filter((l) => /'task' listener threw/.test(l.msg))).toHaveLength(51);
      expect(lines.some((l) => /'restart' listener threw/.test(l.msg))).toBe(true);
      expect(uncaught).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });

  it('a collector that throws or whose getter `then` throws: its task keeps its outcome, the engine goes on', async () => {
    const calls: number[] = [];
    const m = engine({
      processes: 1,
      threads: 2,
      logger: captureLogger().logger,
      collector: ((meta: Meta) => {
        calls.push(meta.taskId);
        if (meta.taskId % 3 === 0) throw new Error('collector fails');
        if (meta.taskId % 3 === 1) {
          return {
            get then() {
              throw new Error('a thenable that throws');
            },
          };
        }
      }) as never,
    });
    await m.start();
    for (let i = 0; i < 60; i++) await m.put(i);
    const summary = await within(m.join(), 30_000, () => m.metrics());
    expect(summary).toMatchObject({ total: 60, ok: 60 });
    expect(calls).toHaveLength(60);
  });

  for (const how of ['terminate', 'gracefulShutdown', 'join', 'metrics and put'] as const) {
    it(`a collector that calls ${how}() itself, at its 10th outcome: every task settles once, each outcome reaches the collector once, in order, never nested`, async () => {
      const g = gate();
      let depth = 0;
      let nested = false;
      const delivered: number[] = [];
      let fromCollector: Promise<unknown> | undefined;
      const allDelivered = signal();
      const m: MPMS = engine({
        processes: 1,
        threads: 2,
        taskQueueMaxsize: 300,
        resultQueueMaxsize: 5,
        collector: async (meta) => {
          nested ||= depth > 0;
          depth++;
          delivered.push(meta.taskId);
          if (delivered.length === 10) {
            if (how === 'terminate') fromCollector = m.terminate();
            else if (how === 'gracefulShutdown') fromCollector = await m.gracefulShutdown({ timeout: 5000 });
            else if (how === 'join') fromCollector = await m.join();
            else {
              m.metrics();
              fromCollector = await m.put('sleep', 1);
            }
          }
          depth--;
          if (delivered.length === m.finishCount && m.finishCount === m.totalCount && !m.accepting) allDelivered.fire();
        },
      });
      const outcomes = outcomeCounter(m);
      await m.start();
      for (let i = 0; i < 200; i++) await m.put('gate', g.file);
      g.open();
      if (how === 'metrics and put') await within(until(() => fromCollector !== undefined), 30_000, () => m.metrics());
      const summary = await within(m.join(), 30_000, () => ({ ...m.metrics(), delivered: delivered.length }));
      await within(allDelivered.promise, 30_000, () => ({ ...m.metrics(), delivered: delivered.length }));
      expect(await within(Promise.resolve(fromCollector), 30_000, () => m.metrics())).toBeDefined();
      expect(summary.total).toBe(how === 'metrics and put' ? 201 : 200);
      expect(summary.ok + summary.error + summary.timeout + summary.crashed + summary.cancelled).toBe(summary.total);
      expect(outcomes.once()).toBe(true);
      expect(outcomes.seen.size).toBe(summary.total);
      expect(delivered).toEqual(outcomes.order);
      expect(nested).toBe(false);
    });
  }

  it('gracefulShutdown({ timeout: 1000 }) with a collector that never returns ends within its bound; the collector is not called again', async () => {
    const { logger, lines } = captureLogger();
    let calls = 0;
    const called = signal();
    const m = engine({
      processes: 1,
      threads: 2,
      logger,
      collector: async () => {
        calls++;
        called.fire();
        await new Promise(() => undefined);
      },
    });
    await m.start();
    for (let i = 0; i < 20; i++) await m.put(i);
    await called.promise;
    const summary = await within(m.gracefulShutdown({ timeout: 1000 }), 20_000, () => m.metrics());
    expect(summary.total).toBe(20);
    expect(summary.ok + summary.cancelled).toBe(20);
    expect(calls).toBe(1);
    expect(lines.some((l) => /not called again/.test(l.msg))).toBe(true);
  });

  it('join() with a collector that never returns, and outcomes piling up (resultQueueMaxsize 5): ends once the stall outlives hookTimeout', async () => {
    const { logger, lines } = captureLogger();
    let calls = 0;
    const m = engine({
      processes: 1,
      threads: 2,
      hookTimeout: 1000,
      resultQueueMaxsize: 5,
      taskQueueMaxsize: 100,
      logger,
      collector: async () => {
        calls++;
        await new Promise(() => undefined);
      },
    });
    const outcomes = outcomeCounter(m);
    await m.start();
    for (let i = 0; i < 60; i++) await m.put(i);
    const summary = await within(m.join(), 30_000, () => m.metrics());
    expect(summary).toMatchObject({ total: 60, ok: 60 });
    expect(outcomes.seen.size).toBe(60);
    expect(calls).toBe(1);
    expect(lines.some((l) => /not called again/.test(l.msg))).toBe(true);
  });
});

describe('Ctrl+C during the plain put loop (issue 14.10)', () => {
  it('handleSignals and `for (...) await m.put(i)`: SIGINT while put() waits -> the summary prints (with unstarted) and the script exits 0 by itself, no child left', async () => {
    const proc = spawn(process.execPath, [fixture('signal-put-script.mjs')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let stderr = '';
    const seen = new Set<number>();
    proc.stdout!.on('data', (d) => {
      out += d;
      if (/^WAITING$/m.test(out) && proc.signalCode === null && !seen.has(-1)) {
        seen.add(-1);
        proc.kill('SIGINT');
      }
    });
    proc.stderr!.on('data', (d) => (stderr += d));
    const code = await within(
      new Promise<number | null>((r) => proc.on('exit', (c) => r(c))),
      40_000,
      () => ({ out, stderr }),
    ).catch((err) => {
      proc.kill('SIGKILL');
      throw err;
    });
    expect(stderr).not.toMatch(/EngineStateError|Unhandled|unhandled/);
    expect(code, stderr).toBe(0);
    const line = out.split('\n').find((l) => l.startsWith('SUMMARY '));
    expect(line, stderr).toBeDefined();
    const summary = JSON.parse(line!.slice(8));
    expect(summary.unstarted).toBeGreaterThanOrEqual(1);
    expect(summary.declined).toBeGreaterThanOrEqual(1);
    expect(summary.accepted + summary.declined).toBe(200);
    expect(summary.total).toBe(summary.accepted);
    expect(summary.accepting).toBe(false);
    expect(await waitGone(summary.pids as number[], 3000)).toEqual([]);
  });

  it('a put() waiting when gracefulShutdown() is called elsewhere resolves undefined; put() after the user\'s own join() rejects', async () => {
    const g = gate();
    const m = engine({ processes: 1, threads: 1, taskQueueMaxsize: 2, collector: () => undefined });
    await m.start();
    expect(m.accepting).toBe(true);
    while (m.metrics().queued < 2) await m.put('gate', g.file);
    const waiting = m.put(1);
    const stopping = m.gracefulShutdown({ timeout: 200 });
    expect(m.accepting).toBe(false);
    expect(await waiting).toBeUndefined();
    expect(await m.put(2)).toBeUndefined();
    g.open();
    await stopping;
    const other = engine({ processes: 1, threads: 1, collector: () => undefined });
    await other.start();
    await other.join();
    await expect(other.put(1)).rejects.toBeInstanceOf(EngineStateError);
  });
});

describe('no results lost by an easy mistake (issue 17.6)', () => {
  it('no collector, no reader yet: the put() that would wait for a reader rejects naming the fix, before any outcome is dropped; a late iterResults() gets every accepted outcome', async () => {
    const { logger, lines } = captureLogger();
    const m = engine({ processes: 1, threads: 2, taskQueueMaxsize: 10, resultQueueMaxsize: 5, logger });
    await m.start();
    const ids: number[] = [];
    let refused: unknown;
    for (let i = 0; i < 500; i++) {
      try {
        ids.push((await within(m.put(i), 30_000, () => m.metrics()))!);
      } catch (err) {
        refused = err;
        break;
      }
    }
    expect(refused).toBeInstanceOf(EngineStateError);
    expect((refused as Error).message).toMatch(/iterResults\(\)/);
    expect((refused as Error).message).toMatch(/collector/);
    const reading = (async () => {
      const got: number[] = [];
      for await (const { meta, result } of m.iterResults()) {
        expect(result).toBe(meta.args[0]);
        got.push(meta.taskId);
      }
      return got;
    })();
    const summary = await within(m.join(), 30_000, () => m.metrics());
    expect(summary).toMatchObject({ total: ids.length, ok: ids.length });
    expect((await reading).sort((a, b) => a - b)).toEqual(ids);
    expect(lines.filter((l) => /dropped|not kept/.test(l.msg))).toEqual([]);
  });

  it('no reader, the boundary with a shutdown: a put() made before terminate() is refused at its call (no reader), one made after resolves undefined', async () => {
    const m = engine({ processes: 1, threads: 1, taskQueueMaxsize: 2, resultQueueMaxsize: 2, logger: captureLogger().logger });
    await m.start();
    // Put until the engine says nothing reads: the result queue is full and dispatch waits for a reader.
    let refused: unknown;
    for (let i = 0; i < 100 && !refused; i++) await within(m.put(i), 30_000, () => m.metrics()).catch((err) => (refused = err));
    expect(refused).toBeInstanceOf(EngineStateError);
    // Same tick: the first put() is decided at its call, before terminate() began; the second after.
    const before = m.put('before');
    const ending = m.terminate();
    const after = m.put('after');
    await expect(before).rejects.toThrow(/would wait for ever/);
    expect(await after).toBeUndefined();
    const summary = await within(ending, 30_000, () => m.metrics());
    expect(summary.total).toBe(summary.ok + summary.error + summary.timeout + summary.crashed + summary.cancelled);
  });

  it('every task put, then join(), then iterResults(): it yields every outcome', async () => {
    const m = engine({ processes: 1, threads: 1, taskQueueMaxsize: 100, resultQueueMaxsize: 10, logger: captureLogger().logger });
    await m.start();
    const ids: number[] = [];
    for (let i = 0; i < 60; i++) ids.push((await m.put(i))!);
    const summary = await within(m.join(), 30_000, () => m.metrics());
    expect(summary).toMatchObject({ total: 60, ok: 60 });
    const got: number[] = [];
    for await (const { meta } of m.iterResults()) got.push(meta.taskId);
    expect(got.sort((a, b) => a - b)).toEqual(ids);
  });
});

describe('bounded memory under many concurrent callers (issue 14, guarantee 4)', () => {
  it('2,000 put() calls made at once never hold more than taskQueueMaxsize tasks in the queue', async () => {
    let maxQueued = 0;
    const m = engine({ processes: 1, threads: 2, taskQueueMaxsize: 8, collector: () => sample() });
    await m.start();
    const sample = () => (maxQueued = Math.max(maxQueued, m.metrics().queued));
    m.on('task', sample);
    // Sampled as each put resolves too: a waiter let in over the bound shows up right there.
    const puts = Array.from({ length: 2000 }, (_, i) => m.put(i).then(sample));
    await Promise.all(puts);
    const summary = await m.join();
    expect(summary.total).toBe(2000);
    expect(summary.ok).toBe(2000);
    expect(maxQueued).toBeLessThanOrEqual(8);
  });
});
