/**
 * Runs one scenario of the property suite against the real engine (real child processes, real
 * threads) and returns every invariant it broke. Every wait is bounded; whatever happens, no
 * process the run started is left behind.
 */
import {
  MPMS,
  TaskCancelledError,
  TaskTimeoutError,
  WorkerCrashedError,
  WorkerStartError,
  type FinalSummary,
  type Meta,
} from '../../dist/index.js';
import pino from 'pino';
import { childPids, fixture, isAlive, waitGone } from '../helpers.js';
import { allowedStatuses, failingInitializer, hasCrashers, hookInitArgs, runBoundMs, startFailBoundMs, taskArgs, type Scenario, type Status } from './model.js';

const worker = fixture('property-worker.mjs');
const STATUSES: Status[] = ['ok', 'error', 'timeout', 'crashed', 'cancelled'];

export interface RunReport {
  violations: string[];
  elapsedMs: number;
  boundMs: number;
  accepted: number;
  summary?: FinalSummary;
  /** Set when the run ended at start() (a failing initializer): how long start() took to reject. */
  startRejectedMs?: number;
  /** Coverage of the run: put()s rejected with QueueFullError; tasks with a signal, and of those, cancelled. */
  queueFull: number;
  signalled: number;
  signalCancelled: number;
}

/** A put() or submit() that rejected: which task, why, whether the ending was already called, how long it waited. */
interface PutError {
  index: number;
  name: string;
  error: string;
  afterEnding: boolean;
  waitedMs: number;
}

const sleep = (ms: number) => new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref());

/** Races `p` against `ms`; `'timeout'` if it did not settle in time. Rejections come back as values. */
async function within<T>(p: Promise<T>, ms: number): Promise<{ value: T } | { error: unknown } | 'timeout'> {
  return Promise.race([p.then((value) => ({ value }), (error: unknown) => ({ error })), sleep(ms)]);
}

export async function runScenario(sc: Scenario): Promise<RunReport> {
  const v: string[] = [];
  const boundMs = runBoundMs(sc);
  const before = new Set(childPids());
  const seen = new Set<number>();
  const sample = () => {
    try {
      for (const p of childPids()) if (!before.has(p)) seen.add(p);
    } catch {
      /* ps raced an exiting child; the next sample will do */
    }
  };
  const s = sc.settings;
  const collected = new Map<number, { meta: Meta; result: unknown }[]>();
  const events = new Map<number, Meta[]>();
  const engineErrors: string[] = [];
  const m = new MPMS({
    worker,
    processes: s.processes,
    threads: s.threads,
    concurrency: s.concurrency,
    taskQueueMaxsize: s.taskQueueMaxsize,
    lifecycle: s.lifecycle,
    taskTimeout: s.taskTimeout,
    retries: s.retries,
    hookTimeout: s.hookTimeout,
    workerGracefulDieTimeout: s.workerGracefulDieTimeout,
    putTimeout: s.putTimeout,
    initArgs: hookInitArgs(sc),
    // The engine's own warnings (threads terminated, crashes) are expected here; MPMS_FC_VERBOSE shows them.
    logger: pino({ level: process.env.MPMS_FC_VERBOSE ? 'warn' : 'silent' }, pino.destination(2)),
    collector: (meta, result) => {
      const list = collected.get(meta.taskId) ?? [];
      list.push({ meta, result });
      collected.set(meta.taskId, list);
    },
  });
  m.on('task', (meta) => {
    const list = events.get(meta.taskId) ?? [];
    list.push(meta);
    events.set(meta.taskId, list);
  });
  m.on('error', (err) => engineErrors.push(String((err as Error)?.message ?? err)));

  const sampler = setInterval(sample, 150);
  const accepted: { id: number; index: number }[] = [];
  const putErrors: PutError[] = [];
  const putWaits: number[] = [];
  const abortTimers: NodeJS.Timeout[] = [];
  let endingCalled = false;
  let elapsedMs = 0;
  let summary: FinalSummary | undefined;
  let startRejectedMs: number | undefined;
  try {
    const failing = failingInitializer(sc);
    const startBound = failing ? startFailBoundMs(sc) : 3 * s.hookTimeout + 15_000;
    const s0 = Date.now();
    const started = await within(m.start(), startBound);
    const startMs = Date.now() - s0;
    sample();
    if (failing) {
      // A throwing or hanging initializer: start() rejects with WorkerStartError, within its
      // bound, naming the phase; the run ends there (the leftover check below runs without
      // terminate(): start() itself must leave no process behind).
      if (started === 'timeout') v.push(`HANG: start() with a failing ${failing} (${sc.hooks?.[failing]}) did not reject within its bound of ${startBound} ms`);
      else if ('value' in started) v.push(`start() resolved though ${failing} is faulty (${sc.hooks?.[failing]})`);
      else {
        startRejectedMs = startMs;
        const err = started.error as Error & { phase?: string };
        const phases = failing === 'processInitializer' ? ['processInitializer'] : ['threadInitializer', 'threadStart'];
        if (!(err instanceof WorkerStartError)) v.push(`start() rejected with ${describe(err)}, not a WorkerStartError`);
        else if (!phases.includes(err.phase ?? '')) v.push(`start() rejected naming phase ${String(err.phase)}, expected ${phases.join('/')} (${err.message})`);
      }
      if (started !== 'timeout' && 'error' in started) {
        const late = await within(m.put('return', 0), 1000);
        if (late === 'timeout' || 'value' in late) v.push(`put() after a failed start() ${late === 'timeout' ? 'did not settle' : 'was accepted'}`);
        if (collected.size || events.size) v.push(`outcomes after a failed start(): ${collected.size}`);
      }
      return { violations: v, elapsedMs: startMs, boundMs: startBound, accepted: 0, startRejectedMs, queueFull: 0, signalled: 0, signalCancelled: 0 };
    }
    if (started === 'timeout' || 'error' in started) {
      v.push(`start() ${started === 'timeout' ? 'did not resolve in time' : `rejected: ${String(started.error)}`}`);
      return { violations: v, elapsedMs, boundMs, accepted: 0, queueFull: 0, signalled: 0, signalCancelled: 0 };
    }

    const t0 = Date.now();
    let trigger!: () => void;
    const triggered = new Promise<void>((r) => (trigger = r));
    const afterPuts = sc.ending.kind === 'join' ? Infinity : sc.ending.afterPuts;
    if (afterPuts === 0) trigger();
    const putting = (async () => {
      for (let i = 0; i < sc.tasks.length; i++) {
        const t = sc.tasks[i]!;
        const args = taskArgs(t, i);
        const p0 = Date.now();
        try {
          let id: number;
          if (t.abortAfterMs === undefined) id = await m.put(...args);
          else {
            const ac = new AbortController();
            if (t.abortAfterMs < 0) ac.abort();
            else abortTimers.push(setTimeout(() => ac.abort(), t.abortAfterMs));
            id = await m.submit(args, { signal: ac.signal });
          }
          putWaits.push(Date.now() - p0);
          accepted.push({ id, index: i });
          if (accepted.length >= afterPuts) trigger();
        } catch (err) {
          const waitedMs = Date.now() - p0;
          putWaits.push(waitedMs);
          putErrors.push({ index: i, name: (err as Error).name, error: `${(err as Error).name}: ${(err as Error).message}`, afterEnding: endingCalled, waitedMs });
        }
      }
      trigger();
    })();

    const run = (async () => {
      if (sc.ending.kind === 'join') {
        await putting;
        endingCalled = true;
        return m.join();
      }
      await Promise.race([triggered, sleep(sc.ending.stallMs)]);
      endingCalled = true;
      const ending = sc.ending.kind === 'graceful' ? m.gracefulShutdown({ timeout: sc.ending.timeout }) : m.terminate();
      const [sum] = await Promise.all([ending, putting]);
      return sum;
    })();

    const ended = await within(run, boundMs);
    elapsedMs = Date.now() - t0;
    if (ended === 'timeout') {
      v.push(`HANG: the run did not end within its bound of ${boundMs} ms (ending ${sc.ending.kind}, ${accepted.length} accepted, ${[...collected.keys()].length} outcomes)`);
    } else if ('error' in ended) {
      v.push(`the ending rejected: ${String(ended.error)}`);
    } else {
      summary = ended.value;
      checkOutcomes(sc, summary, m, accepted, putErrors, collected, events, engineErrors, v);
      // putTimeout bounds every put(): it is accepted or rejects within putTimeout (+ event-loop lag).
      const lag = 1500;
      if (s.putTimeout !== undefined) {
        const slowest = Math.max(0, ...putWaits);
        if (slowest > s.putTimeout + lag) v.push(`a put() waited ${slowest} ms with putTimeout ${s.putTimeout}`);
      }
    }
  } finally {
    clearInterval(sampler);
    for (const t of abortTimers) clearTimeout(t);
    sample();
    if (!summary && startRejectedMs === undefined) {
      // Start failed, the ending hung or rejected: stop the engine, bounded; then kill, by pid,
      // whatever the run started and left.
      await within(m.terminate(), 10_000);
    }
    const left = await waitGone(seen, 5000);
    const stray = childPids().filter((p) => !before.has(p) && isAlive(p));
    const leftovers = [...new Set([...left, ...stray])];
    if (leftovers.length) {
      v.push(`child processes left 5 s after the ending: ${leftovers.join(', ')}`);
      for (const pid of leftovers) {
        try { process.kill(-pid, 'SIGKILL'); } catch { /* not a group leader, or gone */ }
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
      await waitGone(leftovers, 2000);
    }
  }
  const signalledIds = accepted.filter((a) => sc.tasks[a.index]!.abortAfterMs !== undefined).map((a) => a.id);
  return {
    violations: v,
    elapsedMs,
    boundMs,
    accepted: accepted.length,
    summary,
    startRejectedMs,
    queueFull: putErrors.filter((e) => e.name === 'QueueFullError').length,
    signalled: signalledIds.length,
    signalCancelled: signalledIds.filter((id) => collected.get(id)?.[0]?.meta.status === 'cancelled').length,
  };
}

function checkOutcomes(
  sc: Scenario,
  summary: FinalSummary,
  m: MPMS,
  accepted: { id: number; index: number }[],
  putErrors: PutError[],
  collected: Map<number, { meta: Meta; result: unknown }[]>,
  events: Map<number, Meta[]>,
  engineErrors: string[],
  v: string[],
): void {
  const s = sc.settings;
  const ids = new Map(accepted.map((a) => [a.id, a.index]));
  if (ids.size !== accepted.length) v.push(`put() returned a task id twice: ${accepted.map((a) => a.id).join(',')}`);

  // Exactly one outcome per accepted task, through both the collector and the 'task' event.
  for (const { id, index } of accepted) {
    const b = sc.tasks[index]!;
    const got = collected.get(id) ?? [];
    const ev = events.get(id) ?? [];
    if (got.length !== 1) v.push(`task ${id} (#${index} ${b.kind}): ${got.length} outcomes at the collector (${got.map((g) => g.meta.status).join(',')})`);
    if (ev.length !== 1) v.push(`task ${id} (#${index} ${b.kind}): ${ev.length} 'task' events`);
    if (got.length !== 1) continue;
    const { meta, result } = got[0]!;
    if (ev.length === 1 && ev[0]!.status !== meta.status) v.push(`task ${id}: collector says ${meta.status}, 'task' event says ${ev[0]!.status}`);
    const allowed = allowedStatuses(b, sc);
    if (!allowed.has(meta.status)) v.push(`task ${id} (#${index} ${JSON.stringify(b)}): status ${meta.status}, allowed ${[...allowed].join('/')} (result: ${describe(result)})`);
    if (meta.attempts > 1 + s.retries) v.push(`task ${id}: ${meta.attempts} attempts with retries ${s.retries}`);
    // The result matches the status, and belongs to this task.
    const [, value] = taskArgs(b, index);
    switch (meta.status) {
      case 'ok': if (result !== value) v.push(`task ${id} (#${index} ${b.kind}): ok with result ${describe(result)}, expected ${value}`); break;
      case 'error':
        if (!(result instanceof Error)) v.push(`task ${id}: error with a non-Error result ${describe(result)}`);
        else if (b.kind === 'throw' && (result.name !== 'RangeError' || result.message !== `thrown on purpose ${index}`)) v.push(`task ${id} (#${index} throw): error ${describe(result)} is not its own`);
        else if (b.kind === 'gracefulDie' && result.name !== 'WorkerGracefulDie') v.push(`task ${id} (#${index} gracefulDie): error ${describe(result)}`);
        else if (b.kind === 'unsendable' && result.name !== 'SerializationError') v.push(`task ${id} (#${index} unsendable): error ${describe(result)}`);
        break;
      case 'timeout': if (!(result instanceof TaskTimeoutError)) v.push(`task ${id}: timeout with ${describe(result)}`); break;
      case 'crashed': if (!(result instanceof WorkerCrashedError)) v.push(`task ${id}: crashed with ${describe(result)}`); break;
      case 'cancelled': if (!(result instanceof TaskCancelledError)) v.push(`task ${id}: cancelled with ${describe(result)}`); break;
    }
  }
  // No outcome for an id put() never returned.
  for (const id of collected.keys()) if (!ids.has(id)) v.push(`an outcome for task ${id}, which put() never returned`);
  for (const id of events.keys()) if (!ids.has(id)) v.push(`a 'task' event for task ${id}, which put() never returned`);

  // The summary adds up, matches what was accepted and seen, and metrics() agrees.
  const counts: Record<Status, number> = { ok: 0, error: 0, timeout: 0, crashed: 0, cancelled: 0 };
  for (const list of collected.values()) for (const g of list) counts[g.meta.status]++;
  const sum = STATUSES.reduce((a, k) => a + summary[k], 0);
  if (summary.total !== sum) v.push(`summary does not add up: total ${summary.total}, parts ${sum} (${JSON.stringify(summary)})`);
  if (summary.total !== accepted.length) v.push(`summary.total ${summary.total} !== ${accepted.length} accepted`);
  for (const k of STATUSES) if (summary[k] !== counts[k]) v.push(`summary.${k} ${summary[k]} !== ${counts[k]} seen by the collector`);
  const mx = m.metrics();
  for (const k of STATUSES) if (mx.outcomes[k] !== summary[k]) v.push(`metrics().outcomes.${k} ${mx.outcomes[k]} !== summary.${k} ${summary[k]}`);
  if (mx.total !== summary.total) v.push(`metrics().total ${mx.total} !== summary.total ${summary.total}`);
  if (mx.processesAlive !== 0) v.push(`metrics().processesAlive ${mx.processesAlive} after the ending`);

  // put() only fails once the ending was called — or after a crash loop made the engine give up —
  // or, with a putTimeout, with QueueFullError after waiting at least putTimeout (that task was
  // never accepted: it has no id, and no outcome, checked above).
  const gaveUp = engineErrors.length > 0;
  const queueFull = (e: PutError) => e.name === 'QueueFullError' && s.putTimeout !== undefined;
  for (const e of putErrors) {
    if (e.name === 'QueueFullError' && s.putTimeout === undefined) v.push(`put() of task #${e.index} rejected with QueueFullError without a putTimeout`);
    // setTimeout may fire up to 1 ms early (rounding).
    if (queueFull(e) && e.waitedMs < s.putTimeout! - 1) v.push(`put() of task #${e.index} rejected with QueueFullError after ${e.waitedMs} ms < putTimeout ${s.putTimeout}`);
    if (!e.afterEnding && !gaveUp && !queueFull(e)) v.push(`put() of task #${e.index} rejected before the ending: ${e.error}`);
  }
  const otherErrors = putErrors.filter((e) => !queueFull(e));
  if (sc.ending.kind === 'join' && otherErrors.length && !gaveUp) v.push(`join(): ${otherErrors.length} put()s rejected (${otherErrors.map((e) => e.error).join(' | ')})`);
  if (accepted.length + putErrors.length !== sc.tasks.length) v.push(`${accepted.length} accepted + ${putErrors.length} rejected !== ${sc.tasks.length} put`);
  // The engine gives up only after a crash loop, which only SIGKILLs can cause here.
  if (engineErrors.length && !sc.tasks.some((t) => t.kind === 'sigkill')) v.push(`'error' event(s) without any sigkill task: ${engineErrors.join(' | ')}`);
  // With join() and no crashing behaviour, only a task's own AbortSignal can make it anything but ok/error.
  if (sc.ending.kind === 'join' && !hasCrashers(sc)) {
    let signalledCancelled = 0;
    for (const { id, index } of accepted) if (sc.tasks[index]!.abortAfterMs !== undefined && collected.get(id)?.[0]?.meta.status === 'cancelled') signalledCancelled++;
    if (summary.ok + summary.error + signalledCancelled !== summary.total) v.push(`join() with no crashing behaviour, yet ${JSON.stringify(summary)} (${signalledCancelled} cancelled by their own signal)`);
  }
}

function describe(x: unknown): string {
  if (x instanceof Error) return `${x.name}: ${x.message}`;
  if (typeof x === 'function') return '[function]';
  try {
    return JSON.stringify(x) ?? String(x);
  } catch {
    return String(x);
  }
}
