import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MPMS, WorkerStartError, type Meta } from '../dist/index.js';
import { failedStart, guardChildren, fixture, waitGone } from './helpers.js';

// Whatever a test started must be gone once it ends.
guardChildren();

const worker = fixture('hooks-worker.mjs');

type Hook = 'processInitializer' | 'threadInitializer' | 'threadFinalizer' | 'processFinalizer';
interface Line {
  hook: Hook;
  name: string;
  processIndex: number;
  threadIndex: number;
  initArgs: { log: string; tag: string };
  processData: unknown;
  pid: number;
}

function tempLog(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mpms-hooks-'));
  const log = path.join(dir, 'log');
  fs.writeFileSync(log, '');
  return log;
}

const readLines = (log: string): Line[] =>
  fs
    .readFileSync(log, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line);

describe('hooks', () => {
  it('all four hooks run for every process and thread with the documented ctx; processData reaches every thread and task', async () => {
    const log = tempLog();
    const initArgs = { log, tag: 'hello-hooks' };
    const m = new MPMS({ worker, processes: 2, threads: 2, name: 'hooky', initArgs });
    await m.start();
    // After start() resolved, every initializer has run.
    const atStart = readLines(log);
    expect(atStart.filter((l) => l.hook === 'processInitializer')).toHaveLength(2);
    expect(atStart.filter((l) => l.hook === 'threadInitializer')).toHaveLength(4);
    expect(atStart.filter((l) => l.hook === 'threadFinalizer' || l.hook === 'processFinalizer')).toEqual([]);

    const got: { meta: Meta; result: unknown }[] = [];
    const reading = (async () => {
      for await (const r of m.iterResults()) got.push(r);
    })();
    for (let i = 0; i < 40; i++) await m.put(i);
    const summary = await m.join();
    await reading;
    expect(summary).toMatchObject({ total: 40, ok: 40 });

    const lines = readLines(log);
    const of = (hook: Hook) => lines.filter((l) => l.hook === hook);
    expect(of('processInitializer')).toHaveLength(2);
    expect(of('processFinalizer')).toHaveLength(2);
    expect(of('threadInitializer')).toHaveLength(4);
    expect(of('threadFinalizer')).toHaveLength(4);

    // ctx: name, processIndex, threadIndex, initArgs on every hook.
    for (const l of lines) {
      expect(l.name).toMatch(/hooky/);
      expect(l.initArgs).toEqual(initArgs);
      expect([0, 1]).toContain(l.processIndex);
      if (l.hook.startsWith('process')) expect(l.threadIndex).toBe(-1);
      else expect([0, 1]).toContain(l.threadIndex);
    }
    // One of each per process / per thread, in a sane order.
    const pidOf = new Map<number, number>();
    for (const p of [0, 1]) {
      const pi = lines.findIndex((l) => l.hook === 'processInitializer' && l.processIndex === p);
      const pf = lines.findIndex((l) => l.hook === 'processFinalizer' && l.processIndex === p);
      expect(pi).toBeGreaterThanOrEqual(0);
      expect(pf).toBeGreaterThan(pi);
      const pid = lines[pi]!.pid;
      pidOf.set(p, pid);
      expect(lines[pf]!.pid).toBe(pid);
      const expectedData = { token: `data-p${p}`, pid };
      // The process hooks: processInitializer sees no processData yet; processFinalizer sees it.
      expect(lines[pi]!.processData ?? undefined).toBeUndefined();
      expect(lines[pf]!.processData).toEqual(expectedData);
      for (const t of [0, 1]) {
        const ti = lines.findIndex((l) => l.hook === 'threadInitializer' && l.processIndex === p && l.threadIndex === t);
        const tf = lines.findIndex((l) => l.hook === 'threadFinalizer' && l.processIndex === p && l.threadIndex === t);
        expect(ti, `threadInitializer p${p} t${t}`).toBeGreaterThan(pi);
        expect(tf, `threadFinalizer p${p} t${t}`).toBeGreaterThan(ti);
        expect(tf, `threadFinalizer p${p} t${t} before processFinalizer`).toBeLessThan(pf);
        expect(lines[ti]!.pid).toBe(pid);
        expect(lines[ti]!.processData).toEqual(expectedData);
        expect(lines[tf]!.processData).toEqual(expectedData);
      }
    }

    // Tasks see the same processData through the thread's ctx and through taskContext().
    expect(got).toHaveLength(40);
    for (const { meta, result } of got) {
      const r = result as { fromHookCtx: unknown; fromTaskContext: unknown; processIndex: number; threadIndex: number; pid: number };
      const expectedData = { token: `data-p${meta.processIndex}`, pid: pidOf.get(meta.processIndex!) };
      expect(r.pid).toBe(meta.pid);
      expect(r.processIndex).toBe(meta.processIndex);
      expect(r.threadIndex).toBe(meta.threadIndex);
      expect(r.fromHookCtx).toEqual(expectedData);
      expect(r.fromTaskContext).toEqual(expectedData);
    }
    expect(await waitGone(pidOf.values())).toEqual([]);
  });

  it('a processInitializer that throws makes start() reject naming processInitializer; no child is left', async () => {
    const log = tempLog();
    const hookTimeout = 30_000;
    const { err, ms, left } = await failedStart({ worker, processes: 2, threads: 2, initArgs: { log, tag: 'fail', failProcessInit: true }, hookTimeout });
    expect(err).toBeInstanceOf(WorkerStartError);
    expect((err as Error).message).toContain('processInitializer');
    expect((err as Error).message).toContain('processInitializer exploded');
    // Failed by the hook's own throw, not by a bound: the phase and message say so, and it took
    // less than the hookTimeout a start waiting for the hook's bound would take at least — a
    // bound from the settings, not the machine's speed.
    expect((err as WorkerStartError).phase).toBe('processInitializer');
    expect((err as Error).message).not.toMatch(/did not finish within/);
    expect(ms).toBeLessThan(hookTimeout);
    expect(left).toEqual([]);
    // It did run, and no thread was started after it failed.
    const lines = readLines(log);
    expect(lines.filter((l) => l.hook === 'processInitializer').length).toBeGreaterThanOrEqual(1);
    expect(lines.filter((l) => l.hook === 'threadInitializer')).toEqual([]);
  });
});
