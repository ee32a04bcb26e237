/**
 * The worker side of scale-out (`mpms worker`): a local engine — processes × threads with all
 * its supervision — fed from a queue on Redis. Each job becomes one local task; its outcome
 * goes to its run's outbox (lib/scale-out/scripts.ts says what is where in Redis).
 *
 * A job's way through one worker engine, each step one batched Redis script:
 * 1. fetch: up to `prefetch` jobs move from the queue into this engine's held set;
 * 2. mark: just before jobs are handed to the local engine, they move to its started set —
 *    the mark is written (and confirmed) before a task can start, so a job without it never
 *    ran here;
 * 3. finish: the outcome goes to the run's outbox, and the job leaves the started set.
 * A heartbeat every 500 ms proves the engine alive. When it goes silent for `lockDuration`, a
 * reaper (any live worker engine, or the master of the job's run) hands its held jobs back to
 * the queue — they run elsewhere — and settles its started ones `crashed`.
 */
import os from 'node:os';
import fs from 'node:fs';
import { pino, type Logger } from 'pino';
import type { Redis } from 'ioredis';
import { MPMS, type FinalSummary } from '../master/engine.js';
import { ConfigError } from '../errors.js';
import { OPTION_SPECS, resolveOptions, type MPMSOptions } from '../options.js';
import { resolveSettings, settingProblems } from '../settings.js';
import { Code, countByStatus, STATUS_BY_CODE, toErrorWire } from '../protocol.js';
import { moduleUrl } from '../shared/worker-module.js';
import type { Meta, Metrics, TaskStatus } from '../types.js';
import { closeRedis, openRedis, type RedisConnection } from './connection.js';
import { BATCH, BEAT_MS, CLOCK_GAP_MS, heldKey, queueKeys, runSetKey, withScripts, type QueueKeys, type ScriptedRedis } from './scripts.js';
import { SERVE_SPECS } from './settings.js';
import { decodeData, encodeOutcome, jobName, moduleFingerprint, refusal, WIRE_VERSION } from './wire.js';

/** Settings of `serveQueue()`: the engine's own, plus where to take jobs from. */
export interface WorkerEngineOptions extends Omit<MPMSOptions, 'collector' | 'transport' | 'handleSignals'> {
  /** Redis: a `redis://host:port` URL, ioredis options, or an ioredis client (it is duplicated). */
  connection: RedisConnection;
  /** BullMQ queue name, as given to `bullmqTransport({ queue })`. */
  queue: string;
  /**
   * Jobs held at once, started or not. Default: adaptive — `processes × threads × concurrency ×
   * 4 + 8`, growing to what the engine finishes in 50 ms (at most 512) when tasks are short.
   */
  prefetch?: number;
  /**
   * ms this engine may stay silent (no heartbeat; one is sent every 500 ms) before it counts as
   * dead: then its unstarted jobs go back to the queue and its started ones settle `crashed`.
   * Time Redis was away for everyone does not count. Default 3000, at least 2500.
   */
  lockDuration?: number;
  /** ms between this fleet's checks for silent worker engines (one engine checks per period). Default 1000. */
  stalledInterval?: number;
  /** ms `stop()` lets started jobs finish before it hands the rest back to the queue. Default 30000. */
  drainTimeout?: number;
  /** BullMQ key prefix. Default BullMQ's (`bull`). */
  prefix?: string;
  /** What this engine serves, as the master's `bullmqTransport({ fingerprint })`. Default: a hash of the worker module's file. */
  fingerprint?: string;
}

/** What a worker engine did with the jobs it took (besides its local engine's `metrics()`). */
export interface ServeStats {
  /** Jobs taken from the queue. */
  fetched: number;
  /** Jobs marked started and handed to the local engine. */
  started: number;
  /** Outcomes published to their runs. */
  published: number;
  /** Jobs refused: sent for another module, export or wire version (each settled `error` at its master). */
  refused: number;
  /** Jobs handed back to the queue unstarted (drain, a fetch after stop, a reconnect). */
  handedBack: number;
  /** Jobs held now, not yet started. */
  held: number;
  /** Jobs started here and not yet finished. */
  running: number;
  /** Silent worker engines this one declared dead. */
  reaped: number;
}

/** A running worker engine. */
export interface WorkerEngine {
  /** `host:pid`, reported to the master as `meta.worker`. */
  readonly id: string;
  /** What jobs must carry to run here: `mpms/<wire>/<fingerprint>/<export>`. */
  readonly serves: string;
  /** Stops taking jobs, finishes started ones within `drainTimeout`, hands the rest back, stops the engine. Idempotent. */
  stop(): Promise<FinalSummary>;
  /** Resolves when the worker engine has stopped (by `stop()`, or because its engine gave up). */
  readonly done: Promise<FinalSummary>;
  /** The local engine's metrics. */
  metrics(): Metrics;
  serveStats(): ServeStats;
  /** Whether this engine serves: Redis connected, its last heartbeat recent, not stopping. */
  health(): WorkerHealth;
}

/** `WorkerEngine.health()`: what a supervisor's health check needs. */
export interface WorkerHealth {
  ok: boolean;
  /** Why not ok: `stopping`, `redis <status>`, or `heartbeat <ms> ms ago`. */
  reason?: string;
  /** ioredis' status of the command connection (`ready` when connected). */
  redis: string;
  /** ms since the last heartbeat Redis confirmed. */
  lastBeatMs: number;
  stopping: boolean;
}

/** The package version, for the fleet registry (`mpms status`). */
function mpmsVersion(): string {
  try {
    return (JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

const CODE_BY_STATUS = Object.fromEntries(STATUS_BY_CODE.map((s, i) => [s, i])) as Record<TaskStatus, number>;

/**
 * Starts a local engine and serves the queue with it. Resolves once the engine's processes and
 * threads are ready and Redis answers.
 */
export async function serveQueue(options: WorkerEngineOptions): Promise<WorkerEngine> {
  const own = new Set(SERVE_SPECS.map((spec) => spec.name));
  const given = Object.entries(options ?? {});
  const engineInput = Object.fromEntries(given.filter(([k]) => !own.has(k)));
  // Every bad setting at once, the worker engine's and the local engine's alike.
  const problems = [...settingProblems(SERVE_SPECS, options as unknown as Record<string, unknown>, false), ...settingProblems(OPTION_SPECS, engineInput)];
  if (problems.length) throw new ConfigError(problems);
  const serve = resolveSettings<ServeSettings>(SERVE_SPECS, options as unknown as Record<string, unknown>, false);
  const engineOptions = resolveOptions(engineInput as unknown as MPMSOptions);
  const logger = engineOptions.logger ?? pino({ level: 'warn' }, pino.destination({ dest: 2, sync: true }));
  let server: QueueServer | undefined;
  const engine = new MPMS({ ...(engineInput as unknown as MPMSOptions), logger, collector: (meta, result) => server?.onOutcome(meta, result) });
  const { processes, threads, concurrency, export: exportName, worker } = engineOptions;
  const serves = jobName({ fingerprint: serve.fingerprint ?? moduleFingerprint(moduleUrl(worker)), exportName });
  await engine.start();
  server = new QueueServer(engine, logger, {
    connection: serve.connection,
    keys: queueKeys(serve.prefix, serve.queue),
    queue: serve.queue,
    serves,
    slots: processes * threads * concurrency,
    prefetch: serve.prefetch,
    deadline: serve.lockDuration,
    reapEvery: serve.stalledInterval,
    drainTimeout: serve.drainTimeout,
    info: { processes, threads, concurrency, module: worker, export: exportName },
  });
  try {
    await server.start();
  } catch (err) {
    await server.close();
    await engine.terminate();
    throw err;
  }
  const s = server;
  engine.on('error', (err) => {
    // The engine gave up (a crash loop): jobs it can no longer run go back to the queue.
    logger.error({ err }, `worker engine ${s.id}: the local engine gave up; stopping`);
    void s.stop();
  });
  return { id: s.id, serves, stop: () => s.stop(), done: s.done, metrics: () => engine.metrics(), serveStats: () => s.stats(), health: () => s.health() };
}

/** `serveQueue()`'s own settings after their defaults (SERVE_SPECS). */
interface ServeSettings {
  connection: RedisConnection;
  queue: string;
  prefetch: number | undefined;
  lockDuration: number;
  stalledInterval: number;
  drainTimeout: number;
  prefix: string;
  fingerprint: string | undefined;
}

interface ServerSettings {
  connection: RedisConnection;
  keys: QueueKeys;
  queue: string;
  serves: string;
  slots: number;
  /** Given by the user: fixed. Else adaptive (`QueueServer.prefetch()`). */
  prefetch: number | undefined;
  deadline: number;
  reapEvery: number;
  drainTimeout: number;
  info: Record<string, unknown>;
}

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/**
 * How much work an engine keeps ahead of its slots, in ms of its own throughput: fetched
 * (unstarted: handed back if it dies, so it may be generous) and marked started (counted
 * `crashed` if it dies before they start: kept to what it finishes in a few ms).
 */
const FETCH_AHEAD_MS = 50;
const MARK_AHEAD_MS = 20;
const MAX_PREFETCH = 512;
const RATE_EVERY_MS = 250;

class QueueServer {
  readonly id = `${os.hostname()}:${process.pid}`;
  readonly done: Promise<FinalSummary>;
  private readonly startedAt = Date.now();
  private readonly version = mpmsVersion();
  private resolveDone!: (s: FinalSummary) => void;
  private cmd: ScriptedRedis | undefined;
  private blk: Redis | undefined;
  private readonly held: string;
  private readonly runSet: string;
  /** Fetched, not yet marked: job id → job data, in fetch order. */
  private readonly unmarked = new Map<string, string>();
  private readonly marking = new Map<string, string>();
  /** Marked and handed to the local engine. */
  private readonly running = new Set<string>();
  /** Outcomes to publish: [job id, payload]. */
  private finishing: [string, string][] = [];
  private publishing: [string, string][] = [];
  /** Outcomes per ms, smoothed: how deep the pipeline must be to keep the slots busy. */
  private rate = 0;
  private doneSinceTick = 0;
  private rateTimer: NodeJS.Timeout | undefined;
  private fetchCall = false;
  private waitingForJobs = false;
  private markCall = false;
  private finishCall = false;
  private reconcileCall = false;
  private needReconcile = false;
  private registered = false;
  private stopping = false;
  /** Set when the drain deadline passed: a task cancelled by the stop goes back to the queue. */
  private abandoning = false;
  private stopRun: Promise<FinalSummary> | undefined;
  private beatTimer: NodeJS.Timeout | undefined;
  private readonly counts: Omit<ServeStats, 'held' | 'running'> = { fetched: 0, started: 0, published: 0, refused: 0, handedBack: 0, reaped: 0 };
  private readonly outcomes: Record<TaskStatus, number> = countByStatus();
  private lastRefusalLog = 0;
  private lastBeatOk = 0;
  private pumpScheduled = false;
  private idle: (() => void) | undefined;

  constructor(
    private readonly engine: MPMS,
    private readonly logger: Logger,
    private readonly s: ServerSettings,
  ) {
    this.done = new Promise((r) => (this.resolveDone = r));
    this.held = heldKey(s.keys, this.id);
    this.runSet = runSetKey(s.keys, this.id);
  }

  health(): WorkerHealth {
    const redis = this.cmd?.status ?? 'none';
    const lastBeatMs = Date.now() - this.lastBeatOk;
    const reason = this.stopping ? 'stopping' : redis !== 'ready' ? `redis ${redis}` : lastBeatMs > this.s.deadline ? `heartbeat ${lastBeatMs} ms ago` : undefined;
    return { ok: reason === undefined, ...(reason ? { reason } : {}), redis, lastBeatMs, stopping: this.stopping };
  }

  /** Jobs to hold: the user's `prefetch`, or slots × 4 + 8 growing to FETCH_AHEAD_MS of work. */
  private prefetch(): number {
    if (this.s.prefetch !== undefined) return this.s.prefetch;
    return Math.min(MAX_PREFETCH, this.s.slots * 4 + 8 + Math.ceil(this.rate * FETCH_AHEAD_MS));
  }

  /** Jobs marked and unfinished at most: twice the slots plus MARK_AHEAD_MS of work, within the prefetch. */
  private markWindow(): number {
    return Math.min(this.prefetch(), this.s.slots * 2 + Math.ceil(this.rate * MARK_AHEAD_MS));
  }

  stats(): ServeStats {
    return { ...this.counts, held: this.unmarked.size + this.marking.size, running: this.running.size };
  }

  async start(): Promise<void> {
    const warn = (obj: object, msg: string) => this.logger.warn(obj, msg);
    const what = `Redis for queue ${this.s.queue}`;
    this.cmd = withScripts(await openRedis(this.s.connection, { name: `mpms:worker:${this.id}`, what, warn }));
    this.blk = await openRedis(this.s.connection, { name: `mpms:worker:${this.id}:wait`, what, warn });
    await this.beat();
    // A reconnect may have lost the reply of a fetch or a mark: reconcile before fetching again.
    this.cmd.on('ready', () => {
      this.needReconcile = true;
      void this.beat();
      this.schedulePump();
    });
    this.beatTimer = setInterval(() => void this.beat().then(() => this.reap()), BEAT_MS);
    this.rateTimer = setInterval(() => {
      this.rate = 0.5 * this.rate + (0.5 * this.doneSinceTick) / RATE_EVERY_MS;
      this.doneSinceTick = 0;
    }, RATE_EVERY_MS);
    this.rateTimer.unref();
    this.schedulePump();
  }

  private info(): string {
    return JSON.stringify({ ...this.s.info, host: os.hostname(), pid: process.pid, version: this.version, wire: WIRE_VERSION, serves: this.s.serves, prefetch: this.s.prefetch ?? 'adaptive', deadline: this.s.deadline, startedAt: this.startedAt });
  }

  private load(): string {
    const m = this.engine.metrics();
    return JSON.stringify({ ...this.stats(), prefetch: this.prefetch(), markWindow: this.markWindow(), outcomes: this.outcomes, processesAlive: m.processesAlive, threadsAlive: m.threadsAlive, slots: this.s.slots, stopping: this.stopping, at: Date.now() });
  }

  private async beat(): Promise<void> {
    if (!this.cmd) return;
    const k = this.s.keys;
    try {
      const fresh = await this.cmd.mpmsBeat(k.workers, k.beats, k.load, k.clock, this.id, this.info(), this.load(), CLOCK_GAP_MS);
      if (fresh === 1 && this.registered) {
        this.logger.warn(`worker engine ${this.id}: registered again (it was declared dead while silent, or Redis lost its data); its unstarted jobs went back to the queue`);
        this.needReconcile = true;
        this.schedulePump();
      }
      this.registered = true;
      this.lastBeatOk = Date.now();
    } catch (err) {
      this.logger.warn({ err }, `worker engine ${this.id}: heartbeat failed`);
    }
  }

  /** One live engine per period declares silent ones dead (a Redis lock elects it). */
  private async reap(): Promise<void> {
    if (!this.cmd || this.stopping) return;
    const k = this.s.keys;
    try {
      const r = (await this.cmd.mpmsReap(k.workers, k.beats, k.load, k.clock, k.wait, k.marker, k.reaper, k.base, k.m, '', this.s.reapEvery, CLOCK_GAP_MS)) as (string | number)[];
      for (let i = 0; i < r.length; i += 4) {
        this.counts.reaped++;
        this.logger.warn({ worker: r[i], requeued: r[i + 1], lost: r[i + 2], silentMs: r[i + 3] }, `worker engine ${this.id}: declared a silent worker engine dead; its unstarted jobs went back to the queue, its started ones settle crashed`);
      }
    } catch (err) {
      this.logger.warn({ err }, `worker engine ${this.id}: the check for silent worker engines failed`);
    }
  }

  /**
   * Runs `pump()` on the next turn of the event loop, once however often it is asked for: the
   * outcomes of one IPC batch, or the jobs of one reply, then go to Redis in one call.
   */
  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** Decides what to ask Redis next; each kind of call has at most one in flight. */
  private pump(): void {
    if (this.needReconcile && !this.fetchCall && !this.markCall && !this.reconcileCall) void this.reconcile();
    if (!this.reconcileCall && !this.stopping) {
      this.maybeMark();
      this.maybeFetch();
    }
    this.maybeFinish();
    if (this.idle && this.running.size === 0 && this.marking.size === 0 && this.finishing.length === 0 && !this.finishCall) this.idle();
  }

  /** A Redis call failed: say so, and let `pump()` make it again in a second (`free` marks it no longer in flight). */
  private retryLater(err: unknown, what: string, free: () => void): void {
    this.logger.warn({ err }, `worker engine ${this.id}: ${what} failed; retrying in 1 s`);
    void delay(1000).then(() => {
      free();
      this.schedulePump();
    });
  }

  private maybeFetch(): void {
    if (this.fetchCall || this.waitingForJobs) return;
    const prefetch = this.prefetch();
    const want = prefetch - this.unmarked.size - this.marking.size - this.running.size;
    // Refill in batches, unless the engine is about to run dry.
    if (want <= 0 || (want < prefetch / 4 && this.unmarked.size > this.s.slots)) return;
    this.fetchCall = true;
    const k = this.s.keys;
    this.cmd!.mpmsFetch(k.wait, k.meta, k.marker, this.held, k.workers, k.beats, k.clock, k.base, this.id, want, CLOCK_GAP_MS).then(
      (r) => {
        this.fetchCall = false;
        const res = r as string[];
        if (res[0] === 'unknown') {
          void this.beat().then(() => this.schedulePump());
          return;
        }
        for (let i = 1; i + 2 < res.length; i += 3) this.took(res[i]!, res[i + 1]!, res[i + 2]!);
        if (res.length <= 1) void this.waitForJobs();
        this.schedulePump();
      },
      (err: unknown) => this.retryLater(err, 'fetching jobs', () => (this.fetchCall = false)),
    );
  }

  /** Blocks (on the second connection) until BullMQ's marker says jobs were added, at most a second. */
  private async waitForJobs(): Promise<void> {
    this.waitingForJobs = true;
    try {
      await this.blk!.bzpopmin(this.s.keys.marker, 1);
    } catch {
      if (!this.stopping) await delay(200);
    }
    this.waitingForJobs = false;
    this.schedulePump();
  }

  private took(id: string, name: string, data: string): void {
    this.counts.fetched++;
    if (this.stopping) {
      void this.release([id]);
      return;
    }
    if (name !== this.s.serves) {
      this.refuse(id, name);
      return;
    }
    this.unmarked.set(id, data);
  }

  private refuse(id: string, name: string): void {
    this.counts.refused++;
    const now = Date.now();
    if (now - this.lastRefusalLog > 10_000) {
      this.lastRefusalLog = now;
      this.logger.error({ jobId: id, sentFor: name, serves: this.s.serves, refused: this.counts.refused }, `worker engine ${this.id}: refused a job sent for another worker module, export or mpms version (it settles error at its master, never runs here)`);
    }
    this.finishing.push([id, encodeOutcome(refusal(this.id, this.s.serves, name))]);
  }

  private maybeMark(): void {
    if (this.markCall || this.unmarked.size === 0) return;
    const inFlight = this.running.size + this.marking.size;
    const room = this.markWindow() - inFlight;
    // In batches, unless the engine's slots would idle.
    if (room <= 0 || (room < Math.min(this.unmarked.size, this.s.slots) && inFlight >= this.s.slots)) return;
    const ids: string[] = [];
    for (const [id, data] of this.unmarked) {
      if (ids.length >= room) break;
      ids.push(id);
      this.marking.set(id, data);
    }
    for (const id of ids) this.unmarked.delete(id);
    this.markCall = true;
    this.cmd!.mpmsMark(this.held, this.runSet, ...ids).then(
      (flags) => {
        (flags as number[]).forEach((f, i) => {
          const id = ids[i]!;
          const data = this.marking.get(id)!;
          this.marking.delete(id);
          if (f !== 1) return; // handed back meanwhile (this engine was declared dead): it runs elsewhere
          if (this.stopping) void this.release([id]);
          else this.submit(id, data);
        });
        this.markCall = false;
        this.schedulePump();
      },
      (err: unknown) => {
        for (const id of ids) {
          this.unmarked.set(id, this.marking.get(id)!);
          this.marking.delete(id);
        }
        this.retryLater(err, 'marking jobs started', () => (this.markCall = false));
      },
    );
  }

  private submit(id: string, data: string): void {
    let args: unknown[];
    let timeout: number;
    try {
      ({ args, timeout } = decodeData(data));
    } catch (err) {
      this.finishing.push([id, encodeOutcome({ code: Code.Error, value: toErrorWire(new Error(`job ${id}: its data could not be read (${(err as Error).message})`)), startedAt: 0, endedAt: Date.now(), worker: this.id })]);
      return;
    }
    this.counts.started++;
    this.running.add(id);
    this.engine.submit(args, { meta: { job: id }, ...(timeout > 0 ? { timeout } : {}) }).then(
      (taskId) => {
        // Not accepted (the engine is shutting down): it never started here.
        if (taskId === undefined && this.running.delete(id)) void this.release([id]).then(() => this.schedulePump());
      },
      (err: unknown) => {
        if (!this.running.delete(id)) return;
        this.logger.warn({ err, jobId: id }, `worker engine ${this.id}: the local engine refused a job; handing it back to the queue`);
        void this.release([id]).then(() => this.schedulePump());
      },
    );
  }

  /** The local engine's collector: every task's outcome, once. */
  onOutcome(meta: Meta, result: unknown): void {
    const id = meta.job as string;
    if (!this.running.delete(id)) return;
    if (this.abandoning && meta.status === 'cancelled') {
      void this.release([id]).then(() => this.schedulePump());
      return;
    }
    this.outcomes[meta.status]++;
    this.doneSinceTick++;
    const code = CODE_BY_STATUS[meta.status];
    const payload = encodeOutcome({
      code,
      value: code === Code.Ok ? result : toErrorWire(result),
      startedAt: meta.startedAt ?? 0,
      endedAt: meta.endedAt ?? Date.now(),
      worker: this.id,
      processIndex: meta.processIndex,
      threadIndex: meta.threadIndex,
      pid: meta.pid,
    });
    this.finishing.push([id, payload]);
    this.schedulePump();
  }

  private maybeFinish(): void {
    if (this.finishCall || this.finishing.length === 0 || !this.cmd) return;
    this.finishCall = true;
    this.publishing = this.finishing.splice(0, BATCH);
    const k = this.s.keys;
    this.cmd.mpmsFinish(this.held, this.runSet, k.base, k.m, ...this.publishing.flat()).then(
      (n) => {
        this.counts.published += Number(n);
        this.publishing = [];
        this.finishCall = false;
        this.schedulePump();
      },
      (err: unknown) => {
        this.finishing.unshift(...this.publishing);
        this.publishing = [];
        this.retryLater(err, 'publishing outcomes', () => (this.finishCall = false));
      },
    );
  }

  private async reconcile(): Promise<void> {
    this.needReconcile = false;
    this.reconcileCall = true;
    const known = [...this.unmarked.keys(), ...this.marking.keys(), ...this.running, ...this.finishing.map(([id]) => id), ...this.publishing.map(([id]) => id)];
    const k = this.s.keys;
    try {
      const n = Number(await this.cmd!.mpmsReconcile(this.held, this.runSet, k.wait, k.marker, k.base, ...known));
      if (n > 0) {
        this.counts.handedBack += n;
        this.logger.warn({ jobs: n }, `worker engine ${this.id}: after a reconnect, handed back jobs whose fetch reply was lost (they never started here)`);
      }
    } catch (err) {
      this.needReconcile = true;
      this.logger.warn({ err }, `worker engine ${this.id}: reconciling after a reconnect failed; retrying`);
      await delay(1000);
    }
    this.reconcileCall = false;
    this.schedulePump();
  }

  private async release(ids: string[]): Promise<void> {
    if (ids.length === 0 || !this.cmd) return;
    const k = this.s.keys;
    try {
      this.counts.handedBack += Number(await this.cmd.mpmsRelease(this.held, this.runSet, k.wait, k.marker, k.base, ...ids));
    } catch (err) {
      // Left in this engine's sets: the reaper hands them back once this engine has stopped beating.
      this.logger.warn({ err, jobs: ids.length }, `worker engine ${this.id}: could not hand jobs back to the queue`);
    }
  }

  /** Waits until nothing started here is unfinished or unpublished, at most `ms`. */
  private settled(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.idle = undefined;
        resolve(false);
      }, ms);
      this.idle = () => {
        clearTimeout(timer);
        this.idle = undefined;
        resolve(true);
      };
      this.schedulePump();
    });
  }

  stop(): Promise<FinalSummary> {
    this.stopRun ??= (async () => {
      this.stopping = true;
      this.blk?.disconnect();
      // Not started: back to the queue at once, for other machines.
      const unstarted = [...this.unmarked.keys()];
      this.unmarked.clear();
      await this.release(unstarted);
      if (!(await this.settled(this.s.drainTimeout))) {
        this.abandoning = true;
        this.logger.warn(`worker engine ${this.id}: jobs still running after the drain timeout; handing them back to the queue`);
        void this.engine.gracefulShutdown({ timeout: 0 });
        await this.settled(10_000);
      }
      clearInterval(this.beatTimer);
      const k = this.s.keys;
      await this.cmd?.mpmsLeave(k.workers, k.beats, k.load, this.held, this.runSet, this.id).catch(() => undefined);
      await this.close();
      const summary = await this.engine.join();
      this.resolveDone(summary);
      return summary;
    })();
    return this.stopRun;
  }

  async close(): Promise<void> {
    clearInterval(this.beatTimer);
    clearInterval(this.rateTimer);
    await Promise.all([closeRedis(this.cmd), closeRedis(this.blk, 100)]);
  }
}
