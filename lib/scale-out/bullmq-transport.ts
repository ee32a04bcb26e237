/**
 * The master's side of scale-out: tasks become BullMQ jobs; outcomes come back from Redis.
 *
 * How an outcome reaches the master exactly once:
 * - A job's final state in Redis (completed with a returnvalue, or failed with a failedReason)
 *   is written by BullMQ's own scripts under the job's lock, so each job has at most one.
 * - The master treats the completed and failed sets as its **outbox**: it settles a job from
 *   there, and only then removes the job. QueueEvents is a doorbell that carries the same
 *   payload, so most outcomes settle without a read; a periodic sweep of the outbox catches
 *   what the event stream missed (trimmed, disconnected, a master that restarted).
 * - Both paths go through `open`, the set of job ids sent and not yet settled: the first
 *   report removes the id, any later one is dropped. The engine's ledger checks again.
 */
import crypto from 'node:crypto';
import { Queue, QueueEvents, type Job } from 'bullmq';
import type { AdoptedTask, OutgoingTask, Transport, TransportHost } from '../transport/types.js';
import { CONNECT_TIMEOUT_MS, throttledWarn, toConnection, withinMs, type RedisConnection } from './connection.js';
import { decodeArgs, decodeOutcome, encodeArgs, JOB_NAME, jobId, lostOutcome, parseJobId, type JobData } from './wire.js';

/** Settings of `bullmqTransport()`. */
export interface BullmqTransportOptions {
  /** Redis: a `redis://host:port` URL or BullMQ/ioredis connection options. */
  connection: RedisConnection;
  /** BullMQ queue name; `mpms worker --queue` must name the same. One master per queue at a time. */
  queue: string;
  /**
   * Names this run's jobs (`<runId>.<taskId>.<attempt>`). Give the id of an earlier run to
   * re-attach to it after a master restart: its jobs still in Redis are adopted (their
   * outcomes delivered, unfinished ones awaited). Default: a new random id.
   */
  runId?: string;
  /** Jobs in Redis this master may have unsettled at once (backpressure: `put()` waits beyond it). Default 1000. */
  maxOutstanding?: number;
  /** BullMQ key prefix. Default BullMQ's (`bull`). */
  prefix?: string;
  /** ms between sweeps of the outbox for outcomes the event stream did not bring. Default 1000. */
  sweepInterval?: number;
}

/** Jobs read or written per Redis round trip. */
const BATCH = 500;

/**
 * A transport that sends tasks through a BullMQ queue on Redis, served by `mpms worker`
 * engines on any number of machines. See docs/scale-out.md.
 * @example new MPMS({ worker: './w.mjs', transport: bullmqTransport({ connection: 'redis://127.0.0.1:6379', queue: 'jobs' }) })
 */
export function bullmqTransport(options: BullmqTransportOptions): Transport {
  return new BullmqTransport(options);
}

class BullmqTransport implements Transport {
  readonly kind = 'bullmq';
  readonly runId: string;
  private readonly reattach: boolean;
  private readonly max: number;
  private readonly sweepMs: number;
  private queue: Queue | undefined;
  private events: QueueEvents | undefined;
  private host: TransportHost | undefined;
  /** Job ids sent (or adopted) and not yet settled; `inRedis` once Redis confirmed the add. */
  private readonly open = new Map<string, { taskId: number; attempt: number; inRedis: boolean }>();
  private pendingAdds: OutgoingTask[] = [];
  private adding = false;
  private removals: string[] = [];
  private removing: Promise<void> | undefined;
  private sweeping = false;
  private sweepAgain = false;
  private sweepTimer: NodeJS.Timeout | undefined;
  private readonly vanishCheckMs: number;
  private lastVanishCheck = Date.now();
  private accepting = false;
  /** Set when start() returns: from then on every open job of the run is known. */
  private ready = false;
  private stopped = false;
  private drained: (() => void) | undefined;

  constructor(private readonly options: BullmqTransportOptions) {
    const problems: string[] = [];
    if (!options || typeof options !== 'object') throw new TypeError('bullmqTransport(options): options must be an object with `connection` and `queue`');
    if (typeof options.queue !== 'string' || !options.queue || options.queue.includes(':')) problems.push('`queue` must be a non-empty string without ":"');
    if (options.connection === undefined || options.connection === null) problems.push('`connection` is required (a redis:// URL or connection options)');
    if (options.runId !== undefined && !/^[A-Za-z0-9_-]+$/.test(options.runId)) problems.push('`runId` must be letters, digits, "_" or "-"');
    if (options.maxOutstanding !== undefined && !(Number.isInteger(options.maxOutstanding) && options.maxOutstanding >= 1)) problems.push('`maxOutstanding` must be an integer >= 1');
    if (options.sweepInterval !== undefined && !(typeof options.sweepInterval === 'number' && options.sweepInterval > 0)) problems.push('`sweepInterval` must be a number > 0');
    if (problems.length) throw new TypeError(`bullmqTransport: ${problems.join('; ')}`);
    this.reattach = options.runId !== undefined;
    this.runId = options.runId ?? `r${Date.now().toString(36)}${crypto.randomBytes(4).toString('hex')}`;
    this.max = options.maxOutstanding ?? 1000;
    this.sweepMs = options.sweepInterval ?? 1000;
    this.vanishCheckMs = Math.max(5 * this.sweepMs, 1000);
  }

  get credit(): number {
    return this.accepting ? Math.max(0, this.max - this.open.size) : 0;
  }

  get outstanding(): number {
    return this.open.size;
  }

  async start(host: TransportHost): Promise<AdoptedTask[]> {
    this.host = host;
    const connection = toConnection(this.options.connection);
    const common = { connection, ...(this.options.prefix ? { prefix: this.options.prefix } : {}) };
    // Without listeners an 'error' (Redis restarting, a network blip) would crash the master;
    // ioredis reconnects by itself and the sweep catches up afterwards.
    const warn = (obj: object, msg: string) => host.logger.warn(obj, msg);
    this.queue = new Queue(this.options.queue, common);
    this.queue.on('error', throttledWarn(warn, 'bullmq queue'));
    try {
      await withinMs(this.queue.waitUntilReady(), CONNECT_TIMEOUT_MS, `connecting to queue ${this.options.queue}`);
      // Only once Redis answered: a QueueEvents that never connected cannot be closed (its
      // blocking client reconnects for ever and keeps the process alive).
      this.events = new QueueEvents(this.options.queue, common);
      this.events.on('error', throttledWarn(warn, 'bullmq queue events'));
      this.events.on('completed', ({ jobId: id, returnvalue }) => this.onFinal(id, true, returnvalue, undefined));
      this.events.on('failed', ({ jobId: id, failedReason }) => this.onFinal(id, false, failedReason, undefined));
      await withinMs(this.events.waitUntilReady(), CONNECT_TIMEOUT_MS, `connecting to the events of queue ${this.options.queue}`);
      const adopted = this.reattach ? await withinMs(this.adopt(), CONNECT_TIMEOUT_MS * 3, `reading run ${this.runId}`) : [];
      this.accepting = true;
      this.ready = true;
      // The engine adopts the tasks right after start() resolves; the first sweep then delivers
      // what finished while no master was listening.
      this.sweepTimer = setInterval(() => void this.sweep(), this.sweepMs);
      this.sweepTimer.unref();
      setImmediate(() => void this.sweep());
      return adopted;
    } catch (err) {
      await this.disconnect();
      throw err;
    }
  }

  /** Jobs of this run left by an earlier master: the latest attempt of each task is adopted. */
  private async adopt(): Promise<AdoptedTask[]> {
    const jobs = (await this.queue!.getJobs(['waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed'], 0, -1, true)) as Job<JobData>[];
    const latest = new Map<number, { attempt: number; job: Job<JobData> }>();
    const superseded: string[] = [];
    for (const job of jobs) {
      const k = parseJobId(this.runId, job.id);
      if (!k) continue;
      const prev = latest.get(k.taskId);
      if (prev && prev.attempt >= k.attempt) superseded.push(job.id!);
      else {
        if (prev) superseded.push(prev.job.id!);
        latest.set(k.taskId, { attempt: k.attempt, job });
      }
    }
    // An earlier attempt's outcome was already acted on (the retry exists): only clean it up.
    this.removals.push(...superseded);
    void this.flushRemovals();
    const out: AdoptedTask[] = [];
    for (const [taskId, { attempt, job }] of latest) {
      this.open.set(job.id!, { taskId, attempt, inRedis: true });
      out.push({ taskId, attempt, args: decodeArgs(job.data), timeout: job.data.t });
    }
    this.host!.logger.info({ runId: this.runId, adopted: out.length }, 're-attached to a run: adopted its jobs still in Redis');
    return out;
  }

  send(tasks: OutgoingTask[]): void {
    for (const t of tasks) {
      this.open.set(jobId(this.runId, t.taskId, t.attempt), { taskId: t.taskId, attempt: t.attempt, inRedis: false });
      this.pendingAdds.push(t);
    }
    void this.flushAdds();
  }

  /** Adds pending jobs in batches, one batch in flight; a failed batch is retried (re-adding an id is a no-op). */
  private async flushAdds(): Promise<void> {
    if (this.adding) return;
    this.adding = true;
    try {
      while (this.pendingAdds.length > 0 && !this.stopped) {
        const batch = this.pendingAdds.splice(0, BATCH);
        try {
          await this.queue!.addBulk(
            batch.map((t) => ({
              name: JOB_NAME,
              data: encodeArgs(t.args, t.timeout),
              // Kept after they finish: the completed/failed sets are the master's outbox, and it
              // removes each job once its outcome is settled.
              opts: { jobId: jobId(this.runId, t.taskId, t.attempt), attempts: 1, removeOnComplete: false, removeOnFail: false },
            })),
          );
          for (const t of batch) {
            const entry = this.open.get(jobId(this.runId, t.taskId, t.attempt));
            if (entry) entry.inRedis = true;
          }
        } catch (err) {
          this.host!.logger.warn({ err, jobs: batch.length }, 'bullmq: adding jobs failed; retrying in 1 s');
          this.pendingAdds.unshift(...batch);
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    } finally {
      this.adding = false;
    }
  }

  private onFinal(id: string, completed: boolean, payload: unknown, finishedOn: number | undefined): void {
    const k = parseJobId(this.runId, id);
    // Before start() has handed the adopted tasks to the engine, an event may name a job that
    // is not open *yet*: leave it in the outbox, the first sweep delivers it.
    if (!k || !this.ready) return;
    if (this.open.delete(id)) {
      this.host!.settle(decodeOutcome(k.taskId, k.attempt, completed, payload, finishedOn));
      this.host!.wake();
      if (this.open.size === 0) this.drained?.();
    }
    // Settled, now or by the other path earlier: the job has served as the outbox and can go.
    this.removals.push(id);
    void this.flushRemovals();
  }

  private flushRemovals(): Promise<void> {
    this.removing ??= (async () => {
      try {
        while (this.removals.length > 0 && this.queue) {
          const ids = this.removals.splice(0, BATCH);
          await Promise.all(ids.map((id) => this.queue!.remove(id).catch((err: unknown) => this.host!.logger.debug({ err, jobId: id }, 'bullmq: could not remove a settled job'))));
        }
      } finally {
        this.removing = undefined;
      }
    })();
    return this.removing;
  }

  /** Reads the outbox (completed and failed sets) for this run's outcomes that no event brought. */
  private async sweep(): Promise<void> {
    if (this.sweeping) {
      this.sweepAgain = true;
      return;
    }
    if (!this.queue || this.open.size === 0) return;
    this.sweeping = true;
    try {
      do {
        this.sweepAgain = false;
        let full = false;
        for (const completed of [true, false]) {
          const jobs = await this.queue.getJobs(completed ? ['completed'] : ['failed'], 0, BATCH - 1, true);
          let mine = 0;
          for (const job of jobs) {
            if (!parseJobId(this.runId, job.id)) continue;
            mine++;
            this.onFinal(job.id!, completed, completed ? job.returnvalue : job.failedReason, job.finishedOn);
          }
          // More of ours may wait beyond this page; pages of other runs' jobs alone stop the loop.
          if (jobs.length === BATCH && mine > 0) full = true;
        }
        if (full) {
          await this.flushRemovals();
          this.sweepAgain = true;
        }
      } while (this.sweepAgain && !this.stopped);
      if (this.accepting && Date.now() - this.lastVanishCheck >= this.vanishCheckMs) await this.settleVanished();
    } catch (err) {
      this.host!.logger.warn({ err }, 'bullmq: sweeping the outbox failed; the next sweep retries');
    } finally {
      this.sweeping = false;
    }
  }

  /**
   * Settles `crashed` the open jobs that Redis no longer has. Only a Redis that lost data
   * (restarted without persistence, failed over to a replica that lagged) or a hand-made
   * removal does that; without this check their tasks would wait for ever and `join()` with
   * them. A job is removed by this master only after it left `open`, so one still open and
   * missing after Redis confirmed its add was lost. Skipped while stopping: `takeBackWaiting`
   * removes jobs itself.
   */
  private async settleVanished(): Promise<void> {
    this.lastVanishCheck = Date.now();
    const client = await this.queue!.getBackend().client;
    const ids = [...this.open].filter(([, e]) => e.inRedis).map(([id]) => id);
    const lost: string[] = [];
    for (let i = 0; i < ids.length && this.accepting; i += BATCH) {
      const batch = ids.slice(i, i + BATCH);
      // Sent back to back on one connection: one round trip for the batch.
      const stamps = await Promise.all(batch.map((id) => client.hget(this.queue!.toKey(id), 'timestamp')));
      batch.forEach((id, j) => {
        const entry = this.open.get(id);
        if (stamps[j] !== null || !entry || !this.accepting) return;
        this.open.delete(id);
        lost.push(id);
        this.host!.settle(lostOutcome(entry.taskId, entry.attempt, 'was lost: its job vanished from Redis (Redis restarted without its data, or the job was removed by hand)'));
      });
    }
    if (lost.length === 0) return;
    this.host!.logger.warn({ jobs: lost.length, first: lost[0] }, 'bullmq: unsettled jobs vanished from Redis (did Redis lose its data?); their tasks settle crashed');
    this.host!.wake();
    if (this.open.size === 0) this.drained?.();
  }

  async stop(graceMs: number): Promise<void> {
    this.accepting = false;
    const host = this.host;
    if (!host || !this.queue) return this.disconnect();
    // Not yet in Redis: never started.
    for (const t of this.pendingAdds.splice(0)) {
      if (this.open.delete(jobId(this.runId, t.taskId, t.attempt))) host.returned(t.taskId, t.attempt);
    }
    if (this.open.size > 0) {
      try {
        await this.takeBackWaiting(host);
      } catch (err) {
        host.logger.warn({ err }, 'bullmq: could not take back waiting jobs; they settle when the grace ends');
      }
    }
    if (this.open.size > 0 && graceMs > 0) {
      void this.sweep();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.drained = undefined;
    }
    this.stopped = true;
    await this.flushRemovals().catch(() => undefined);
    await this.disconnect();
  }

  /**
   * Removes this run's jobs that no worker has taken yet. `drain` empties the wait lists
   * atomically, so a job is either removed (never started: returned) or already active (it
   * runs and reports); a job that is gone afterwards was removed by it.
   */
  private async takeBackWaiting(host: TransportHost): Promise<void> {
    const waiting = await this.queue!.getJobs(['waiting', 'delayed', 'prioritized'], 0, -1, true);
    const mine = waiting.filter((j) => this.open.has(j.id!));
    if (mine.length === 0) return;
    await this.queue!.drain(true);
    for (const job of mine) {
      const entry = this.open.get(job.id!);
      if (!entry) continue;
      if ((await this.queue!.getJob(job.id!)) === undefined) {
        this.open.delete(job.id!);
        host.returned(entry.taskId, entry.attempt);
      }
    }
  }

  private async disconnect(): Promise<void> {
    this.stopped = true;
    clearInterval(this.sweepTimer);
    const clients = [this.events, this.queue].filter((c): c is QueueEvents | Queue => c !== undefined);
    try {
      await withinMs(Promise.all(clients.map((c) => c.close().catch(() => undefined))), 5000, 'closing the BullMQ connections');
    } catch {
      // A Redis that is down keeps close() waiting; drop the sockets so nothing holds the process.
      await Promise.all(clients.map((c) => c.disconnect().catch(() => undefined)));
    }
  }
}
