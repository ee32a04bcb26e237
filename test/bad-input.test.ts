import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, EngineStateError, MPMS, SerializationError, WorkerStartError, type Meta, type MPMSOptions } from '../dist/index.js';
import { failedStart, guardChildren, fixture } from './helpers.js';

// Whatever a test started must be gone once it ends.
guardChildren();

const worker = fixture('basic-worker.mjs');


async function collect(m: MPMS) {
  const got: { meta: Meta; result: unknown }[] = [];
  const reading = (async () => {
    for await (const r of m.iterResults()) got.push(r);
  })();
  return {
    got,
    async done() {
      const summary = await m.join();
      await reading;
      return summary;
    },
  };
}

describe('bad settings', () => {
  it('several bad settings at once: one ConfigError whose `problems` lists every one', () => {
    let err: unknown;
    try {
      new MPMS({ worker, processes: 0, threads: 'x', lifecycleJitter: 2, colector: () => {} } as unknown as MPMSOptions);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems;
    expect(problems).toHaveLength(4);
    expect(problems.some((p) => p.includes('processes'))).toBe(true);
    expect(problems.some((p) => p.includes('threads'))).toBe(true);
    expect(problems.some((p) => p.includes('lifecycleJitter'))).toBe(true);
    expect(problems.some((p) => p.includes('colector'))).toBe(true);
    // The message shows them all too.
    for (const key of ['processes', 'threads', 'lifecycleJitter', 'colector']) expect((err as Error).message).toContain(key);
  });

  it('missing `worker` is a ConfigError (and is listed together with other problems)', () => {
    expect(() => new MPMS({} as MPMSOptions)).toThrow(ConfigError);
    let err: unknown;
    try {
      new MPMS({ processes: -1 } as MPMSOptions);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems;
    expect(problems).toHaveLength(2);
    expect(problems.some((p) => p.includes('worker'))).toBe(true);
    expect(problems.some((p) => p.includes('processes'))).toBe(true);
  });

  it('iterResults() with a collector configured throws ConfigError', () => {
    const m = new MPMS({ worker, processes: 1, threads: 1, collector: () => {} });
    expect(() => m.iterResults()).toThrow(ConfigError);
  });
});

/**
 * "Promptly": a start that fails by a child's own report, not by a bound running out. The phase
 * the child named says which; and the time is below the engine's shortest bound on a start that
 * never reports (hookTimeout, 30 s by default, plus a load allowance), which a start that waited
 * for a bound cannot be — a bound from the settings, not the machine's speed.
 */
const START_REPORT_BOUND_MS = 30_000;

describe('start() fails promptly, with a clear WorkerStartError, and leaves no child', () => {
  it('the worker module file does not exist', async () => {
    const missing = path.join(os.tmpdir(), `mpms-no-such-worker-${process.pid}.mjs`);
    const { err, ms, left } = await failedStart({ worker: missing, processes: 2, threads: 2 });
    expect(err).toBeInstanceOf(WorkerStartError);
    expect((err as WorkerStartError).phase).toBe('load');
    expect((err as Error).message).toContain(path.basename(missing));
    expect((err as Error).message).toMatch(/cannot find module|not found|ERR_MODULE_NOT_FOUND/i);
    expect(ms).toBeLessThan(START_REPORT_BOUND_MS);
    expect(left).toEqual([]);
  });

  it('the named export does not exist: the message names it and lists the function exports', async () => {
    const { err, ms, left } = await failedStart({ worker: fixture('bad-input-named.mjs'), export: 'nope', processes: 2, threads: 2 });
    expect(err).toBeInstanceOf(WorkerStartError);
    expect((err as WorkerStartError).phase).toBe('export');
    const msg = (err as Error).message;
    expect(msg).toContain('nope');
    expect(msg).toContain('alpha');
    expect(msg).toContain('beta');
    expect(ms).toBeLessThan(START_REPORT_BOUND_MS);
    expect(left).toEqual([]);
  });

  it('the default export is missing (module with named exports only)', async () => {
    const { err, left } = await failedStart({ worker: fixture('bad-input-named.mjs'), processes: 1, threads: 1 });
    expect(err).toBeInstanceOf(WorkerStartError);
    expect((err as Error).message).toContain('default');
    expect((err as Error).message).toContain('alpha');
    expect(left).toEqual([]);
  });

  it('the module throws at load time: the message carries what it threw', async () => {
    const { err, ms, left } = await failedStart({ worker: fixture('bad-input-throws.mjs'), processes: 2, threads: 2 });
    expect(err).toBeInstanceOf(WorkerStartError);
    expect((err as WorkerStartError).phase).toBe('load');
    expect((err as Error).message).toContain('exploded at load time');
    expect(ms).toBeLessThan(START_REPORT_BOUND_MS);
    expect(left).toEqual([]);
  });

  it('after a failed start the engine takes no tasks', async () => {
    const { err, m } = await failedStart({ worker: fixture('bad-input-throws.mjs'), processes: 1, threads: 1 });
    expect(err).toBeInstanceOf(WorkerStartError);
    await expect(m.put('add', 1)).rejects.toBeInstanceOf(EngineStateError);
    await expect(m.start()).rejects.toBeInstanceOf(EngineStateError);
  });
});

describe('bad calls', () => {
  it('put() before start() and after close() reject with EngineStateError', async () => {
    const m = new MPMS({ worker, processes: 1, threads: 1 });
    await expect(m.put('add', 1)).rejects.toBeInstanceOf(EngineStateError);
    await m.start();
    const r = await collect(m);
    await m.put('add', 1);
    m.close();
    await expect(m.put('add', 2)).rejects.toBeInstanceOf(EngineStateError);
    await expect(m.submit(['add', 3])).rejects.toBeInstanceOf(EngineStateError);
    const summary = await r.done();
    expect(summary).toMatchObject({ total: 1, ok: 1 });
    expect(r.got.map((x) => x.result)).toEqual([2]);
    // And after join() too.
    await expect(m.put('add', 4)).rejects.toBeInstanceOf(EngineStateError);
  });

  it('unsendable arguments reject the put() with SerializationError; the engine runs later tasks fine', async () => {
    const m = new MPMS({ worker, processes: 1, threads: 2 });
    await m.start();
    const r = await collect(m);
    const first = await m.put('add', 1);
    await expect(m.put(() => 1)).rejects.toBeInstanceOf(SerializationError);
    await expect(m.put({ f() {} })).rejects.toBeInstanceOf(SerializationError);
    await expect(m.put('echo', { nested: [1, { fn: () => 2 }] })).rejects.toBeInstanceOf(SerializationError);
    await expect(m.put(Symbol('s'))).rejects.toBeInstanceOf(SerializationError);
    const later: number[] = [];
    for (let i = 0; i < 20; i++) later.push(await m.put('add', i));
    const summary = await r.done();
    // Rejected puts were never accepted: they are not counted and got no outcome.
    expect(summary).toMatchObject({ total: 21, ok: 21, error: 0 });
    const byId = new Map(r.got.map((x) => [x.meta.taskId, x]));
    expect(byId.size).toBe(21);
    expect(byId.get(first)!.result).toBe(2);
    later.forEach((id, i) => expect(byId.get(id)!.result).toBe(i + 1));
  });

  it('a task returning an unsendable value settles `error` with a SerializationError; its siblings are ok', async () => {
    const m = new MPMS({ worker, processes: 1, threads: 2 });
    await m.start();
    const r = await collect(m);
    const ids: number[] = [];
    for (let i = 0; i < 10; i++) ids.push(await m.put(i === 4 ? 'unsendable' : 'add', i));
    const summary = await r.done();
    expect(summary).toMatchObject({ total: 10, ok: 9, error: 1 });
    const byId = new Map(r.got.map((x) => [x.meta.taskId, x]));
    expect(byId.size).toBe(10);
    const bad = byId.get(ids[4]!)!;
    expect(bad.meta.status).toBe('error');
    expect(bad.result).toBeInstanceOf(Error);
    expect((bad.result as Error).name).toBe('SerializationError');
    for (const [i, id] of ids.entries()) {
      if (i === 4) continue;
      expect(byId.get(id)!.meta.status).toBe('ok');
      expect(byId.get(id)!.result).toBe(i + 1);
    }
  });

  it('submit() with a bad per-task timeout rejects with ConfigError; nothing is accepted', async () => {
    const m = new MPMS({ worker, processes: 1, threads: 1 });
    await m.start();
    const r = await collect(m);
    await expect(m.submit(['add', 1], { timeout: -1 })).rejects.toBeInstanceOf(ConfigError);
    await expect(m.submit(['add', 1], { timeout: Number.NaN })).rejects.toBeInstanceOf(ConfigError);
    await expect(m.submit(['add', 1], { timeout: 'soon' as unknown as number })).rejects.toBeInstanceOf(ConfigError);
    await m.submit(['add', 1], { timeout: 5000 });
    const summary = await r.done();
    expect(summary).toMatchObject({ total: 1, ok: 1 });
  });
});
