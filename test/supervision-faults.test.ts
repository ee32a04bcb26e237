import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MPMS, WorkerStartError } from '../dist/index.js';
import { captureLogger, childPids, fixture, guardChildren } from './helpers.js';

const worker = fixture('hook-faults-worker.mjs');
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'mpms-faults-'));

// Whatever a test started must be gone once it ends.
guardChildren();

describe('hook faults and crash loops', () => {
  it('an always-throwing threadInitializer: start() gives up after the back-off attempts, naming the hook; nothing left', async () => {
    const before = childPids();
    const calls = path.join(tmp(), 'calls');
    const m = new MPMS({ worker, processes: 1, threads: 2, initArgs: { throwIn: 'threadInitializer', calls } });
    const err = await m.start().then(() => undefined, (e: unknown) => e as WorkerStartError & { phase?: string });
    expect(err).toBeInstanceOf(WorkerStartError);
    expect(err!.message).toMatch(/threadInitializer/);
    expect(err!.message).toMatch(/failed on purpose/);
    // Not a spin: the child gives up at the back-off's 5th failure in a row (after 100, 200, 400
    // and 800 ms), counted by attempts, not by time; each of the 2 slots may have one more start
    // in flight then. A hang would fail on the test's timeout.
    expect(err!.message).toMatch(/failed to start 5 times in a row/);
    const attempts = fs.readFileSync(calls, 'utf8').split('\n').filter((l) => l === 'threadInitializer').length;
    expect(attempts).toBeGreaterThanOrEqual(5);
    expect(attempts).toBeLessThanOrEqual(5 + 1);
    expect(childPids().filter((p) => !before.includes(p))).toEqual([]);
  });

  it('a hanging processInitializer: start() rejects after hookTimeout, naming the hook', async () => {
    const m = new MPMS({ worker, processes: 1, threads: 1, hookTimeout: 300, initArgs: { hangIn: 'processInitializer' } });
    const err = await m.start().then(() => undefined, (e: unknown) => e as Error);
    expect(err).toBeInstanceOf(WorkerStartError);
    expect(err!.message).toMatch(/processInitializer did not finish within 300 ms/);
  });

  it('a hanging threadFinalizer: join() still ends, the finalizer cut at its hookTimeout, and every task is ok', async () => {
    const { logger, lines } = captureLogger();
    const m = new MPMS({ worker, processes: 1, threads: 2, hookTimeout: 300, initArgs: { hangIn: 'threadFinalizer' }, logger });
    await m.start();
    for (let i = 0; i < 10; i++) await m.put('ok');
    // The finalizer never returns: join() ends only because each thread cut it at its hookTimeout
    // (said in the log, one line per thread), not by a later bound of the shutdown.
    const summary = await m.join();
    expect(summary).toMatchObject({ total: 10, ok: 10 });
    const cut = lines.filter((l) => /threadFinalizer .*did not finish within its hookTimeout of 300 ms/.test(l.msg));
    expect(cut, JSON.stringify(lines)).toHaveLength(2);
    expect(lines.filter((l) => /did not finish within|going on/.test(l.msg) && !cut.includes(l))).toEqual([]);
  });

  it('a crash loop while running: the engine gives up, emits error, cancels what waits, join() resolves', async () => {
    const dir = tmp();
    const marker = path.join(dir, 'broken');
    const m = new MPMS({ worker, processes: 1, threads: 1, initArgs: { marker, throwIn: 'processInitializer' } });
    const errors: Error[] = [];
    m.on('error', (e) => errors.push(e));
    await m.start();
    fs.writeFileSync(marker, '');
    // From now on every replacement fails in processInitializer; the running child is killed.
    await m.put('kill');
    for (let i = 0; i < 5; i++) await m.put('ok');
    const summary = await m.join();
    expect(summary.total).toBe(6);
    expect(summary.crashed).toBeGreaterThanOrEqual(1);
    expect(summary.cancelled + summary.crashed).toBe(6);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toMatch(/processInitializer/);
    await expect(m.put('late')).rejects.toThrow(/cannot run tasks|no more tasks/);
  });

  it('join() during a graceful shutdown resolves with the same summary; a second shutdown call shares it', async () => {
    const m = new MPMS({ worker, processes: 1, threads: 2 });
    await m.start();
    for (let i = 0; i < 6; i++) await m.put('sleep', 300);
    const g1 = m.gracefulShutdown({ timeout: 5000 });
    const g2 = m.gracefulShutdown({ timeout: 1 });
    const j = m.join();
    const [s1, s2, s3] = await Promise.all([g1, g2, j]);
    expect(s2).toBe(s1);
    expect(s3).toBe(s1);
    expect(s1.total).toBe(6);
    expect(s1.ok + s1.cancelled).toBe(6);
    expect(s1.unstarted.length).toBe(s1.cancelled);
    expect(await m.join()).toBe(s1);
  });

  it('terminate(): immediate; running and waiting tasks settle cancelled; no child left', async () => {
    const before = childPids();
    // Everything terminate() must not wait for is made long: the tasks (30 s), hooks and a
    // graceful die (30 s each). Its time is then below 30 s unless it waited for one of them —
    // a bound from the settings, not the machine's speed (the kill itself takes ms).
    const longer = 30_000;
    const m = new MPMS({ worker, processes: 2, threads: 1, hookTimeout: longer, workerGracefulDieTimeout: longer });
    await m.start();
    for (let i = 0; i < 10; i++) await m.put('sleep', longer);
    const t0 = Date.now();
    const summary = await m.terminate();
    expect(Date.now() - t0).toBeLessThan(longer);
    expect(summary).toMatchObject({ total: 10, cancelled: 10 });
    expect(childPids().filter((p) => !before.includes(p))).toEqual([]);
  });
});
