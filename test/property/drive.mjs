// The user's side of a property-suite run, where the engine lives: the engine's options, the
// putting loop (puts, submits with AbortSignals, close() at its point), the reader (a collector
// of some kind, an iterResults() loop, or nobody), follow-up puts, listeners (some throwing), and
// the ending — everything the run sees reported as plain messages ({ t: ... }). Plain
// JavaScript, so the same code drives the engine both inside the test process
// (test/property/run-scenario.ts) and in a real master script run as a subprocess
// (test/fixtures/property-master.mjs), which prints the messages as JSON lines.
import { TaskCancelledError, TaskTimeoutError, WorkerCrashedError } from '../../dist/index.js';

/**
 * The arguments a task is put with: its behaviour, and what it needs (a grandchild task also
 * gets the run's directory, where it records its grandchild's pid). A near task sleeps
 * taskTimeout × (1 + pct/100).
 * @param {{ kind: string, ms?: number, code?: number, after?: string, detached?: boolean, pct?: number, mb?: number, depth?: number, how?: string }} b
 * @param {number} index
 * @param {string} [runDir]
 * @param {{ taskTimeout?: number }} [settings]
 * @returns {unknown[]}
 */
export function taskArgs(b, index, runDir = '', settings = {}) {
  switch (b.kind) {
    case 'sleep':
    case 'long':
      return ['sleep', b.ms];
    case 'near':
      return ['sleep', settings.taskTimeout === undefined ? 20 : Math.round(settings.taskTimeout * (1 + b.pct / 100))];
    case 'exit':
      return ['exit', b.code];
    case 'grandchild':
      return ['grandchild', index, runDir, b.after, !!b.detached];
    case 'leak':
      return ['leak', index, b.mb];
    case 'deep':
      return ['deep', b.depth];
    case 'badThrow':
      return ['badThrow', index, b.how];
    default:
      return [b.kind, index];
  }
}

/**
 * The engine's options for a scenario, without collector and logger.
 * @param {any} sc the scenario (see model.ts)
 * @param {string | URL} worker
 * @param {unknown} initArgs
 */
export function engineOptions(sc, worker, initArgs) {
  const s = sc.settings;
  return {
    worker,
    processes: s.processes,
    threads: s.threads,
    concurrency: s.concurrency,
    taskQueueMaxsize: s.taskQueueMaxsize,
    resultQueueMaxsize: s.resultQueueMaxsize,
    lifecycle: s.lifecycle,
    lifecycleDuration: s.lifecycleDuration,
    lifecycleJitter: s.lifecycleJitter,
    lifecycleMemory: s.lifecycleMemory,
    processMemoryLimit: s.processMemoryLimit,
    taskTimeout: s.taskTimeout,
    retries: s.retries,
    hookTimeout: s.hookTimeout,
    workerGracefulDieTimeout: s.workerGracefulDieTimeout,
    putTimeout: s.putTimeout,
    initArgs,
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Thrown on purpose by the user's callbacks; recognised in the reports. */
export const ON_PURPOSE = 'thrown on purpose by the user side';

/**
 * An outcome as plain data (it crosses a pipe in the subprocess runs): the meta fields the checks
 * use, and the result — its value when ok (a nested array as its depth), else its error class
 * (by instanceof) and name/message (read defensively: a result may be anything).
 * @param {any} meta
 * @param {unknown} result
 */
export function plainOutcome(meta, result) {
  const { taskId, status, attempts, startedAt, processIndex, threadIndex, pid } = meta;
  const out = { meta: { taskId, status, attempts, startedAt, processIndex, threadIndex, pid } };
  if (status === 'ok') return { ...out, value: plainValue(result) };
  const cls =
    result instanceof TaskTimeoutError
      ? 'TaskTimeoutError'
      : result instanceof WorkerCrashedError
        ? 'WorkerCrashedError'
        : result instanceof TaskCancelledError
          ? 'TaskCancelledError'
          : result instanceof Error
            ? 'Error'
            : 'not an Error';
  return { ...out, error: { cls, name: safeString(() => result?.name), message: safeString(() => result?.message) } };
}

function plainValue(result) {
  if (typeof result === 'function') return '[function]';
  if (Array.isArray(result)) {
    let depth = 0;
    for (let x = result; Array.isArray(x); x = x[0]) depth++;
    return { depth };
  }
  try {
    return JSON.parse(JSON.stringify(result ?? null));
  } catch {
    return safeString(() => result);
  }
}

function safeString(read) {
  try {
    const v = read();
    return typeof v === 'string' || v === undefined ? v : String(v);
  } catch (err) {
    return `[unreadable: ${err?.message}]`;
  }
}

/**
 * One user of the engine, as the scenario describes it. Construct it, pass `collector` to the
 * engine, `attach(m)` once the engine exists, then `await run(m)`: it puts, reads, ends the
 * run and resolves with the summary once the ending resolved and the reader is done.
 * Everything it sees goes to `report` as a message.
 */
export class User {
  /**
   * @param {any} sc the scenario
   * @param {string} runDir
   * @param {(msg: Record<string, unknown>) => void} report
   * @param {{ plainLoop?: boolean }} [opts] plainLoop: the seeds are put by a plain
   *   `for … await m.put()` loop with no try/catch, as in the README (a rejection escapes).
   */
  constructor(sc, runDir, report, opts = {}) {
    this.sc = sc;
    this.runDir = runDir;
    this.report = report;
    this.plainLoop = !!opts.plainLoop;
    this.consumer = sc.consumer ?? { kind: 'collector', mode: 'sync' };
    const f = this.consumer.kind !== 'none' ? this.consumer.followUps : undefined;
    this.follow = f?.tasks.length ? f : undefined;
    /** @type {NodeJS.Timeout[]} */
    this.timers = [];
    /** The user called close() or join(). */
    this.closed = false;
    /** A shutdown began: gracefulShutdown()/terminate() called, or a signal received. */
    this.shutdown = false;
    this.accepted = 0;
    this.consumed = 0;
    this.putsInFlight = 0;
    this.readerBusy = 0;
    this.nextFollowUp = 0;
    this.seedsDone = false;
    this.readerDone = false;
    /** @type {Array<() => void>} */
    this.waiters = [];
    this.m = undefined;
    /** When the ending began (join() called, a shutdown begun), and the collector's time since (see holdSince). */
    this.endingAt = undefined;
    this.maxHoldMs = 0;
    this.busyAfterMs = 0;
    /** Start of the collector call under way, if any. */
    this.callStart = undefined;
  }

  /** The collector to give the engine, if the scenario reads through one. */
  get collector() {
    if (this.consumer.kind !== 'collector') return undefined;
    return (meta, result) => this.collect(meta, result);
  }

  /** Listeners: one that records, then those that throw (registered after it, so it always runs). */
  attach(m) {
    this.m = m;
    const l = this.sc.listeners ?? {};
    m.on('task', (meta) => this.report({ t: 'event', taskId: meta.taskId, status: meta.status }));
    let events = 0;
    if (l.taskThrowEvery) {
      m.on('task', (meta) => {
        if (++events % l.taskThrowEvery !== 0) return;
        this.report({ t: 'threw', where: 'task', taskId: meta.taskId });
        throw new Error(`'task' listener ${ON_PURPOSE}`);
      });
    }
    m.on('restart', (info) => {
      this.report({ t: 'restart', reason: info?.reason });
      if (!l.restartThrows) return;
      this.report({ t: 'threw', where: 'restart' });
      throw new Error(`'restart' listener ${ON_PURPOSE}`);
    });
    m.on('error', (err) => this.report({ t: 'engineError', message: String(err?.message ?? err) }));
  }

  /** Puts the task with index `index`; never throws unless `plain` (then a rejection escapes, as from the user's own loop). */
  async put(index, plain = false) {
    const m = this.m;
    const t = index < this.sc.tasks.length ? this.sc.tasks[index] : this.follow.tasks[index - this.sc.tasks.length];
    const args = taskArgs(t, index, this.runDir, this.sc.settings);
    // A put() issued after close() must reject, one issued after a shutdown began must not be
    // accepted: remembered at the call, not at the settlement.
    const closedAtCall = this.closed;
    const shutdownAtCall = this.shutdown;
    const p0 = Date.now();
    this.putsInFlight++;
    try {
      let id;
      if (t.abortAfterMs === undefined) id = await m.put(...args);
      else {
        const ac = new AbortController();
        if (t.abortAfterMs < 0) ac.abort();
        else this.timers.push(setTimeout(() => ac.abort(), t.abortAfterMs));
        id = await m.submit(args, { signal: ac.signal });
      }
      const waitedMs = Date.now() - p0;
      if (id === undefined) {
        this.report({
          t: 'notAccepted',
          index,
          closedAtCall,
          closed: this.closed,
          shutdownAtCall,
          shutdown: this.shutdown,
          waitedMs,
        });
      } else {
        this.accepted++;
        this.report({ t: 'accepted', id, index, afterClose: closedAtCall, afterShutdown: shutdownAtCall, waitedMs });
        this.onAccepted?.();
      }
    } catch (err) {
      const waitedMs = Date.now() - p0;
      this.report({
        t: 'rejected',
        index,
        name: err?.name,
        error: `${err?.name}: ${err?.message}`,
        waitedMs,
        closedAtCall,
        closed: this.closed,
        shutdownAtCall,
        shutdown: this.shutdown,
      });
      if (plain) throw err;
    } finally {
      this.putsInFlight--;
      this.poke();
    }
  }

  /** The follow-ups one outcome (the k-th read) asks for: taken in order from the pool until it is empty. */
  followUpIndexes(k) {
    if (!this.follow) return [];
    const n = this.follow.fanout[k % this.follow.fanout.length];
    const out = [];
    for (let i = 0; i < n && this.nextFollowUp < this.follow.tasks.length; i++)
      out.push(this.sc.tasks.length + this.nextFollowUp++);
    return out;
  }

  /** The ending begins (join() called, a shutdown begun): from now on collector holds are measured. */
  markEnding() {
    this.endingAt ??= Date.now();
  }

  /**
   * A collector call that started at `start` ended: how long it held its outcome since the ending
   * began — what the engine's bounds on a stalled collector measure (guarantees.md, "It stalls").
   */
  noteHold(start) {
    const end = Date.now();
    this.callStart = undefined;
    if (this.endingAt === undefined) return;
    const held = end - Math.max(start, this.endingAt);
    if (held <= 0) return;
    this.maxHoldMs = Math.max(this.maxHoldMs, held);
    this.busyAfterMs += held;
  }

  /** How long the collector call under way (if any) has held its outcome since the ending began. */
  holdingForMs() {
    if (this.callStart === undefined || this.endingAt === undefined) return 0;
    return Math.max(0, Date.now() - Math.max(this.callStart, this.endingAt));
  }

  collect(meta, result) {
    const start = Date.now();
    this.callStart = start;
    let async = false;
    try {
      const ret = this.collectOne(meta, result);
      async = ret !== undefined;
      return async ? ret.finally(() => this.noteHold(start)) : ret;
    } finally {
      if (!async) this.noteHold(start);
    }
  }

  collectOne(meta, result) {
    const c = this.consumer;
    const k = this.consumed++;
    this.report({ t: 'outcome', via: 'collector', ...plainOutcome(meta, result) });
    const more = this.followUpIndexes(k);
    const throwNow = !!c.throwEvery && (k + 1) % c.throwEvery === 0;
    const threw = () => {
      this.report({ t: 'threw', where: 'collector', taskId: meta.taskId });
      return new Error(`collector ${ON_PURPOSE}`);
    };
    if (c.mode === 'sync') {
      // A synchronous collector cannot await: its follow-ups are fired and forgotten.
      for (const i of more) void this.put(i);
      this.poke();
      if (throwNow) throw threw();
      return undefined;
    }
    this.readerBusy++;
    return (async () => {
      try {
        if (c.mode === 'slow') await sleep(c.delayMs);
        else await null;
        for (const i of more) await this.put(i);
        if (throwNow) throw threw();
      } finally {
        this.readerBusy--;
        this.poke();
      }
    })();
  }

  /** A `for await … of m.iterResults()` loop: reads, waits, puts follow-ups, leaves as the scenario says. */
  async read() {
    const c = this.consumer;
    let it;
    try {
      it = this.m.iterResults();
    } catch (err) {
      this.report({
        t: 'reader',
        how: err?.name === 'EngineStateError' ? 'stateError' : 'error',
        error: `${err?.name}: ${err?.message}`,
      });
      this.readerDone = true;
      this.poke();
      return;
    }
    let how = 'complete';
    try {
      for await (const { meta, result } of it) {
        const k = this.consumed++;
        this.readerBusy++;
        try {
          this.report({ t: 'outcome', via: 'iterator', ...plainOutcome(meta, result) });
          if (c.delayMs) await sleep(c.delayMs);
          for (const i of this.followUpIndexes(k)) await this.put(i);
        } finally {
          this.readerBusy--;
          this.poke();
        }
        if (c.stop && k + 1 >= c.stop.after) {
          how = c.stop.how;
          if (how === 'break') break;
          throw new Error(`reader ${ON_PURPOSE}`);
        }
      }
      this.report({ t: 'reader', how });
    } catch (err) {
      const own = String(err?.message).includes(ON_PURPOSE);
      this.report({
        t: 'reader',
        how: own ? 'throw' : 'error',
        error: own ? undefined : `${err?.name}: ${err?.message}`,
      });
    } finally {
      this.readerDone = true;
      this.poke();
    }
  }

  /** Something changed: every waiter re-checks its condition (and re-registers if it still waits). */
  poke() {
    for (const w of this.waiters.splice(0)) w();
  }

  /**
   * No follow-up can come any more: the seeds are put, no put is under way, no reader call is
   * busy, and every accepted task was read (or the reader left). What a crawler waits for
   * before it calls join().
   */
  quiet() {
    if (!this.seedsDone || this.putsInFlight > 0 || this.readerBusy > 0) return false;
    return this.readerDone || this.consumed >= this.accepted;
  }

  /** Resolves once every accepted task was handed to the collector and no call is busy. */
  untilRead() {
    const read = () => this.consumed >= this.accepted && this.readerBusy === 0;
    if (read()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => (read() ? resolve() : this.waiters.push(check));
      this.waiters.push(check);
    });
  }

  /** How long the collector may still need after the ending: its delay per outcome, plus slack. */
  readBudgetMs() {
    const n = this.sc.tasks.length + (this.follow?.tasks.length ?? 0);
    return (this.consumer.delayMs ?? 0) * n + 2000;
  }

  untilQuiet() {
    if (this.quiet()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => (this.quiet() ? resolve() : this.waiters.push(check));
      this.waiters.push(check);
    });
  }

  /** Puts every seed task, in order, calling close() where the scenario says. */
  async putSeeds() {
    const sc = this.sc;
    const close = () => {
      this.closed = true;
      this.m.close();
    };
    for (let i = 0; i < sc.tasks.length; i++) {
      if (sc.close && sc.close.beforeTask === i) {
        if (sc.close.delayMs === 0) close();
        else this.timers.push(setTimeout(close, sc.close.delayMs));
      }
      await this.put(i, this.plainLoop);
    }
  }

  /**
   * The run: the reader (unless late) and the put loop start together; a late reader starts once
   * every seed put returned. join() (also in signal runs: the signal comes from outside) follows
   * the put loop — for a crawler, once no follow-up can come any more; gracefulShutdown() and
   * terminate() fire once `afterPuts` puts were accepted, the loop ended, or `stallMs` passed.
   * Resolves with the summary once the ending resolved, the put loop ended and the reader left.
   */
  async run() {
    const m = this.m;
    const e = this.sc.ending;
    const iterator = this.consumer.kind === 'iterator';
    const reading = iterator && !this.consumer.late ? this.read() : undefined;
    let trigger;
    const triggered = new Promise((r) => (trigger = r));
    const afterPuts = e.kind === 'graceful' || e.kind === 'terminate' ? e.afterPuts : Infinity;
    if (afterPuts === 0) trigger();
    this.onAccepted = () => this.accepted >= afterPuts && trigger();
    const putting = this.putSeeds().finally(() => {
      this.seedsDone = true;
      this.poke();
      trigger();
    });
    const late = putting.then(
      () => (iterator && this.consumer.late ? this.read() : undefined),
      () => undefined,
    );
    try {
      let summary;
      if (e.kind === 'join' || e.kind === 'signal') {
        await putting;
        if (this.follow) await this.untilQuiet();
        this.closed = true;
        this.markEnding();
        this.report({ t: 'ending', kind: 'join' });
        summary = await m.join();
      } else {
        await Promise.race([triggered, sleep(e.stallMs)]);
        this.shutdown = true;
        this.markEnding();
        this.report({ t: 'ending', kind: e.kind });
        const ending = e.kind === 'graceful' ? m.gracefulShutdown({ timeout: e.timeout }) : m.terminate();
        [summary] = await Promise.all([ending, putting]);
      }
      // join() drains the collector: every outcome was handed to it, and each call had returned.
      this.report({
        t: 'ended',
        consumed: this.consumed,
        accepted: this.accepted,
        busy: this.readerBusy,
        holdingForMs: this.holdingForMs(),
      });
      await reading;
      await late;
      // A shutdown drains the collector only within its grace; the rest still reaches it (bounded here).
      if (this.consumer.kind === 'collector') {
        await Promise.race([this.untilRead(), sleep(this.readBudgetMs())]);
        const holding = this.holdingForMs();
        this.report({
          t: 'collectorTime',
          maxHoldMs: Math.max(this.maxHoldMs, holding),
          busyAfterMs: this.busyAfterMs + holding,
        });
      }
      return summary;
    } finally {
      for (const t of this.timers) clearTimeout(t);
    }
  }
}
