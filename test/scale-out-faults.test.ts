/**
 * The rest of the scale-out fault matrix (test/scale-out.test.ts has worker SIGKILL, Redis
 * restart ± AOF, master SIGKILL + re-attach): two masters on one queue, Redis paused, and a
 * worker engine serving another module. Each counts outcomes by task id (exactly one each),
 * logs the time to settle and checks that Redis is left clean.
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { MPMS } from '../dist/index.js';
import { bullmqTransport } from '../dist/scale-out/index.js';
import { fixture } from './helpers.js';
import { exited, expectClean, freePort, HAS_REDIS_SERVER, outcomeLog, scaleOutSuite, startRedisServer, until, WORKER, workerId } from './scale-out-helpers.js';

const suite = await scaleOutSuite('test/scale-out-faults.test.ts');
const REDIS = suite.url;
const { newQueue, startWorker } = suite;
/** MPMS_SCALE_OUT_FULL=1: the matrix at the sizes of issue 18 (Redis paused 10 s); default: sizes that keep CI lean. */
const FULL = process.env.MPMS_SCALE_OUT_FULL === '1';

function transport(queue: string, extra: Record<string, unknown> = {}, url = REDIS!) {
  return bullmqTransport({ connection: url, queue, sweepInterval: 200, ...extra });
}

describe.skipIf(!REDIS)('scale-out faults', () => {
  it("fault: two masters on one queue (different runs) never touch each other's jobs — drain, a dead engine's jobs, re-attach", { timeout: 60_000 }, async () => {
    const queue = newQueue();
    const redis = suite.redis();
    const key = (k: string) => `bull:${queue}:${k}`;
    // W will hold jobs of both runs when it dies: 4 of A's (started: 2 × its 2 slots), then 4 of B's (unstarted).
    const w = await startWorker(queue, ['--prefetch', '8', '--lock-duration', '2500ms']);
    const wId = workerId(w);
    const holds = async () => [...(await redis.smembers(key(`mpms:w:${wId}:run`))), ...(await redis.smembers(key(`mpms:w:${wId}:held`)))];
    const runA = `a${process.pid}`;
    const runB = `b${process.pid}`;
    const logA = outcomeLog();
    const crashedA: string[] = [];
    const a = new MPMS({
      worker: WORKER,
      transport: transport(queue, { runId: runA }),
      collector: (meta, result) => {
        logA.add(meta.taskId, meta.status);
        if (meta.status === 'crashed') crashedA.push((result as Error).message);
      },
    });
    await a.start();
    // A's jobs outlast anything that follows (they end crashed or cancelled, never ok): at 3 s, a
    // loaded machine (load average 35) took longer to start B, A's first jobs finished, and W
    // held 2 of A's instead of 4 when it was killed.
    for (let i = 0; i < 4; i++) await a.put('sleep', 60_000);
    await until('W holds 4 jobs of A', async () => (await holds()).length === 4);
    const b = spawn(process.execPath, [fixture('scale-out-master.mjs'), REDIS!, queue, runB, '4xsleep:3000,20xecho:1'], { stdio: ['ignore', 'pipe', 'inherit'] });
    suite.started.push(b);
    let bOut = '';
    b.stdout!.on('data', (d: Buffer) => (bOut += d.toString()));
    await until('B sent its jobs', () => bOut.includes('sent'));
    await until('W holds 8 jobs', async () => (await holds()).length === 8);
    b.kill('SIGKILL');
    process.kill(-w.pid!, 'SIGKILL');
    const killedAt = Date.now();
    await Promise.all([exited(b, 5000), exited(w, 5000)]);
    const wRun = await redis.smembers(key(`mpms:w:${wId}:run`));
    const wHeld = await redis.smembers(key(`mpms:w:${wId}:held`));
    const ofRun = (ids: string[], run: string) => ids.filter((id) => id.startsWith(run + '.')).sort();
    const startedA = ofRun(wRun, runA);
    const startedB = ofRun(wRun, runB);
    expect(ofRun([...wRun, ...wHeld], runA).length).toBe(4);
    expect(ofRun([...wRun, ...wHeld], runB).length).toBe(4);
    for (let i = 0; i < 20; i++) await a.put('echo', i);

    // The dead engine: A's master reaps A's jobs only. B's stay where W left them, for B.
    await until("A's started jobs on the dead engine settled", () => logA.ids('crashed').length === startedA.length && ofRun([...wRun, ...wHeld], runA).length > 0, 20_000);
    await until("no job of A left on the dead engine", async () => ofRun(await holds(), runA).length === 0, 10_000);
    const aSettleMs = Date.now() - killedAt;
    expect(ofRun(await redis.smembers(key(`mpms:w:${wId}:run`)), runB)).toEqual(startedB);
    expect(ofRun(await redis.smembers(key(`mpms:w:${wId}:held`)), runB)).toEqual(ofRun(wHeld, runB));
    expect(await redis.hexists(key('mpms:workers'), wId), 'the dead engine stays registered while it holds B\'s jobs').toBe(1);
    for (const msg of crashedA) expect(msg).toMatch(/lost with worker engine .* went silent/);

    // Drain: A's shutdown takes back A's unstarted jobs, and nothing of B's.
    const waitingBefore = ofRun(await redis.lrange(key('wait'), 0, -1), runB);
    expect(waitingBefore.length).toBe(20);
    const summaryA = await a.gracefulShutdown({ timeout: 0 });
    expect(summaryA).toMatchObject({ total: 24, crashed: startedA.length, ok: 0, cancelled: 24 - startedA.length });
    expect(logA.duplicates).toBe(0);
    expect((await redis.lrange(key('wait'), 0, -1)).sort()).toEqual(waitingBefore);
    expect(ofRun(await holds(), runB).length).toBe(4);
    expect(await redis.keys(`bull:${queue}:*${runA}*`), 'keys of run A after its shutdown').toEqual([]);

    // Re-attach: B's new master adopts all 24 and reaps its own jobs from the dead engine.
    const logB = outcomeLog();
    const trB = transport(queue, { runId: runB });
    const b2 = new MPMS({ worker: WORKER, transport: trB, collector: (meta) => logB.add(meta.taskId, meta.status) });
    await b2.start();
    expect(trB.adopted).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
    const w2 = await startWorker(queue, ['-t', '4']);
    const summaryB = await b2.join();
    console.log(`scale-out fault (two masters): A's jobs on a dead engine settled ${aSettleMs} ms after the kill (${startedA.length} started: crashed); A's drain left B's 20 waiting jobs; B re-attached: ${JSON.stringify(summaryB)}`);
    expect(summaryB).toMatchObject({ total: 24, crashed: startedB.length, ok: 24 - startedB.length });
    expect(logB.duplicates).toBe(0);
    expect(logB.status.size).toBe(24);
    w2.kill('SIGTERM');
    expect(await exited(w2, 20_000)).toBe(0);
    await expectClean(redis, queue, [runA, runB]);
    expect(await redis.hexists(key('mpms:workers'), wId), 'the dead engine left the registry once empty').toBe(0);
  });

  it.skipIf(!HAS_REDIS_SERVER)(`fault: Redis paused (SIGSTOP) ${FULL ? 10 : 4} s, longer than a worker engine's liveness deadline: nobody is declared dead, every task ok once`, { timeout: 90_000 }, async () => {
    const PAUSE = FULL ? 10_000 : 4_000;
    const port = await freePort();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mpms-redis-pause-'));
    const server = await startRedisServer(port, dir, ['--save', '', '--appendonly', 'no']);
    expect(server, 'redis-server did not start').toBeDefined();
    const url = `redis://127.0.0.1:${port}`;
    try {
      const queue = `pause${process.pid}`;
      // The default deadline (3 s) is shorter than the pause.
      const w = await startWorker(queue, [], url);
      const N = FULL ? 20_000 : 4000;
      const log = outcomeLog();
      let midway!: () => void;
      const reachedMidway = new Promise<void>((r) => (midway = r));
      const tr = transport(queue, {}, url);
      const m = new MPMS({
        worker: WORKER,
        transport: tr,
        collector: (meta) => {
          log.add(meta.taskId, meta.status);
          if (log.status.size >= N / 3) midway();
        },
      });
      await m.start();
      const feeding = (async () => {
        for (let i = 0; i < N; i++) await m.put('add', i);
      })();
      await reachedMidway;
      const atPause = log.status.size;
      server!.kill('SIGSTOP');
      await new Promise((r) => setTimeout(r, PAUSE));
      const during = log.status.size;
      server!.kill('SIGCONT');
      const resumedAt = Date.now();
      await feeding;
      const summary = await m.join();
      console.log(`scale-out fault (Redis SIGSTOP ${PAUSE} ms): paused after ${atPause} of ${N} outcomes (${during - atPause} more came during the pause); join() ${Date.now() - resumedAt} ms after SIGCONT; ${JSON.stringify(summary)}`);
      expect(log.duplicates).toBe(0);
      expect(log.status.size).toBe(N);
      expect(summary).toMatchObject({ total: N, ok: N, crashed: 0 });
      w.kill('SIGTERM');
      expect(await exited(w, 20_000)).toBe(0);
      expect(suite.localSummary(w).total).toBe(N);
      const r = suite.redis(url);
      await expectClean(r, queue, [tr.runId]);
      r.disconnect();
    } finally {
      if (server?.pid && server.exitCode === null) {
        server.kill('SIGCONT');
        server.kill('SIGKILL');
        await exited(server, 5000);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fault: a worker engine serving another module refuses its jobs (error, counted, never run); an explicit shared fingerprint runs them', { timeout: 60_000 }, async () => {
    const queue = newQueue();
    const other = await startWorker(queue, [], REDIS!, fixture('basic-worker-v2.mjs'));
    const log = outcomeLog();
    const tr = transport(queue);
    const masterLog: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void masterLog.push(line) });
    const m = new MPMS({ worker: WORKER, logger, transport: tr, collector: (meta, result) => log.add(meta.taskId, meta.status, result) });
    await m.start();
    // Said before the first job goes out: every engine on the queue serves another module.
    expect(masterLog.join('')).toMatch(/no worker engine registered on this queue serves this master's worker module/);
    for (let i = 0; i < 30; i++) await m.put('add', i);
    const summary = await m.join();
    expect(summary).toMatchObject({ total: 30, error: 30 });
    expect(log.duplicates).toBe(0);
    for (const r of log.results.values()) {
      expect(r).toMatchObject({ name: 'IncompatibleWorkerError', worker: workerId(other) });
      expect((r as Error).message).toMatch(/refused the job: it was sent for mpms\/2\/[0-9a-f]{16}\/default but this engine serves mpms\/2\/[0-9a-f]{16}\/default/);
    }
    other.kill('SIGTERM');
    expect(await exited(other, 20_000)).toBe(0);
    // The refusal is the worker engine's own: logged as an error, counted, and nothing ran there.
    expect(suite.logs.get(other)).toMatch(/refused a job sent for another worker module/);
    expect(suite.localSummary(other)).toMatchObject({ total: 0, refused: 30 });
    await expectClean(suite.redis(), queue, [tr.runId]);

    // The user vouches for compatibility (a release id on both sides): the jobs run.
    const same = await startWorker(queue, ['--fingerprint', 'release-7'], REDIS!, fixture('basic-worker-v2.mjs'));
    const m2 = new MPMS({ worker: WORKER, transport: transport(queue, { fingerprint: 'release-7' }), collector: () => {} });
    await m2.start();
    for (let i = 0; i < 10; i++) await m2.put('add', i);
    expect(await m2.join()).toMatchObject({ total: 10, ok: 10 });
    same.kill('SIGTERM');
    expect(await exited(same, 20_000)).toBe(0);
  });
});
