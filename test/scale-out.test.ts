/**
 * Scale-out over a real Redis: `mpms worker` engines (separate processes, our CLI) serve a
 * master that uses `bullmqTransport`. Redis comes from MPMS_REDIS_URL (.ci/run starts one), or
 * a `redis-server` started on a free port (test/scale-out-helpers.ts). The fault matrix is here
 * and in test/scale-out-faults.test.ts; every fault test counts outcomes by task id (exactly
 * one each), logs the time to settle, and checks that Redis is left clean.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { pino } from 'pino';
import { MPMS, QueueFullError, TaskTimeoutError, WorkerCrashedError, type Meta } from '../dist/index.js';
import { bullmqTransport } from '../dist/scale-out/index.js';
import { jobId, parseJobId } from '../dist/scale-out/wire.js';
import { withinMs } from '../dist/scale-out/connection.js';
import { fixture, waitGone } from './helpers.js';
import { CLI, WORKER, engineChildren, exited, expectClean, freePort, HAS_REDIS_SERVER, outcomeLog, scaleOutSuite, startRedisServer, until, workerId } from './scale-out-helpers.js';

const suite = await scaleOutSuite('test/scale-out.test.ts');
const REDIS = suite.url;
const { newQueue, startWorker, logs } = suite;

function transport(queue: string, extra: Record<string, unknown> = {}, url = REDIS!) {
  return bullmqTransport({ connection: url, queue, sweepInterval: 200, ...extra });
}

describe.skipIf(!REDIS)('scale-out over BullMQ + Redis', () => {
  it('gives every task the same outcome, meta and result shapes as the local engine', { timeout: 60_000 }, async () => {
    const queue = newQueue();
    const w = await startWorker(queue);
    const kids = engineChildren(w.pid!);
    const tr = transport(queue);
    const m = new MPMS({ worker: WORKER, transport: tr });
    await m.start();
    const ids = {
      buf: await m.put('echo', Buffer.from('bytes')),
      map: await m.put('echo', new Map<unknown, unknown>([[1n, new Date(5)]])),
      add: await m.put('add', 41),
      thrown: await m.put('throw', 'x'),
      slow: await m.submit(['sleep', 5000], { timeout: 300, meta: { tag: 'slow' } }),
    };
    m.close();
    const got = new Map<number, { meta: Meta; result: unknown }>();
    for await (const r of m.iterResults()) {
      expect(got.has(r.meta.taskId), `a second outcome for task ${r.meta.taskId}`).toBe(false);
      got.set(r.meta.taskId, r);
    }
    const summary = await m.join();
    expect(summary).toMatchObject({ total: 5, ok: 3, error: 1, timeout: 1, crashed: 0, cancelled: 0 });
    const buf = got.get(ids.buf)!;
    expect(Buffer.isBuffer(buf.result) && (buf.result as Buffer).toString()).toBe('bytes');
    expect(Buffer.isBuffer(buf.meta.args[1])).toBe(true);
    expect(buf.meta).toMatchObject({ status: 'ok', attempts: 1, processIndex: 0, worker: workerId(w) });
    expect(kids).toContain(buf.meta.pid);
    expect(got.get(ids.map)!.result).toEqual(new Map([[1n, new Date(5)]]));
    expect(got.get(ids.add)!.result).toBe(42);
    const thrown = got.get(ids.thrown)!;
    expect(thrown.meta.status).toBe('error');
    expect(thrown.result).toMatchObject({ name: 'TypeError', message: 'bad x', code: 'E_BAD', cause: { message: 'root cause' } });
    const slow = got.get(ids.slow)!;
    expect(slow.meta).toMatchObject({ status: 'timeout', tag: 'slow' });
    expect(slow.result).toBeInstanceOf(TaskTimeoutError);

    w.kill('SIGTERM');
    expect(await exited(w, 20_000)).toBe(0);
    expect(await waitGone(kids, 5000), 'engine children of a stopped worker').toEqual([]);
    await expectClean(suite.redis(), queue, [tr.runId]);
  });

  it('a run that names itself (runId) and outlasts every batch size leaves Redis clean: no job, no key of the run', { timeout: 60_000 }, async () => {
    const queue = newQueue();
    const w = await startWorker(queue, ['--prefetch', '600']);
    const runId = `named${process.pid}`;
    const log = outcomeLog();
    // 1,300 tasks: past the 500-job batches of adds, drains and acks, and past maxOutstanding.
    const N = 1300;
    const m = new MPMS({ worker: WORKER, transport: transport(queue, { runId, maxOutstanding: 1100 }), collector: (meta) => log.add(meta.taskId, meta.status) });
    await m.start();
    for (let i = 0; i < N; i++) await m.put('add', i);
    expect(await m.join()).toMatchObject({ total: N, ok: N });
    expect(log.duplicates).toBe(0);
    expect(log.ids('ok').length).toBe(N);
    // The worker engine is still registered (alive); nothing of the run is left.
    await expectClean(suite.redis(), queue, [runId], true);
    w.kill('SIGTERM');
    expect(await exited(w, 20_000)).toBe(0);
    await expectClean(suite.redis(), queue, [runId]);
  });

  it('fault: two worker engines, 20,000 tasks, one SIGKILLed while it holds jobs: its started jobs settle crashed within seconds, its unstarted ones run on the other, each task once', { timeout: 90_000 }, async () => {
    const queue = newQueue();
    // Default liveness (a heartbeat every 500 ms, dead after 3 s): what a fleet gets without tuning.
    const [a, b] = await Promise.all([startWorker(queue), startWorker(queue)]);
    const aKids = engineChildren(a.pid!);
    const aId = workerId(a);
    const bId = workerId(b);
    const N = 20_000;
    const log = outcomeLog();
    const byWorker = new Map<string, number>();
    const crashed = new Map<number, { at: number; result: unknown }>();
    let midway!: () => void;
    const reachedMidway = new Promise<void>((r) => (midway = r));
    const tr = transport(queue, { maxOutstanding: 2000 });
    const m = new MPMS({
      worker: WORKER,
      taskQueueMaxsize: 2000,
      transport: tr,
      collector: (meta, result) => {
        log.add(meta.taskId, meta.status);
        if (meta.status === 'crashed') crashed.set(meta.taskId, { at: Date.now(), result });
        if (meta.worker) byWorker.set(meta.worker, (byWorker.get(meta.worker) ?? 0) + 1);
        if (log.status.size >= N / 3 && byWorker.has(aId)) midway();
      },
    });
    await m.start();
    const redis = suite.redis();
    const key = (k: string) => `bull:${queue}:${k}`;
    const t0 = Date.now();
    const feeding = (async () => {
      for (let i = 0; i < N; i++) await m.put('add', i);
    })();
    await reachedMidway;

    // The kill must land while a has started jobs. The master lags the engines and, when it is
    // the bottleneck, they idle: so probes (tasks that sleep 3 s) are sent until Redis shows one
    // in a's started set.
    const probes: number[] = [];
    const onB = new Set<number>();
    await until('a probe started on worker engine a', async () => {
      for (const p of probes) {
        if (await redis.sismember(key(`mpms:w:${aId}:run`), jobId(tr.runId, p, 1))) return true;
        if (await redis.sismember(key(`mpms:w:${bId}:run`), jobId(tr.runId, p, 1))) onB.add(p);
      }
      // b started every probe so far: send another (b's threads sleep on them, so a takes more).
      if (probes.length === onB.size && probes.length < 12) probes.push(await m.submit(['sleep', 3000]));
      return false;
    }, 40_000);
    process.kill(-a.pid!, 'SIGKILL');
    const killedAt = Date.now();
    const aAtKill = byWorker.get(aId) ?? 0;
    expect(await exited(a, 5000)).toBe(null);
    // What a held when it died, per Redis (no reaper acts before a's 3 s deadline).
    const [started, unstarted] = await Promise.all([redis.smembers(key(`mpms:w:${aId}:run`)), redis.smembers(key(`mpms:w:${aId}:held`))]);
    const startedTasks = started.map((id) => parseJobId(tr.runId, id)!.taskId).sort((x, y) => x - y);
    const unstartedTasks = unstarted.map((id) => parseJobId(tr.runId, id)!.taskId);
    await until('every started job of a settled', () => startedTasks.every((t) => crashed.has(t)), 30_000);
    const settleMs = Math.max(...startedTasks.map((t) => crashed.get(t)!.at)) - killedAt;

    await feeding;
    const summary = await m.join();
    const total = N + probes.length;
    console.log(
      `scale-out fault (worker SIGKILL): ${total} tasks over two worker engines; a SIGKILLed holding ${started.length} started + ${unstarted.length} unstarted jobs; ` +
        `its started ones settled crashed ${settleMs} ms after the kill; run ${Date.now() - t0} ms; ${JSON.stringify(summary)}; per worker ${JSON.stringify([...byWorker])}`,
    );

    expect(log.duplicates).toBe(0);
    expect(log.status.size).toBe(total);
    // a held at least the probe started, and never more than its prefetch allows (adaptive: 512 at most).
    expect(started.length).toBeGreaterThanOrEqual(1);
    expect(started.length + unstarted.length).toBeLessThanOrEqual(512);
    expect(summary).toMatchObject({ total, ok: total - started.length, crashed: started.length, error: 0, timeout: 0, cancelled: 0 });
    expect(log.ids('crashed')).toEqual(startedTasks);
    for (const t of unstartedTasks) expect(log.status.get(t), `unstarted task ${t} of the dead engine`).toBe('ok');
    for (const { result } of crashed.values()) {
      expect(result).toBeInstanceOf(WorkerCrashedError);
      expect((result as Error).message).toMatch(new RegExp(`lost with worker engine ${aId}.*no heartbeat`));
    }
    // Noticed in seconds: 3 s of silence plus a check, not a minute (a bound far from flaky, the figure is logged).
    expect(settleMs).toBeLessThan(10_000);
    // Every ok came from one of the two engines; after the kill only outcomes a had published
    // before it died (at most maxOutstanding) could still be credited to it.
    expect(new Set(byWorker.keys())).toEqual(new Set([aId, bId]));
    expect(byWorker.get(aId)! + byWorker.get(bId)!).toBe(summary.ok + started.length);
    expect(byWorker.get(aId)! - aAtKill).toBeLessThanOrEqual(2000 + started.length);
    expect(await waitGone(aKids, 5000), 'engine children of the killed worker engine').toEqual([]);

    // b ran exactly the tasks credited to it (a's unstarted jobs among them): none ran twice.
    const bKids = engineChildren(b.pid!);
    b.kill('SIGTERM');
    expect(await exited(b, 20_000)).toBe(0);
    expect(await waitGone(bKids, 5000)).toEqual([]);
    expect(suite.localSummary(b)).toMatchObject({ total: byWorker.get(bId), ok: byWorker.get(bId) });
    await expectClean(redis, queue, [tr.runId]);
  });

  // A Redis of the test's own (never the shared MPMS_REDIS_URL one), SIGKILLed once a third of
  // the outcomes are in and restarted on its port and data dir once the master and the worker
  // engine have both noticed. Durable (AOF, fsync always): nothing acknowledged is lost, and a
  // fetch or mark whose reply died with Redis is reconciled after the reconnect — no task is
  // lost. Not durable (Redis comes back empty): every unsettled job is gone, and settles
  // crashed when the master finds it missing — without that check join() waited for ever.
  for (const durable of [true, false]) {
    it.skipIf(!HAS_REDIS_SERVER)(`fault: Redis SIGKILLed mid-run and restarted ${durable ? 'with its data (AOF, fsync always)' : 'empty (no persistence)'}: every task gets exactly one outcome, join() returns`, { timeout: 150_000 }, async () => {
      const port = await freePort();
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mpms-redis-outage-'));
      const args = durable ? ['--save', '', '--appendonly', 'yes', '--appendfsync', 'always'] : ['--save', '', '--appendonly', 'no'];
      let server = await startRedisServer(port, dir, args);
      expect(server, 'redis-server did not start').toBeDefined();
      const url = `redis://127.0.0.1:${port}`;
      try {
        const queue = `outage${process.pid}`;
        const w = await startWorker(queue, [], url);
        const masterLog: string[] = [];
        const N = 5000;
        const log = outcomeLog();
        const lost: string[] = [];
        let midway!: () => void;
        const reachedMidway = new Promise<void>((r) => (midway = r));
        const tr = transport(queue, { maxOutstanding: 500 }, url);
        const m = new MPMS({
          worker: WORKER,
          logger: pino({ level: 'warn' }, { write: (line: string) => void masterLog.push(line) }),
          transport: tr,
          collector: (meta, result) => {
            log.add(meta.taskId, meta.status);
            if (meta.status === 'crashed') lost.push(result instanceof WorkerCrashedError ? result.message : String(result));
            if (log.status.size >= N / 3) midway();
          },
        });
        await m.start();
        const feeding = (async () => {
          for (let i = 0; i < N; i++) await m.put('add', i);
        })();
        await reachedMidway;
        const seenAtOutage = log.status.size;
        server!.kill('SIGKILL');
        await exited(server!, 5000);
        await until('the master and the worker engine both noticed Redis down', () => masterLog.some((l) => l.includes('Redis error')) && logs.get(w)!.includes('Redis error'), 15_000);
        server = await startRedisServer(port, dir, args);
        expect(server, 'redis-server did not restart on its port').toBeDefined();
        const restartedAt = Date.now();
        await feeding;
        // A bound far above the few seconds it takes, so a loaded machine cannot fail it: the point is that join() returns.
        const summary = await withinMs(m.join(), 90_000, 'join() after the Redis restart');
        console.log(`scale-out fault (Redis SIGKILL, restarted ${durable ? 'with' : 'without'} its data): after ${seenAtOutage} of ${N} outcomes; join() returned ${Date.now() - restartedAt} ms after the restart; ${JSON.stringify(summary)}`);

        expect(log.duplicates).toBe(0);
        expect(log.status.size).toBe(N);
        expect(summary).toMatchObject({ total: N, ok: N - lost.length, crashed: lost.length, error: 0, timeout: 0, cancelled: 0 });
        if (durable) {
          expect(lost).toEqual([]);
        } else {
          // Everything unsettled was in Redis (at most maxOutstanding), and some was.
          expect(lost.length).toBeGreaterThan(0);
          expect(lost.length).toBeLessThanOrEqual(500);
          for (const msg of lost) expect(msg).toMatch(/vanished from Redis/);
          expect(masterLog.join('')).toMatch(/unsettled jobs vanished from Redis/);
        }
        w.kill('SIGTERM');
        expect(await exited(w, 20_000)).toBe(0);
        const local = suite.localSummary(w);
        // Durable: every task ran exactly once. Not durable: some that ran had their outcome lost.
        if (durable) expect(local.total).toBe(N);
        else expect(local.total).toBeGreaterThanOrEqual(summary.ok);
        await expectClean(suite.redis(url), queue, [tr.runId]);
      } finally {
        if (server?.pid && server.exitCode === null) {
          server.kill('SIGKILL');
          await exited(server, 5000);
        }
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it('retries per `retries`: a task whose process dies runs again, then settles crashed with attempts 2', { timeout: 60_000 }, async () => {
    const queue = newQueue();
    const w = await startWorker(queue);
    const metas: Meta[] = [];
    const m = new MPMS({ worker: WORKER, retries: 1, transport: transport(queue), collector: (meta) => void metas.push(meta) });
    await m.start();
    await m.put('kill-process');
    await m.put('add', 1);
    const summary = await m.join();
    expect(summary).toMatchObject({ total: 2, ok: 1, crashed: 1 });
    expect(metas.find((x) => x.status === 'crashed')).toMatchObject({ attempts: 2 });
    w.kill('SIGTERM');
    expect(await exited(w, 20_000)).toBe(0);
  });

  it('SIGTERM drains a worker engine: jobs it held and had not finished go back to the queue and another engine runs them', { timeout: 60_000 }, async () => {
    const queue = newQueue();
    const a = await startWorker(queue, ['--drain-timeout', '100ms', '--prefetch', '8']);
    const N = 40;
    const log = outcomeLog();
    let firstFromA!: () => void;
    const aStarted = new Promise<void>((r) => (firstFromA = r));
    const tr = transport(queue);
    const m = new MPMS({
      worker: WORKER,
      transport: tr,
      collector: (meta) => {
        log.add(meta.taskId, meta.status);
        firstFromA();
      },
    });
    await m.start();
    for (let i = 0; i < N; i++) await m.put('sleep', 200);
    await aStarted;
    a.kill('SIGTERM');
    expect(await exited(a, 20_000)).toBe(0);
    // a cancelled what it still ran at the drain deadline, and handed those jobs back.
    expect(suite.localSummary(a).cancelled).toBeGreaterThan(0);
    const b = await startWorker(queue);
    const summary = await m.join();
    expect(summary).toMatchObject({ total: N, ok: N });
    expect(log.status.size).toBe(N);
    expect(log.duplicates).toBe(0);
    b.kill('SIGTERM');
    expect(await exited(b, 20_000)).toBe(0);
    await expectClean(suite.redis(), queue, [tr.runId]);
  });

  it('backpressure: at most maxOutstanding jobs in Redis, then taskQueueMaxsize in the master, then put() waits; gracefulShutdown() takes back the unstarted jobs', { timeout: 30_000 }, async () => {
    const queue = newQueue();
    const tr = transport(queue, { maxOutstanding: 10 });
    const m = new MPMS({ worker: WORKER, taskQueueMaxsize: 5, putTimeout: 300, transport: tr, collector: () => {} });
    await m.start();
    // No worker engine serves the queue: 10 jobs go to Redis, 5 wait in the master, the 16th put() times out.
    for (let i = 0; i < 15; i++) await m.put('echo', i);
    await expect(m.put('echo', 15)).rejects.toThrow(QueueFullError);
    const u = new URL(REDIS!);
    const q = new Queue(queue, { connection: { host: u.hostname, port: Number(u.port), maxRetriesPerRequest: null } });
    onTestFinished(() => q.close());
    // BullMQ's own API sees the jobs waiting. The adds are asynchronous; wait (bounded) until they landed.
    await until('10 jobs in Redis', async () => (await q.getJobCounts('waiting')).waiting === 10, 5000);
    expect(m.metrics()).toMatchObject({ queued: 5, running: 10 });
    const summary = await m.gracefulShutdown({ timeout: 500 });
    expect(summary).toMatchObject({ total: 15, cancelled: 15 });
    expect(summary.unstarted.map((x) => x.args[1]).sort((x, y) => Number(x) - Number(y))).toEqual([...Array(15).keys()]);
    expect((await q.getJobCounts('waiting')).waiting).toBe(0);
    await expectClean(suite.redis(), queue, [tr.runId]);
  });

  it('fault: master SIGKILLed while outcomes flow, past every batch size; a new master re-attaches: each adopted task settles once, join() returns, Redis is left clean', { timeout: 60_000 }, async () => {
    const queue = newQueue();
    const runId = `run${process.pid}`;
    const N = 1500;
    const first = spawn(process.execPath, [fixture('scale-out-master.mjs'), REDIS!, queue, runId, `${N}xecho:7`, '2000'], { stdio: ['ignore', 'pipe', 'inherit'] });
    suite.started.push(first);
    const deliveredByFirst = new Set<number>();
    let sent = false;
    let out = '';
    first.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const lines = out.split('\n');
      out = lines.pop()!;
      for (const l of lines) {
        if (l.startsWith('d ')) deliveredByFirst.add(Number(l.slice(2)));
        if (l === 'sent') sent = true;
      }
    });
    // Every job in Redis first (no engine serves yet), so each task is either delivered by the
    // first master or adopted by the second.
    await until('the first master sent its jobs', () => sent, 30_000);
    const w = await startWorker(queue, ['--prefetch', '200']);
    // Killed once it delivered a few hundred outcomes: more are finished in Redis, unread.
    await until('the first master delivered 300 outcomes', () => deliveredByFirst.size >= 300, 30_000);
    first.kill('SIGKILL');
    await exited(first, 5000);
    const killedAt = Date.now();

    const log = outcomeLog();
    let withoutMeta = 0;
    const tr = transport(queue, { runId });
    const m = new MPMS({
      worker: WORKER,
      meta: { job: 'nightly' },
      transport: tr,
      collector: (meta) => {
        log.add(meta.taskId, meta.status);
        if (meta.job !== 'nightly') withoutMeta++;
      },
    });
    await m.start();
    const adopted = [...tr.adopted];
    expect(m.totalCount).toBe(adopted.length);
    // New tasks get ids after the adopted ones.
    const extra = await m.put('add', 1);
    expect(extra).toBeGreaterThan(Math.max(...adopted));
    const summary = await m.join();
    const settleMs = Date.now() - killedAt;
    const overlap = adopted.filter((t) => deliveredByFirst.has(t));
    const neither = Array.from({ length: N }, (_, i) => i + 1).filter((t) => !deliveredByFirst.has(t) && !adopted.includes(t));
    console.log(`scale-out fault (master SIGKILL + re-attach): ${N} tasks; the first master delivered ${deliveredByFirst.size}; the second adopted ${adopted.length} (${overlap.length} of them delivered before, not yet acked; ${neither.length} puts never reached Redis) and settled them ${settleMs} ms after the kill; ${JSON.stringify(summary)}`);

    expect(summary).toMatchObject({ total: adopted.length + 1, ok: adopted.length + 1 });
    expect(log.duplicates).toBe(0);
    expect(withoutMeta).toBe(0);
    expect(log.ids()).toEqual([...adopted, extra].sort((a, b) => a - b));
    // At-least-once across the restart: only outcomes read and not yet acked (one drain batch) come twice.
    expect(overlap.length).toBeLessThanOrEqual(500);
    // Every task the first master accepted was delivered by one of the two — none lost in Redis.
    expect(neither).toEqual([]);
    expect(adopted.length).toBeGreaterThan(500);
    w.kill('SIGTERM');
    expect(await exited(w, 20_000)).toBe(0);
    await expectClean(suite.redis(), queue, [runId]);
  });
});

it('keeps Redis clients out of the local path: only lib/scale-out imports bullmq or ioredis', () => {
  const lib = fileURLToPath(new URL('../lib/', import.meta.url));
  const offenders: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (!p.includes(`${path.sep}scale-out${path.sep}`) && /from '(bullmq|ioredis)'|import\('(bullmq|ioredis)'\)/.test(fs.readFileSync(p, 'utf8'))) offenders.push(p);
    }
  };
  walk(lib);
  expect(offenders).toEqual([]);
});

it('mpms worker: bad usage exits 2 with a hint; a Redis that refuses the connection fails start-up at once with that cause (exit 1), leaving no process', { timeout: 30_000 }, async () => {
  const run = (args: string[]) =>
    new Promise<{ code: number | null; err: string; pid: number; kids: number[] }>((resolve) => {
      // No Redis from the environment (CI sets MPMS_REDIS_URL): the flags alone decide.
      const p = spawn(process.execPath, [CLI, 'worker', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, MPMS_REDIS_URL: '' } });
      let err = '';
      const kids = new Set<number>();
      // The local engine starts before Redis is tried: remember its children to check they are gone.
      const look = setInterval(() => engineChildren(p.pid!).forEach((k) => kids.add(k)), 100);
      p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      p.once('exit', (code) => {
        clearInterval(look);
        resolve({ code, err, pid: p.pid!, kids: [...kids] });
      });
    });
  const usage = await run([WORKER, '--queue', 'q']);
  expect(usage.code).toBe(2);
  expect(usage.err).toMatch(/no Redis given: --redis URL/);
  const badDuration = await run([WORKER, '--redis', 'redis://127.0.0.1:1', '--queue', 'q', '--lock-duration', 'soon']);
  expect(badDuration.code).toBe(2);
  expect(badDuration.err).toMatch(/--lock-duration expects a duration/);
  const port = await freePort();
  const down = await run([WORKER, '--redis', `redis://127.0.0.1:${port}`, '--queue', 'q', '-p', '1', '-t', '1', '--lock-duration', '3s']);
  expect(down.code).toBe(1);
  expect(down.err).toMatch(/connection refused/);
  expect(down.kids.length).toBeGreaterThan(0);
  expect(await waitGone(down.kids, 3000)).toEqual([]);
});
