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
  type FinalSummary,
  type Meta,
} from '../../dist/index.js';
import pino from 'pino';
import { childPids, fixture, isAlive, waitGone } from '../helpers.js';
import { allowedStatuses, hasCrashers, runBoundMs, taskArgs, type Scenario, type Status } from './model.js';

const worker = fixture('property-worker.mjs');
const STATUSES: Status[] = ['ok', 'error', 'timeout', 'crashed', 'cancelled'];

export interface RunReport {
  violations: string[];
  elapsedMs: number;
  boundMs: number;
  accepted: number;
  summary?: FinalSummary;
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
  const putErrors: { index: number; error: string; afterEnding: boolean }[] = [];
  let endingCalled = false;
  let elapsedMs = 0;
  let summary: FinalSummary | undefined;
  try {
    const started = await within(m.start(), 3 * s.hookTimeout + 15_000);
    sample();
    if (started === 'timeout' || 'error' in started) {
      v.push(`start() ${started === 'timeout' ? 'did not resolve in time' : `rejected: ${String(started.error)}`}`);
      return { violations: v, elapsedMs, boundMs, accepted: 0 };
    }

    const t0 = Date.now();
    let trigger!: () => void;
    const triggered = new Promise<void>((r) => (trigger = r));
    const afterPuts = sc.ending.kind === 'join' ? Infinity : sc.ending.afterPuts;
    if (afterPuts === 0) trigger();
    const putting = (async () => {
      for (let i = 0; i < sc.tasks.length; i++) {
        try {
          const id = await m.put(...taskArgs(sc.tasks[i]!, i));
          accepted.push({ id, index: i });
          if (accepted.length >= afterPuts) trigger();
        } catch (err) {
          putErrors.push({ index: i, error: `${(err as Error).name}: ${(err as Error).message}`, afterEnding: endingCalled });
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
    }
  } finally {
    clearInterval(sampler);
    sample();
    if (!summary) {
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
  return { violations: v, elapsedMs, boundMs, accepted: accepted.length, summary };
}

function checkOutcomes(
  sc: Scenario,
  summary: FinalSummary,
  m: MPMS,
  accepted: { id: number; index: number }[],
  putErrors: { index: number; error: string; afterEnding: boolean }[],
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

  // put() only fails once the ending was called — or after a crash loop made the engine give up.
  const gaveUp = engineErrors.length > 0;
  for (const e of putErrors) if (!e.afterEnding && !gaveUp) v.push(`put() of task #${e.index} rejected before the ending: ${e.error}`);
  if (sc.ending.kind === 'join' && putErrors.length && !gaveUp) v.push(`join(): ${putErrors.length} put()s rejected`);
  // The engine gives up only after a crash loop, which only SIGKILLs can cause here.
  if (engineErrors.length && !sc.tasks.some((t) => t.kind === 'sigkill')) v.push(`'error' event(s) without any sigkill task: ${engineErrors.join(' | ')}`);
  if (sc.ending.kind === 'join' && !hasCrashers(sc) && summary.ok + summary.error !== summary.total) v.push(`join() with no crashing behaviour, yet ${JSON.stringify(summary)}`);
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
