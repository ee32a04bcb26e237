/**
 * Runs one scenario of the property suite against the real engine (real child processes, real
 * threads) and returns every invariant it broke. Most runs drive the engine inside this process;
 * `sigterm` runs drive it in a real master script (test/fixtures/property-master.mjs) and read
 * what it reports. Every wait is bounded; whatever happens, no process the run started — child
 * or grandchild — is left behind.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MPMS, WorkerStartError, type FinalSummary, type Metrics } from '../../dist/index.js';
import pino from 'pino';
import { childPids, fixture, isAlive, waitGone } from '../helpers.js';
import { engineOptions, plainOutcome, putAll } from './drive.mjs';
import { allowedStatuses, failingInitializer, hasCrashers, hasProcessKillers, hookInitArgs, runBoundMs, startFailBoundMs, taskArgs, type Scenario, type Status } from './model.js';

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

/** A put() or submit() that rejected: which task, why, whether the ending (or close()) was already called, how long it waited. */
interface PutError {
  index: number;
  name: string;
  error: string;
  afterEnding: boolean;
  afterClose: boolean;
  waitedMs: number;
}

/** An outcome as plain data (drive.mjs, plainOutcome): the same whether the engine ran here or in a script. */
interface Outcome {
  meta: { taskId: number; status: Status; attempts: number; startedAt?: number; processIndex?: number; threadIndex?: number; pid?: number };
  value?: unknown;
  error?: { cls: string; name: string; message: string };
}

/** What a run saw, wherever the engine ran. */
interface Observed {
  accepted: { id: number; index: number; afterClose: boolean }[];
  putErrors: PutError[];
  putWaits: number[];
  collected: Map<number, Outcome[]>;
  events: Map<number, Status[]>;
  engineErrors: string[];
}

function observed(): Observed {
  return { accepted: [], putErrors: [], putWaits: [], collected: new Map(), events: new Map(), engineErrors: [] };
}

function record(o: Observed, out: Outcome): void {
  const list = o.collected.get(out.meta.taskId) ?? [];
  list.push(out);
  o.collected.set(out.meta.taskId, list);
}

function recordEvent(o: Observed, taskId: number, status: Status): void {
  const list = o.events.get(taskId) ?? [];
  list.push(status);
  o.events.set(taskId, list);
}

const sleep = (ms: number) => new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref());

/** Races `p` against `ms`; `'timeout'` if it did not settle in time. Rejections come back as values. */
async function within<T>(p: Promise<T>, ms: number): Promise<{ value: T } | { error: unknown } | 'timeout'> {
  return Promise.race([p.then((value) => ({ value }), (error: unknown) => ({ error })), sleep(ms)]);
}

export async function runScenario(sc: Scenario): Promise<RunReport> {
  // Where grandchild tasks record their grandchildren's pids.
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mpms-fc-'));
  try {
    const report = sc.ending.kind === 'sigterm' && !failingInitializer(sc) ? await runInScript(sc, runDir) : await runHere(sc, runDir);
    await checkGrandchildren(runDir, report.violations);
    return report;
  } finally {
    fs.rmSync(runDir, { recursive: true, force: true });
  }
}

/**
 * No grandchild survives the engine's teardown: the engine SIGKILLs each child's process group
 * when the child exits (ChildHandle.killGroup from onChildExit), whether it retired, crashed, was
 * killed or stopped, and every child has exited once join()/shutdown resolved. Called after the
 * ending resolved (and, for scripts, after the script exited); allows the few seconds the
 * guarantee allows, then kills, by pid, whatever is left, so a failure leaves nothing behind.
 */
async function checkGrandchildren(runDir: string, v: string[]): Promise<void> {
  let pids: number[] = [];
  try {
    pids = fs.readFileSync(path.join(runDir, 'grandchildren'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return; // no grandchild task ran
  }
  const until = Date.now() + 5000;
  let alive = pids.filter(isRunning);
  while (alive.length && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 25));
    alive = alive.filter(isRunning);
  }
  if (!alive.length) return;
  v.push(`grandchild processes alive 5 s after the ending: ${alive.join(', ')} (of ${pids.length} recorded)`);
  for (const pid of alive) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  await waitGone(alive, 2000);
}

/**
 * A recorded grandchild pid still runs: it exists, is not a zombie waiting for a reaper (once its
 * parent, a child of the engine, is gone it is reparented), and is still a `sleep` (not a reused pid).
 */
function isRunning(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X' && stat.includes('(sleep)');
  } catch {
    return process.platform !== 'linux' && isAlive(pid);
  }
}

/** Runs the scenario with the engine in this process. */
async function runHere(sc: Scenario, runDir: string): Promise<RunReport> {
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
  const o = observed();
  const m = new MPMS({
    ...engineOptions(sc, worker, hookInitArgs(sc)),
    // The engine's own warnings (threads terminated, crashes) are expected here; MPMS_FC_VERBOSE shows them.
    logger: pino({ level: process.env.MPMS_FC_VERBOSE ? 'warn' : 'silent' }, pino.destination(2)),
    collector: (meta, result) => record(o, plainOutcome(meta, result) as Outcome),
  });
  m.on('task', (meta) => recordEvent(o, meta.taskId, meta.status));
  m.on('error', (err) => o.engineErrors.push(String((err as Error)?.message ?? err)));

  const sampler = setInterval(sample, 150);
  const timers: NodeJS.Timeout[] = [];
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
        if (o.collected.size || o.events.size) v.push(`outcomes after a failed start(): ${o.collected.size}`);
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
    const afterPuts = sc.ending.kind === 'join' || sc.ending.kind === 'sigterm' ? Infinity : sc.ending.afterPuts;
    if (afterPuts === 0) trigger();
    const putting = putAll(m, sc, runDir, {
      onAccepted: (id: number, index: number, afterClose: boolean) => {
        o.accepted.push({ id, index, afterClose });
        if (o.accepted.length >= afterPuts) trigger();
      },
      onRejected: (r: Omit<PutError, 'afterEnding'>) => o.putErrors.push({ ...r, afterEnding: endingCalled }),
      onWait: (ms: number) => o.putWaits.push(ms),
      timers,
    }).then(() => trigger());

    const run = (async () => {
      if (sc.ending.kind === 'join' || sc.ending.kind === 'sigterm') {
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
      v.push(`HANG: the run did not end within its bound of ${boundMs} ms (ending ${sc.ending.kind}, ${o.accepted.length} accepted, ${o.collected.size} outcomes)`);
    } else if ('error' in ended) {
      v.push(`the ending rejected: ${String(ended.error)}`);
    } else {
      summary = ended.value;
      checkOutcomes(sc, summary, m.metrics(), o, v);
    }
  } finally {
    clearInterval(sampler);
    for (const t of timers) clearTimeout(t);
    sample();
    if (!summary && startRejectedMs === undefined) {
      // Start failed, the ending hung or rejected: stop the engine, bounded; then kill, by pid,
      // whatever the run started and left.
      await within(m.terminate(), 10_000);
    }
    const stray = () => childPids().filter((p) => !before.has(p) && isAlive(p));
    await reapChildren([...seen, ...stray()], v);
  }
  return report(sc, v, elapsedMs, boundMs, o, summary, startRejectedMs);
}

/**
 * Runs a `sigterm` scenario: the engine in a real master script with handleSignals, which gets
 * SIGTERM once `afterPuts` puts were accepted or `stallMs` after its start() resolved. The run
 * is timed from then to the script's exit, which it must reach by itself, with code 0.
 */
async function runInScript(sc: Scenario, runDir: string): Promise<RunReport> {
  if (sc.ending.kind !== 'sigterm') throw new Error('runInScript: not a sigterm scenario');
  const ending = sc.ending;
  const v: string[] = [];
  const boundMs = runBoundMs(sc);
  const startBound = 3 * sc.settings.hookTimeout + 15_000;
  const o = observed();
  const file = path.join(runDir, 'scenario.json');
  fs.writeFileSync(file, JSON.stringify({ scenario: sc, initArgs: hookInitArgs(sc) }));
  const proc = spawn(process.execPath, [fixture('property-master.mjs'), file, runDir], { stdio: ['ignore', 'pipe', process.env.MPMS_FC_VERBOSE ? 'inherit' : 'ignore'] });
  const seen = new Set<number>();
  const sample = () => {
    try {
      if (proc.pid !== undefined && proc.exitCode === null && proc.signalCode === null) for (const p of childPids(proc.pid)) seen.add(p);
    } catch {
      /* ps raced an exiting child */
    }
  };
  const sampler = setInterval(sample, 150);
  let t0 = 0;
  let signalledAt = 0;
  let final: { summary: FinalSummary; metrics: Metrics; signalled: boolean } | undefined;
  const badLines: string[] = [];
  /** The script's 'exit' event fired: it was ending by itself. */
  let exiting = false;
  let stall: NodeJS.Timeout | undefined;
  const sigterm = () => {
    if (signalledAt || proc.exitCode !== null || proc.signalCode !== null) return;
    signalledAt = Date.now();
    sample();
    try {
      proc.kill('SIGTERM');
    } catch {
      /* it just ended */
    }
  };
  let started!: () => void;
  const startedP = new Promise<void>((r) => (started = r));
  let buf = '';
  proc.stdout!.on('data', (d: Buffer) => {
    buf += d.toString('utf8');
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let msg: Record<string, unknown> & { t?: string };
      try {
        msg = JSON.parse(line);
      } catch {
        badLines.push(line);
        continue;
      }
      switch (msg.t) {
        case 'started':
          t0 = Date.now();
          started();
          sample();
          if (ending.afterPuts === 0) sigterm();
          else stall = setTimeout(sigterm, ending.stallMs);
          break;
        case 'accepted':
          o.accepted.push({ id: msg.id as number, index: msg.index as number, afterClose: !!msg.afterClose });
          if (o.accepted.length >= ending.afterPuts) sigterm();
          break;
        case 'rejected':
          o.putErrors.push(msg as unknown as PutError);
          break;
        case 'wait':
          o.putWaits.push(msg.ms as number);
          break;
        case 'outcome':
          record(o, msg as unknown as Outcome);
          break;
        case 'event':
          recordEvent(o, msg.taskId as number, msg.status as Status);
          break;
        case 'engineError':
          o.engineErrors.push(msg.message as string);
          break;
        case 'summary':
          final = msg as unknown as typeof final;
          break;
        case 'exit':
          exiting = true;
          break;
      }
    }
  });
  // Its exit, then the end of its stdout (bounded: a child left behind would hold the pipe open),
  // so every line it wrote has been read.
  const stdoutEnded = new Promise<void>((resolve) => proc.stdout!.once('end', resolve).once('close', resolve));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal }))).then(async (r) => {
    await within(stdoutEnded, 3000);
    return r;
  });
  let elapsedMs = 0;
  try {
    const up = await within(Promise.race([startedP, exited]), startBound);
    if (up === 'timeout' || !t0) {
      v.push(`the master script ${up === 'timeout' ? `did not start its engine within ${startBound} ms` : 'exited before its engine started'}`);
    } else {
      const end = await within(exited, boundMs);
      elapsedMs = Date.now() - t0;
      if (end === 'timeout') {
        v.push(`HANG: the master script did not exit within its bound of ${boundMs} ms (${signalledAt ? `SIGTERM sent ${signalledAt - t0} ms after start` : 'no SIGTERM sent'}, ${o.accepted.length} accepted, ${o.collected.size} outcomes)`);
      } else if ('value' in end) {
        const { code, signal } = end.value;
        // A SIGTERM sent as the script was ending by itself (after its 'exit' event, while Node
        // closes its handles and the default action is back) kills it: it had ended anyway.
        const endedAnyway = signal === 'SIGTERM' && exiting;
        if ((code !== 0 || signal) && !endedAnyway) v.push(`the master script exited with code ${code} signal ${signal} (it must end by itself, code 0)`);
        if (!final) v.push('the master script printed no summary: join() did not resolve');
        else checkOutcomes(sc, final.summary, final.metrics, o, v);
        if (badLines.length) v.push(`the master script printed lines that are not JSON: ${badLines.slice(0, 3).join(' | ')}`);
      }
    }
  } finally {
    clearInterval(sampler);
    clearTimeout(stall);
    if (proc.exitCode === null && proc.signalCode === null) {
      try {
        proc.kill('SIGKILL');
      } catch {
        /* gone */
      }
      await within(exited, 5000);
    }
    await reapChildren([...seen], v);
  }
  return report(sc, v, elapsedMs, boundMs, o, final?.summary, undefined);
}

/** Checks that no child the run started is alive 5 s after its ending; SIGKILLs (group, then pid) any that is. */
async function reapChildren(pids: number[], v: string[]): Promise<void> {
  const leftovers = await waitGone(new Set(pids), 5000);
  if (!leftovers.length) return;
  v.push(`child processes left 5 s after the ending: ${leftovers.join(', ')}`);
  for (const pid of leftovers) {
    try { process.kill(-pid, 'SIGKILL'); } catch { /* not a group leader, or gone */ }
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
  await waitGone(leftovers, 2000);
}

function report(sc: Scenario, v: string[], elapsedMs: number, boundMs: number, o: Observed, summary: FinalSummary | undefined, startRejectedMs: number | undefined): RunReport {
  const signalledIds = o.accepted.filter((a) => sc.tasks[a.index]!.abortAfterMs !== undefined).map((a) => a.id);
  return {
    violations: v,
    elapsedMs,
    boundMs,
    accepted: o.accepted.length,
    summary,
    startRejectedMs,
    queueFull: o.putErrors.filter((e) => e.name === 'QueueFullError').length,
    signalled: signalledIds.length,
    signalCancelled: signalledIds.filter((id) => o.collected.get(id)?.[0]?.meta.status === 'cancelled').length,
  };
}

function checkOutcomes(sc: Scenario, summary: FinalSummary, mx: Metrics, o: Observed, v: string[]): void {
  const s = sc.settings;
  const { accepted, putErrors, collected, events, engineErrors } = o;
  const ids = new Map(accepted.map((a) => [a.id, a.index]));
  if (ids.size !== accepted.length) v.push(`put() returned a task id twice: ${accepted.map((a) => a.id).join(',')}`);

  // Exactly one outcome per accepted task, through both the collector and the 'task' event.
  for (const { id, index, afterClose } of accepted) {
    const b = sc.tasks[index]!;
    if (afterClose) v.push(`task ${id} (#${index}) was accepted by a put() issued after close()`);
    const got = collected.get(id) ?? [];
    const ev = events.get(id) ?? [];
    if (got.length !== 1) v.push(`task ${id} (#${index} ${b.kind}): ${got.length} outcomes at the collector (${got.map((g) => g.meta.status).join(',')})`);
    if (ev.length !== 1) v.push(`task ${id} (#${index} ${b.kind}): ${ev.length} 'task' events`);
    if (got.length !== 1) continue;
    const g = got[0]!;
    const { meta } = g;
    if (ev.length === 1 && ev[0] !== meta.status) v.push(`task ${id}: collector says ${meta.status}, 'task' event says ${ev[0]}`);
    const allowed = allowedStatuses(b, sc);
    if (!allowed.has(meta.status)) v.push(`task ${id} (#${index} ${JSON.stringify(b)}): status ${meta.status}, allowed ${[...allowed].join('/')} (result: ${describeOutcome(g)})`);
    if (meta.attempts > 1 + s.retries) v.push(`task ${id}: ${meta.attempts} attempts with retries ${s.retries}`);
    // The result matches the status, and belongs to this task.
    const [, value] = taskArgs(b, index);
    const e = g.error;
    switch (meta.status) {
      case 'ok': if (g.value !== value) v.push(`task ${id} (#${index} ${b.kind}): ok with result ${describeOutcome(g)}, expected ${String(value)}`); break;
      case 'error':
        if (!e || e.cls === 'not an Error') v.push(`task ${id}: error with a non-Error result ${describeOutcome(g)}`);
        else if (b.kind === 'throw' && (e.name !== 'RangeError' || e.message !== `thrown on purpose ${index}`)) v.push(`task ${id} (#${index} throw): error ${describeOutcome(g)} is not its own`);
        else if (b.kind === 'gracefulDie' && e.name !== 'WorkerGracefulDie') v.push(`task ${id} (#${index} gracefulDie): error ${describeOutcome(g)}`);
        else if (b.kind === 'unsendable' && e.name !== 'SerializationError') v.push(`task ${id} (#${index} unsendable): error ${describeOutcome(g)}`);
        break;
      case 'timeout': if (e?.cls !== 'TaskTimeoutError') v.push(`task ${id}: timeout with ${describeOutcome(g)}`); break;
      case 'crashed': if (e?.cls !== 'WorkerCrashedError') v.push(`task ${id}: crashed with ${describeOutcome(g)}`); break;
      case 'cancelled': if (e?.cls !== 'TaskCancelledError') v.push(`task ${id}: cancelled with ${describeOutcome(g)}`); break;
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
  for (const k of STATUSES) if (mx.outcomes[k] !== summary[k]) v.push(`metrics().outcomes.${k} ${mx.outcomes[k]} !== summary.${k} ${summary[k]}`);
  if (mx.total !== summary.total) v.push(`metrics().total ${mx.total} !== summary.total ${summary.total}`);
  if (mx.processesAlive !== 0) v.push(`metrics().processesAlive ${mx.processesAlive} after the ending`);

  // put() only fails once the ending was called or close() was — or after a crash loop made the
  // engine give up — or, with a putTimeout, with QueueFullError after waiting at least putTimeout
  // (that task was never accepted: it has no id, and no outcome, checked above).
  const gaveUp = engineErrors.length > 0;
  const queueFull = (e: PutError) => e.name === 'QueueFullError' && s.putTimeout !== undefined;
  for (const e of putErrors) {
    if (e.name === 'QueueFullError' && s.putTimeout === undefined) v.push(`put() of task #${e.index} rejected with QueueFullError without a putTimeout`);
    // setTimeout may fire up to 1 ms early (rounding).
    if (queueFull(e) && e.waitedMs < s.putTimeout! - 1) v.push(`put() of task #${e.index} rejected with QueueFullError after ${e.waitedMs} ms < putTimeout ${s.putTimeout}`);
    if (!e.afterEnding && !e.afterClose && !gaveUp && !queueFull(e)) v.push(`put() of task #${e.index} rejected before the ending: ${e.error}`);
  }
  // putTimeout bounds every put(): it is accepted or rejects within putTimeout (+ event-loop lag).
  if (s.putTimeout !== undefined) {
    const slowest = Math.max(0, ...o.putWaits);
    if (slowest > s.putTimeout + 1500) v.push(`a put() waited ${slowest} ms with putTimeout ${s.putTimeout}`);
  }
  const otherErrors = putErrors.filter((e) => !queueFull(e) && !e.afterClose);
  if (sc.ending.kind === 'join' && otherErrors.length && !gaveUp) v.push(`join(): ${otherErrors.length} put()s rejected (${otherErrors.map((e) => e.error).join(' | ')})`);
  if (accepted.length + putErrors.length !== sc.tasks.length) v.push(`${accepted.length} accepted + ${putErrors.length} rejected !== ${sc.tasks.length} put`);
  // The engine gives up only after a crash loop, which only tasks that kill their process can cause here.
  if (engineErrors.length && !hasProcessKillers(sc)) v.push(`'error' event(s) without any sigkill/abort task: ${engineErrors.join(' | ')}`);
  // With join() and no crashing behaviour, only a task's own AbortSignal can make it anything but ok/error.
  if (sc.ending.kind === 'join' && !hasCrashers(sc)) {
    let signalledCancelled = 0;
    for (const { id, index } of accepted) if (sc.tasks[index]!.abortAfterMs !== undefined && collected.get(id)?.[0]?.meta.status === 'cancelled') signalledCancelled++;
    if (summary.ok + summary.error + signalledCancelled !== summary.total) v.push(`join() with no crashing behaviour, yet ${JSON.stringify(summary)} (${signalledCancelled} cancelled by their own signal)`);
  }
}

function describeOutcome(g: Outcome): string {
  if (g.error) return `${g.error.cls === g.error.name ? '' : `${g.error.cls} `}${g.error.name}: ${g.error.message}`;
  return describe(g.value);
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
