import { describe, expect, it } from 'vitest';
import { MPMS, TaskTimeoutError, WorkerCrashedError, WorkerStartError, type Meta } from '../dist/index.js';
import { fault } from '../dist/testing/index.js';
import { fixture, guardChildren } from './helpers.js';

const worker = fixture('testing-api-worker.mjs');
guardChildren();

describe('mpms/testing: fault injection for users', () => {
  it('each injected fault gives the outcome the contract promises; normal tasks are untouched', async () => {
    const m = new MPMS({ worker, processes: 1, threads: 2, taskTimeout: 1500 });
    await m.start();
    const got = new Map<number, { meta: Meta; result: unknown }>();
    const reading = (async () => {
      for await (const r of m.iterResults()) got.set(r.meta.taskId, r);
    })();
    const ids = {
      normal: await m.put(1, 2),
      slow: await m.put(fault('slow', { ms: 50 }), 3, 4),
      throw: await m.put(fault({ kind: 'throw', name: 'ParseError', message: 'bad page' })),
      exit: await m.put(fault('exitThread', { code: 9 })),
      uncaught: await m.put(fault('uncaught')),
      spin: await m.put(fault('spin')),
      untilAborted: await m.put(fault('untilAborted')),
      unsendable: await m.put(fault('unsendable')),
    };
    await m.join();
    await reading;
    expect(got.get(ids.normal)!.result).toBe(3);
    expect(got.get(ids.slow)!.result).toBe(7);
    expect(got.get(ids.throw)!.meta.status).toBe('error');
    expect((got.get(ids.throw)!.result as Error).name).toBe('ParseError');
    expect((got.get(ids.exit)!.result as WorkerCrashedError).exitCode).toBe(9);
    expect(got.get(ids.uncaught)!.meta.status).toBe('crashed');
    expect(got.get(ids.spin)!.result).toBeInstanceOf(TaskTimeoutError);
    expect(got.get(ids.untilAborted)!.result).toBeInstanceOf(TaskTimeoutError);
    expect((got.get(ids.unsendable)!.result as Error).name).toBe('SerializationError');
    expect(got.size).toBe(8);
  });

  it('crashProcess: the task settles crashed with the signal; a task after it still runs', async () => {
    const m = new MPMS({ worker, processes: 1, threads: 1 });
    await m.start();
    const got: Meta[] = [];
    const results: unknown[] = [];
    const reading = (async () => {
      for await (const r of m.iterResults()) {
        got.push(r.meta);
        results.push(r.result);
      }
    })();
    await m.put(fault('crashProcess', { signal: 'SIGSEGV' }));
    await m.put(20, 22);
    await m.join();
    await reading;
    expect(got.map((x) => x.status).sort()).toEqual(['crashed', 'ok']);
    expect((results[got.findIndex((x) => x.status === 'crashed')] as WorkerCrashedError).signal).toBe('SIGSEGV');
    expect(results[got.findIndex((x) => x.status === 'ok')]).toBe(42);
  });

  it('a faulty hook from initArgs: a throwing threadInitializer makes start() fail, naming the hook', async () => {
    const m = new MPMS({ worker, processes: 1, threads: 1, initArgs: { mpmsFaults: { threadInitializer: { kind: 'throw', message: 'no browser' } } } });
    const err = await m.start().then(() => undefined, (e: unknown) => e as Error);
    expect(err).toBeInstanceOf(WorkerStartError);
    expect(err!.message).toMatch(/threadInitializer.*no browser/);
  });
});
