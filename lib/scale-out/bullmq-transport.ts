/**
 * The master's side of scale-out: tasks become BullMQ jobs; outcomes come back from Redis.
 *
 * How an outcome reaches the master exactly once:
 * - A worker engine publishes a job's outcome to the run's outbox (`run:<runId>:out`) in the
 *   same atomic script that releases its hold on the job, and only while it holds it; a reaper
 *   publishes a "lost" outcome for a job a dead engine had started, under the same rule. So a
 *   job gets at most one entry.
 * - The master drains its run's outbox in batches: it settles each entry, then acks it with its
 *   next read, which deletes the job. A master that dies between the two leaves the entry for a
 *   master that re-attaches (at-least-once across a restart).
 * - Every report goes through `open`, the set of job ids sent and not yet settled: the first
 *   report removes the id, any later one is dropped. The engine's ledger checks again.
 * - Nothing here touches another run's jobs: adds, drains, take-backs and reaps are keyed or
 *   filtered by this run's id.
 */
import crypto from 'node:crypto';
import type { Redis } from 'ioredis';
import { ConfigError } from '../errors.js';
import { resolveSettings } from '../settings.js';
import type { AdoptedTask, OutgoingTask, Transport, TransportHost } from '../transport/types.js';
import { closeRedis, CONNECT_TIMEOUT_MS, openRedis, withinMs, type RedisConnection } from './connection.js';
import { BATCH, bellKey, CLOCK_GAP_MS, jobsKey, outKey, queueKeys, withScripts, type QueueKeys, type ScriptedRedis } from './scripts.js';
import { TRANSPORT_SPECS } from './settings.js';
import { decodeData, decodeEntry, encodeArgs, jobId, jobName, lostOutcome, moduleFingerprint, parseJobId, splitEntry } from './wire.js';

/** Settings of `bullmqTransport()`. */
export interface BullmqTransportOptions {
  /** Redis: a `redis://host:port` URL, ioredis options, or an ioredis client (it is duplicated). */
  connection: RedisConnection;
  /** BullMQ queue name; `mpms worker --queue` must name the same. Several masters may share a queue. */
  queue: string;
  /**
   * Names this run's jobs (`<runId>.<taskId>.<attempt>`). Give the id of an earlier run to
   * re-attach to it after a master restart: its jobs still in Redis are adopted (their
   * outcomes delivered, unfinished ones awaited; `adopted` lists them). Default: a new random id.
   */
  runId?: string;
  /** Jobs in Redis this master may have unsettled at once (backpressure: `put()` waits beyond it). Default 1000. */
  maxOutstanding?: number;
  /** BullMQ key prefix. Default BullMQ's (`bull`). */
  prefix?: string;
  /** ms between the master's checks for lost jobs (Redis lost data; a worker engine went silent). Default 1000. */
  sweepInterval?: number;
  /**
   * What worker engines must serve to run this master's jobs (with the wire version and the
   * export). Default: a hash of the worker module's file. `mpms worker --fingerprint` must match.
   */
  fingerprint?: string;
}

/** `BullmqTransportOptions` after their defaults (TRANSPORT_SPECS). */
type ResolvedTransportOptions = Required<Omit<BullmqTransportOptions, 'runId' | 'fingerprint'>> & Pick<BullmqTransportOptions, 'runId' | 'fingerprint'>;

/** The transport `bullmqTransport()` returns: a `Transport` plus what a user may want to read. */
export interface BullmqTransport extends Transport {
  /** This run's id (given, or the random one): log it to re-attach after a master restart. */
  readonly runId: string;
  /**
   * After `start()`: the ids of the tasks adopted from an earlier master of this run (sorted).
   * A task that master accepted and that is neither here nor delivered by it never reached
   * Redis: put it again.
   */
  readonly adopted: readonly number[];
}

/**
 * A transport that sends tasks through a BullMQ queue on Redis, served by `mpms worker`
 * engines on any number of machines. See docs/scale-out.md.
 * @example new MPMS({ worker: './w.mjs', transport: bullmqTransport({ connection: 'redis://127.0.0.1:6379', queue: 'jobs' }) })
 */
export function bullmqTransport(options: BullmqTransportOptions): BullmqTransport {
  return new RedisTransport(options);
}

interface OpenJob {
  taskId: number;
  attempt: number;
  /** Redis confirmed the add (or the job was adopted from Redis). */
  inRedis: boolean;
}

class RedisTransport implements BullmqTransport {
  readonly kind = 'bullmq';
  readonly runId: string;
  adopted: number[] = [];
  private readonly reattach: boolean;
  private readonly max: number;
  private readonly checkMs: number;
  private readonly keys: QueueKeys;
  private cmd: ScriptedRedis | undefined;
  /** For the blocking wait on the run's bell only. */
  private blk: Redis | undefined;
  private host: TransportHost | undefined;
  private name = '';
  private readonly open = new Map<string, OpenJob>();
  private pendingAdds: OutgoingTask[] = [];
  private adding = false;
  private addScheduled = false;
  /** Ids of outbox entries settled here and not yet acked to Redis (the next drain acks them). */
  private acks: string[] = [];
  private draining: Promise<void> | undefined;
  private checkTimer: NodeJS.Timeout | undefined;
  private checking = false;
  private lastVanishCheck = Date.now();
  private accepting = false;
  private stopped = false;
  private drained: (() => void) | undefined;

  constructor(private readonly options: BullmqTransportOptions) {
    if (!options || typeof options !== 'object') throw new ConfigError(['bullmqTransport(options): options must be an object with `connection` and `queue`']);
    // Not strict: unknown keys were always let through here (the engine's own options are strict).
    const o = resolveSettings<ResolvedTransportOptions>(TRANSPORT_SPECS, options as unknown as Record<string, unknown>, false);
    this.reattach = options.runId !== undefined;
    this.runId = o.runId ?? `r${Date.now().toString(36)}${crypto.randomBytes(4).toString('hex')}`;
    this.max = o.maxOutstanding;
    this.checkMs = o.sweepInterval;
    this.keys = queueKeys(o.prefix, o.queue);
  }

  get credit(): number {
    return this.accepting ? Math.max(0, this.max - this.open.size) : 0;
  }

  get outstanding(): number {
    return this.open.size;
  }

  async start(host: TransportHost): Promise<AdoptedTask[]> {
    this.host = host;
    const fingerprint = this.options.fingerprint ?? moduleFingerprint(host.module);
    this.name = jobName({ fingerprint, exportName: host.exportName });
    const warn = (obj: object, msg: string) => host.logger.warn(obj, msg);
    const what = `Redis for queue ${this.options.queue}`;
    try {
      this.cmd = withScripts(await openRedis(this.options.connection, { name: `mpms:master:${this.runId}`, what, warn }));
      this.blk = await openRedis(this.options.connection, { name: `mpms:master:${this.runId}:bell`, what, warn });
      await this.checkFleet();
      const adopted = this.reattach ? await withinMs(this.adopt(), CONNECT_TIMEOUT_MS * 3, `reading run ${this.runId}`) : [];
      this.accepting = true;
      this.checkTimer = setInterval(() => void this.check(), this.checkMs);
      this.checkTimer.unref();
      // The engine adopts the tasks right after start() resolves; draining begins on the next
      // turn, so an outcome never names a task the engine does not know yet.
      setImmediate(() => (this.draining = this.drainLoop()));
      return adopted;
    } catch (err) {
      await this.disconnect();
      throw err;
    }
  }

  /**
   * Says so at once when worker engines serve the queue and none serves this master's module:
   * each would refuse every job (an `error` per task), which is better learnt before the run.
   */
  private async checkFleet(): Promise<void> {
    const infos = Object.values(await this.cmd!.hgetall(this.keys.workers)).map((v) => {
      try {
        return JSON.parse(v) as { serves?: string; host?: string; pid?: number };
      } catch {
        return {};
      }
    });
    if (infos.length === 0 || infos.some((i) => i.serves === this.name)) return;
    this.host!.logger.warn(
      { queue: this.options.queue, sends: this.name, workersServe: [...new Set(infos.map((i) => i.serves))] },
      'bullmq: no worker engine registered on this queue serves this master\'s worker module (fingerprint, export or mpms version differ): they will refuse its jobs',
    );
  }

  /** The run's jobs left by an earlier master: the latest attempt of each task is adopted. */
  private async adopt(): Promise<AdoptedTask[]> {
    const cmd = this.cmd!;
    const ids: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await cmd.sscan(jobsKey(this.keys, this.runId), cursor, 'COUNT', 1000);
      cursor = next;
      ids.push(...batch);
    } while (cursor !== '0');
    const latest = new Map<number, { attempt: number; id: string; data: string }>();
    const gone: string[] = [];
    for (let i = 0; i < ids.length; i += BATCH) {
      const batch = ids.slice(i, i + BATCH);
      const datas = await Promise.all(batch.map((id) => cmd.hget(this.keys.base + id, 'data')));
      batch.forEach((id, j) => {
        const k = parseJobId(this.runId, id);
        const data = datas[j];
        if (!k || data === null || data === undefined) return void gone.push(id);
        const prev = latest.get(k.taskId);
        // An earlier attempt is still open only until its entry is acked: its outcome was acted on.
        this.open.set(id, { taskId: k.taskId, attempt: k.attempt, inRedis: true });
        if (!prev || prev.attempt < k.attempt) latest.set(k.taskId, { attempt: k.attempt, id, data });
      });
    }
    // Indexed but never added (the master died between the two) or lost by Redis: not adopted.
    if (gone.length) await cmd.srem(jobsKey(this.keys, this.runId), ...gone);
    const out: AdoptedTask[] = [];
    for (const [taskId, { attempt, data }] of latest) {
      const { args, timeout } = decodeData(data);
      out.push({ taskId, attempt, args, timeout });
    }
    out.sort((a, b) => a.taskId - b.taskId);
    this.adopted = out.map((t) => t.taskId);
    this.host!.logger.info({ runId: this.runId, adopted: out.length, notInRedis: gone.length }, 're-attached to a run: adopted its jobs still in Redis');
    return out;
  }

  send(tasks: OutgoingTask[]): void {
    for (const t of tasks) {
      this.open.set(jobId(this.runId, t.taskId, t.attempt), { taskId: t.taskId, attempt: t.attempt, inRedis: false });
      this.pendingAdds.push(t);
    }
    // On the next turn: the tasks sent as one drained batch settles (one send each) go in one add.
    if (!this.addScheduled) {
      this.addScheduled = true;
      setImmediate(() => {
        this.addScheduled = false;
        void this.flushAdds();
      });
    }
  }

  /** Adds pending jobs in batches, one batch in flight; a failed batch is retried (re-adding an id is a no-op). */
  private async flushAdds(): Promise<void> {
    if (this.adding) return;
    this.adding = true;
    const k = this.keys;
    try {
      while (this.pendingAdds.length > 0 && !this.stopped) {
        // Only tasks still open: one that settled meanwhile (taken back by a stop) is not re-sent.
        const batch = this.pendingAdds.splice(0, BATCH).filter((t) => this.open.has(jobId(this.runId, t.taskId, t.attempt)));
        if (batch.length === 0) continue;
        const argv: (string | number)[] = [k.base, Date.now(), this.name];
        for (const t of batch) argv.push(jobId(this.runId, t.taskId, t.attempt), encodeArgs(t.args, t.timeout));
        try {
          await this.cmd!.mpmsAdd(k.wait, k.meta, k.marker, jobsKey(k, this.runId), ...argv);
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

  /**
   * Reads the outbox while the transport runs: acks what was settled, settles what came, and
   * blocks on the run's bell while there is nothing to read.
   */
  private async drainLoop(): Promise<void> {
    const k = this.keys;
    const out = outKey(k, this.runId);
    const bell = bellKey(k, this.runId);
    while (!this.stopped) {
      let entries: string[];
      try {
        entries = (await this.cmd!.mpmsDrain(out, jobsKey(k, this.runId), k.base, BATCH, ...this.acks)) as string[];
        this.acks = [];
      } catch (err) {
        if (this.stopped) break;
        this.host!.logger.warn({ err }, 'bullmq: reading the outbox failed; retrying in 1 s');
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      for (const e of entries) this.onEntry(e);
      // A full batch: more may wait. Else the bell says when there is more (it is rung by every
      // finish that lands on an empty bell, so none is missed between this read and the wait).
      if (entries.length === BATCH) continue;
      try {
        // The bell rings (one token) when an outcome lands; at most a second's wait otherwise.
        await this.blk!.blpop(bell, 1);
      } catch {
        if (!this.stopped) await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  private onEntry(entry: string): void {
    const e = splitEntry(entry);
    if (!e) return;
    this.acks.push(e.id);
    const k = parseJobId(this.runId, e.id);
    const open = this.open.get(e.id);
    if (!k || !open) return;
    this.open.delete(e.id);
    this.host!.settle(decodeEntry(k.taskId, k.attempt, e.kind, e.rest));
    this.afterSettle();
  }

  private afterSettle(): void {
    this.host!.wake();
    if (this.open.size === 0) this.drained?.();
  }

  /** The periodic check: this run's jobs held by a worker engine that went silent, then jobs Redis lost. */
  private async check(): Promise<void> {
    if (this.checking || this.stopped || this.open.size === 0) return;
    this.checking = true;
    try {
      const k = this.keys;
      // Only this run's jobs: a dead engine's jobs of other runs are left to their masters and to live engines.
      const reaped = (await this.cmd!.mpmsReap(k.workers, k.beats, k.load, k.clock, k.wait, k.marker, k.reaper, k.base, k.m, `${this.runId}.`, 0, CLOCK_GAP_MS)) as (string | number)[];
      for (let i = 0; i < reaped.length; i += 4) {
        if (Number(reaped[i + 1]) + Number(reaped[i + 2]) > 0) {
          this.host!.logger.warn({ worker: reaped[i], requeued: reaped[i + 1], lost: reaped[i + 2], silentMs: reaped[i + 3] }, 'bullmq: a worker engine went silent; its unstarted jobs of this run went back to the queue, its started ones settle crashed');
        }
      }
      if (this.accepting && Date.now() - this.lastVanishCheck >= Math.max(5 * this.checkMs, 1000)) await this.settleVanished();
    } catch (err) {
      if (!this.stopped) this.host!.logger.warn({ err }, 'bullmq: the check for lost jobs failed; the next one retries');
    } finally {
      this.checking = false;
    }
  }

  /**
   * Settles `crashed` the open jobs that Redis no longer has. Only a Redis that lost data
   * (restarted without persistence, failed over to a replica that lagged) or a hand-made
   * removal does that; without this check their tasks would wait for ever and `join()` with
   * them. This master deletes a job only after it settled it, so one still open and missing
   * after Redis confirmed its add was lost. Skipped while stopping: the take-back deletes jobs.
   */
  private async settleVanished(): Promise<void> {
    this.lastVanishCheck = Date.now();
    const ids = [...this.open].filter(([, e]) => e.inRedis).map(([id]) => id);
    const lost: string[] = [];
    for (let i = 0; i < ids.length && this.accepting; i += BATCH) {
      const batch = ids.slice(i, i + BATCH);
      // Sent back to back on one connection: one round trip for the batch.
      const there = await Promise.all(batch.map((id) => this.cmd!.exists(this.keys.base + id)));
      batch.forEach((id, j) => {
        const entry = this.open.get(id);
        if (there[j] !== 0 || !entry || !this.accepting) return;
        this.open.delete(id);
        lost.push(id);
        this.host!.settle(lostOutcome(entry.taskId, entry.attempt, 'was lost: its job vanished from Redis (Redis restarted without its data, or the job was removed by hand)'));
      });
    }
    if (lost.length === 0) return;
    this.host!.logger.warn({ jobs: lost.length, first: lost[0] }, 'bullmq: unsettled jobs vanished from Redis (did Redis lose its data?); their tasks settle crashed');
    this.afterSettle();
  }

  async stop(graceMs: number): Promise<void> {
    this.accepting = false;
    const host = this.host;
    if (!host || !this.cmd) return this.disconnect();
    // Not yet in Redis: never started.
    for (const t of this.pendingAdds.splice(0)) {
      if (this.open.delete(jobId(this.runId, t.taskId, t.attempt))) host.returned(t.taskId, t.attempt);
    }
    if (this.open.size > 0) {
      try {
        await this.takeBack(host);
      } catch (err) {
        host.logger.warn({ err }, 'bullmq: could not take back unstarted jobs; they settle when the grace ends');
      }
    }
    if (this.open.size > 0 && graceMs > 0) {
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
    // Wake the drain loop from its wait on the bell, then ack the last entries it settled.
    this.blk?.disconnect();
    await this.draining?.catch(() => undefined);
    await this.finalAck();
    await this.disconnect();
  }

  /** Acks what was settled last and, when nothing of the run is left in Redis, removes its bell. */
  private async finalAck(): Promise<void> {
    const k = this.keys;
    try {
      if (this.acks.length) await withinMs(this.cmd!.mpmsDrain(outKey(k, this.runId), jobsKey(k, this.runId), k.base, 0, ...this.acks), 5000, 'acking outcomes');
      this.acks = [];
      if (this.open.size === 0) await withinMs(this.cmd!.del(bellKey(k, this.runId)), 5000, 'removing the bell');
    } catch (err) {
      this.host?.logger.warn({ err }, 'bullmq: could not ack the last outcomes; a master re-attaching to this run would deliver them again');
    }
  }

  /**
   * Takes back this run's jobs that no worker engine has started (on the wait list, or held and
   * unmarked): they never ran, and are returned to the engine (requeued or cancelled).
   */
  private async takeBack(host: TransportHost): Promise<void> {
    const k = this.keys;
    const taken = (await this.cmd!.mpmsTakeBack(k.wait, k.workers, jobsKey(k, this.runId), k.base, k.m, `${this.runId}.`)) as string[];
    for (const id of taken) {
      const entry = this.open.get(id);
      if (!entry) continue;
      this.open.delete(id);
      host.returned(entry.taskId, entry.attempt);
    }
  }

  private async disconnect(): Promise<void> {
    this.stopped = true;
    clearInterval(this.checkTimer);
    await Promise.all([closeRedis(this.cmd), closeRedis(this.blk, 100)]);
  }
}

