/**
 * The worker side of scale-out (`mpms worker`): a local engine — processes × threads with all
 * its supervision — fed by a BullMQ Worker. Each job becomes one local task; its outcome goes
 * back to BullMQ: `ok` completes the job with the serialized result, every other status fails
 * it with a serialized error that carries the status, so the master rebuilds it exactly.
 *
 * The BullMQ Worker's concurrency bounds the prefetch: jobs held here and not yet running are
 * few (a few per slot), because a machine that dies takes them down with it and
 * they count as `crashed` at the master (the start logs that tell started from unstarted
 * tasks on one machine die with it).
 */
import os from 'node:os';
import { pino } from 'pino';
import { UnrecoverableError, WaitingError, Worker, type Job } from 'bullmq';
import { MPMS, type FinalSummary } from '../master/engine.js';
import type { MPMSOptions } from '../options.js';
import { Code, STATUS_BY_CODE, toErrorWire } from '../protocol.js';
import type { Meta, Metrics } from '../types.js';
import { CONNECT_TIMEOUT_MS, throttledWarn, toConnection, withinMs, type RedisConnection } from './connection.js';
import { decodeArgs, encodeOutcome, type JobData } from './wire.js';

/** Settings of `serveQueue()`: the engine's own, plus where to take jobs from. */
export interface WorkerEngineOptions extends Omit<MPMSOptions, 'collector' | 'transport' | 'handleSignals'> {
  /** Redis: a `redis://host:port` URL or BullMQ/ioredis connection options. */
  connection: RedisConnection;
  /** BullMQ queue name, as given to `bullmqTransport({ queue })`. */
  queue: string;
  /** Jobs taken from Redis at once (BullMQ Worker concurrency). Default `processes × threads × concurrency × 4 + 8`. */
  prefetch?: number;
  /** ms a job's lock lasts without renewal; a machine silent this long loses its jobs (`crashed` at the master). Default 30000. */
  lockDuration?: number;
  /** ms between BullMQ's checks for jobs whose lock expired. Default 30000. */
  stalledInterval?: number;
  /** ms `stop()` lets held jobs finish before it hands the rest back to the queue. Default 30000. */
  drainTimeout?: number;
  /** BullMQ key prefix. Default BullMQ's (`bull`). */
  prefix?: string;
}

/** A running worker engine. */
export interface WorkerEngine {
  /** `host:pid`, reported to the master as `meta.worker`. */
  readonly id: string;
  /** Stops taking jobs, finishes held ones within `drainTimeout`, hands the rest back, stops the engine. Idempotent. */
  stop(): Promise<FinalSummary>;
  /** Resolves when the worker engine has stopped (by `stop()`, or because its engine gave up). */
  readonly done: Promise<FinalSummary>;
  metrics(): Metrics;
}

const CODE_BY_STATUS = Object.fromEntries(STATUS_BY_CODE.map((s, i) => [s, i])) as Record<Meta['status'], number>;

/**
 * Starts a local engine and serves the queue with it. Resolves once the engine's processes and
 * threads are ready and the BullMQ Worker is connected.
 */
export async function serveQueue(options: WorkerEngineOptions): Promise<WorkerEngine> {
  const { connection, queue, prefetch, lockDuration, stalledInterval, drainTimeout, prefix, ...engineOptions } = options;
  const id = `${os.hostname()}:${process.pid}`;
  // Outcomes by local task id. An outcome that lands before its job awaits it waits in `early`.
  const waiting = new Map<number, (r: { meta: Meta; result: unknown }) => void>();
  const early = new Map<number, { meta: Meta; result: unknown }>();
  const logger = engineOptions.logger ?? pino({ level: 'warn' }, pino.destination({ dest: 2, sync: true }));
  const engine = new MPMS({
    ...engineOptions,
    logger,
    collector: (meta, result) => {
      const w = waiting.get(meta.taskId);
      if (w) {
        waiting.delete(meta.taskId);
        w({ meta, result });
      } else early.set(meta.taskId, { meta, result });
    },
  });
  await engine.start();
  const processes = engineOptions.processes ?? os.availableParallelism();
  const slots = processes * (engineOptions.threads ?? 2) * (engineOptions.concurrency ?? 1);
  /** Set once this engine stops: a job whose local task was cancelled by that goes back to the queue. */
  let stopping = false;

  const handBack = async (job: Job<JobData>, token: string | undefined): Promise<never> => {
    await job.moveToWait(token);
    throw new WaitingError();
  };

  const worker = new Worker<JobData, string>(
    queue,
    async (job, token) => {
      if (stopping) return handBack(job, token);
      let taskId: number;
      try {
        taskId = await engine.submit(decodeArgs(job.data), job.data.t > 0 ? { timeout: job.data.t } : {});
      } catch (err) {
        // The engine no longer takes tasks (it is stopping or gave up): another machine may.
        logger.warn({ err, jobId: job.id }, 'the local engine refused a job; handing it back to the queue');
        return handBack(job, token);
      }
      const { meta, result } = early.get(taskId) ?? (await new Promise<{ meta: Meta; result: unknown }>((r) => waiting.set(taskId, r)));
      early.delete(taskId);
      if (meta.status === 'cancelled' && stopping) return handBack(job, token);
      const code = CODE_BY_STATUS[meta.status];
      const encoded = encodeOutcome({
        code,
        value: code === Code.Ok ? result : toErrorWire(result),
        startedAt: meta.startedAt ?? 0,
        endedAt: meta.endedAt ?? Date.now(),
        worker: id,
        processIndex: meta.processIndex,
        threadIndex: meta.threadIndex,
        pid: meta.pid,
      });
      if (code === Code.Ok) return encoded;
      // Unrecoverable: retries are the master's decision (`retries`), never BullMQ's.
      throw new UnrecoverableError(encoded);
    },
    {
      connection: toConnection(connection),
      ...(prefix ? { prefix } : {}),
      // Recorded on each job it takes (processedBy): which machine held a job is then readable
      // in Redis, above all after that machine died.
      name: id,
      // Enough held jobs to hide the Redis round trip behind running ones (measured at P1×T2:
      // 4 held → 330 no-op jobs/s, 16 → 1,140/s, 64 → 1,600/s), few enough that a machine that
      // dies loses little: every job it held settles `crashed` (or is retried).
      concurrency: prefetch ?? slots * 4 + 8,
      lockDuration: lockDuration ?? 30_000,
      stalledInterval: stalledInterval ?? 30_000,
      // A job whose worker engine went silent fails at once ("stalled"), and the master
      // decides about a retry; BullMQ re-running it silently would hide the crash.
      maxStalledCount: 0,
    },
  );
  worker.on('error', throttledWarn((obj, msg) => logger.warn(obj, msg), 'bullmq worker'));
  try {
    await withinMs(worker.waitUntilReady(), CONNECT_TIMEOUT_MS, `connecting to queue ${queue}`);
  } catch (err) {
    await worker.close(true).catch(() => undefined);
    await engine.terminate();
    throw err;
  }

  let resolveDone!: (s: FinalSummary) => void;
  const done = new Promise<FinalSummary>((r) => (resolveDone = r));
  let stopRun: Promise<FinalSummary> | undefined;
  const stop = (): Promise<FinalSummary> => {
    stopRun ??= (async () => {
      // close() stops fetching and waits for the jobs held; those still held at the deadline
      // are cancelled locally and handed back to the queue for other machines.
      const closed = worker.close();
      let timer: NodeJS.Timeout | undefined;
      const late = await Promise.race([closed.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), drainTimeout ?? 30_000)))]);
      clearTimeout(timer);
      if (late) {
        stopping = true;
        logger.warn(`worker engine ${id}: jobs still held after the drain timeout; handing them back to the queue`);
        void engine.gracefulShutdown({ timeout: 0 });
        await Promise.race([closed, new Promise((r) => setTimeout(r, 10_000).unref())]);
      }
      stopping = true;
      await worker.close(true).catch(() => undefined);
      const summary = await engine.join();
      resolveDone(summary);
      return summary;
    })();
    return stopRun;
  };
  engine.on('error', (err) => {
    // The engine gave up (a crash loop): jobs it can no longer run go back to the queue.
    stopping = true;
    logger.error({ err }, `worker engine ${id}: the local engine gave up; stopping`);
    void stop();
  });

  return { id, stop, done, metrics: () => engine.metrics() };
}
