/**
 * Runs one scenario of the property suite against the real engine (real child processes, real
 * threads) and returns every invariant it broke. The user's side (drive.mjs) drives the engine
 * inside this process, or — for runs that may threaten the master itself (a signal, throwing
 * listeners, values that cannot cross) — in a real master script
 * (test/fixtures/property-master.mjs) whose reports it reads, and whose exit it checks: by
 * itself, code 0, no crash, no unhandled rejection. Every wait is bounded; whatever happens, no
 * process the run started — child or grandchild — is left behind.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { type FinalSummary, type Metrics, MPMS, WorkerStartError } from '../../dist/index.js';
import { childPids, fixture, isAlive, waitGone } from '../helpers.js';
import { runBoundMs, startFailBoundMs } from './bound.js';
import { apply, checkRun, describe, type Observed, observed } from './check.js';
import { engineOptions, User } from './drive.mjs';
import { failingInitializer, hookInitArgs, needsScript, type Scenario } from './model.js';

const worker = fixture('property-worker.mjs');

export interface RunReport {
  violations: string[];
  elapsedMs: number;
  boundMs: number;
  accepted: number;
  summary?: FinalSummary;
  /** Set when the run ended at start() (a failing initializer): how long start() took to reject. */
  startRejectedMs?: number;
  /** The run's engine lived in a master script. */
  script: boolean;
  /** Coverage: put()s rejected with QueueFullError; resolved without a taskId; tasks with a signal, and of those, cancelled. */
  queueFull: number;
  notAccepted: number;
  signalled: number;
  signalCancelled: number;
  /** Coverage of the user's side: follow-up puts issued, callbacks that threw, restarts seen, how the iterator ended. */
  followUps: number;
  callbacksThrew: number;
  restarts: number;
  reader?: string;
}

const sleep = (ms: number) => new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref());

/** Races `p` against `ms`; `'timeout'` if it did not settle in time. Rejections come back as values. */
async function within<T>(p: Promise<T>, ms: number): Promise<{ value: T } | { error: unknown } | 'timeout'> {
  return Promise.race([
    p.then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    ),
    sleep(ms),
  ]);
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

export async function runScenario(sc: Scenario): Promise<RunReport> {
  // Where grandchild tasks record their grandchildren's pids.
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mpms-fc-'));
  try {
    const report =
      needsScript(sc) && !failingInitializer(sc) ? await runInScript(sc, runDir) : await runHere(sc, runDir);
    await checkGrandchildren(runDir, report.violations);
    return report;
  } finally {
    fs.rmSync(runDir, { recursive: true, force: true });
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
  const user = new User(sc, runDir, (msg: Record<string, unknown>) => apply(o, msg));
  const m = new MPMS({
    ...engineOptions(sc, worker, hookInitArgs(sc)),
    // The engine's own warnings (threads terminated, crashes) are expected here; MPMS_FC_VERBOSE shows them.
    logger: pino({ level: process.env.MPMS_FC_VERBOSE ? 'warn' : 'silent' }, pino.destination(2)),
    collector: user.collector,
  });
  user.attach(m);
  // The master must never leave a promise of its own rejected and unhandled.
  const unhandled = (reason: unknown) => v.push(`unhandled rejection in the master: ${describe(reason)}`);
  process.on('unhandledRejection', unhandled);

  const sampler = setInterval(sample, 150);
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
      startRejectedMs = checkFailedStart(sc, m, started, startBound, startMs, v);
      if (startRejectedMs !== undefined) {
        const late = await within(m.put('return', 0), 1000);
        if (late === 'timeout' || ('value' in late && late.value !== undefined))
          v.push(`put() after a failed start() ${late === 'timeout' ? 'did not settle' : 'was accepted'}`);
        if (o.outcomes.size || o.events.size) v.push(`outcomes after a failed start(): ${o.events.size}`);
      }
      return report(sc, v, startMs, startBound, o, undefined, startRejectedMs, false);
    }
    if (started === 'timeout' || 'error' in started) {
      v.push(`start() ${started === 'timeout' ? 'did not resolve in time' : `rejected: ${String(started.error)}`}`);
      return report(sc, v, 0, boundMs, o, undefined, undefined, false);
    }
    const t0 = Date.now();
    const ended = await within(user.run(), boundMs);
    elapsedMs = Date.now() - t0;
    if (ended === 'timeout') {
      v.push(
        `HANG: the run did not end within its bound of ${boundMs} ms (ending ${sc.ending.kind}, ${hangState(o, m)})`,
      );
    } else if ('error' in ended) {
      v.push(`the run rejected: ${describe(ended.error)}`);
    } else {
      summary = ended.value as FinalSummary;
      checkRun(sc, summary, m.metrics(), o, v);
    }
  } finally {
    clearInterval(sampler);
    for (const t of user.timers) clearTimeout(t);
    sample();
    if (!summary && startRejectedMs === undefined) {
      // Start failed, the ending hung or rejected: stop the engine, bounded; then kill, by pid,
      // whatever the run started and left.
      await within(m.terminate(), 10_000);
    }
    process.off('unhandledRejection', unhandled);
    const stray = () => childPids().filter((p) => !before.has(p) && isAlive(p));
    await reapChildren([...seen, ...stray()], v);
  }
  return report(sc, v, elapsedMs, boundMs, o, summary, startRejectedMs, false);
}

/** What a hung run had reached: puts, outcomes, the engine's own counts. */
function hangState(o: Observed, m?: MPMS): string {
  let mx = '';
  try {
    if (m) {
      const x = m.metrics();
      mx = `, metrics: queued ${x.queued}, running ${x.running}, finished ${x.finished}/${x.total}`;
    }
  } catch {
    /* metrics() failed: leave it out */
  }
  return `${o.accepted.length} accepted, ${o.events.size} with an outcome${mx}`;
}

/**
 * A throwing or hanging initializer: start() rejects with WorkerStartError, within its bound,
 * naming the phase; the run ends there (the leftover check runs without terminate(): start()
 * itself must leave no process behind). Returns how long start() took to reject, if it did.
 */
function checkFailedStart(
  sc: Scenario,
  m: MPMS,
  started: Awaited<ReturnType<typeof within<void>>>,
  bound: number,
  ms: number,
  v: string[],
): number | undefined {
  const failing = failingInitializer(sc)!;
  if (started === 'timeout')
    v.push(
      `HANG: start() with a failing ${failing} (${sc.hooks?.[failing]}) did not reject within its bound of ${bound} ms`,
    );
  else if ('value' in started) v.push(`start() resolved though ${failing} is faulty (${sc.hooks?.[failing]})`);
  else {
    const err = started.error as Error & { phase?: string };
    const phases = failing === 'processInitializer' ? ['processInitializer'] : ['threadInitializer', 'threadStart'];
    if (!(err instanceof WorkerStartError)) v.push(`start() rejected with ${describe(err)}, not a WorkerStartError`);
    else if (!phases.includes(err.phase ?? ''))
      v.push(`start() rejected naming phase ${String(err.phase)}, expected ${phases.join('/')} (${err.message})`);
    return ms;
  }
  void m;
  return undefined;
}

/**
 * Runs the scenario with the engine in a real master script. For a signal ending, the script
 * gets the signal once `afterPuts` puts were accepted or `stallMs` after its start() resolved
 * (and again `secondAfterMs` later, if asked). The run is timed from its start() to its exit,
 * which it must reach by itself, with code 0.
 */
async function runInScript(sc: Scenario, runDir: string): Promise<RunReport> {
  const ending = sc.ending;
  const v: string[] = [];
  const boundMs = runBoundMs(sc);
  const startBound = 3 * sc.settings.hookTimeout + 15_000;
  const o = observed();
  const file = path.join(runDir, 'scenario.json');
  fs.writeFileSync(file, JSON.stringify({ scenario: sc, initArgs: hookInitArgs(sc) }));
  const verbose = !!process.env.MPMS_FC_VERBOSE;
  const proc = spawn(process.execPath, [fixture('property-master.mjs'), file, runDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => {
    if (verbose) process.stderr.write(d);
    if (stderr.length < 20_000) stderr += d.toString('utf8');
  });
  const seen = new Set<number>();
  const alive = () => proc.exitCode === null && proc.signalCode === null;
  const sample = () => {
    try {
      if (proc.pid !== undefined && alive()) for (const p of childPids(proc.pid)) seen.add(p);
    } catch {
      /* ps raced an exiting child */
    }
  };
  const sampler = setInterval(sample, 150);
  let t0 = 0;
  let signalledAt = 0;
  let final: { summary: FinalSummary; metrics: Metrics } | undefined;
  const badLines: string[] = [];
  /** The script's 'exit' event fired: it was ending by itself. */
  let exiting = false;
  const timers: NodeJS.Timeout[] = [];
  const signal = () => {
    if (ending.kind !== 'signal' || signalledAt || !alive()) return;
    signalledAt = Date.now();
    sample();
    const send = () => {
      try {
        if (alive()) proc.kill(ending.signal);
      } catch {
        /* it just ended */
      }
    };
    send();
    if (ending.secondAfterMs !== undefined) timers.push(setTimeout(send, ending.secondAfterMs));
  };
  let started!: () => void;
  const startedP = new Promise<void>((r) => (started = r));
  let buf = '';
  proc.stdout!.on('data', (d: Buffer) => {
    buf += d.toString('utf8');
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let msg: Record<string, unknown> & { t?: string };
      try {
        msg = JSON.parse(line);
      } catch {
        badLines.push(line);
        continue;
      }
      if (apply(o, msg)) {
        if (msg.t === 'accepted' && ending.kind === 'signal' && o.accepted.length >= ending.afterPuts) signal();
        continue;
      }
      switch (msg.t) {
        case 'started':
          t0 = Date.now();
          started();
          sample();
          if (ending.kind === 'signal') {
            if (ending.afterPuts === 0) signal();
            else timers.push(setTimeout(signal, ending.stallMs));
          }
          break;
        case 'summary':
          final = msg as unknown as typeof final;
          break;
        case 'exit':
          exiting = true;
          break;
        default:
          badLines.push(line);
      }
    }
  });
  // Its exit, then the end of its stdout (bounded: a child left behind would hold the pipe open),
  // so every line it wrote has been read.
  const stdoutEnded = Promise.all(
    [proc.stdout!, proc.stderr!].map(
      (stream) => new Promise<void>((resolve) => stream.once('end', resolve).once('close', resolve)),
    ),
  );
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('exit', (code, sig) => resolve({ code, signal: sig })),
  ).then(async (r) => {
    await within(stdoutEnded, 3000);
    return r;
  });
  let elapsedMs = 0;
  try {
    const up = await within(Promise.race([startedP, exited]), startBound);
    if (up === 'timeout' || !t0) {
      v.push(
        `the master script ${up === 'timeout' ? `did not start its engine within ${startBound} ms` : `exited before its engine started: ${lastLines(stderr)}`}`,
      );
    } else {
      const end = await within(exited, boundMs);
      elapsedMs = Date.now() - t0;
      if (end === 'timeout') {
        v.push(
          `HANG: the master script did not exit within its bound of ${boundMs} ms (${signalledAt ? `${ending.kind === 'signal' ? ending.signal : ''} sent ${signalledAt - t0} ms after start` : 'no signal sent'}, ${hangState(o)}${final ? ', its summary printed' : ''})`,
        );
      } else if ('value' in end) {
        const { code, signal: sig } = end.value;
        // A signal sent as the script was ending by itself (after its 'exit' event) may kill it: it had ended anyway.
        const endedAnyway = sig !== null && exiting;
        if ((code !== 0 || sig) && !endedAnyway)
          v.push(
            `the master died: the script exited with code ${code} signal ${sig} (it must end by itself, code 0): ${lastLines(stderr)}`,
          );
        if (!final) v.push('the master script printed no summary: its run did not end');
        else checkRun(sc, final.summary, final.metrics, o, v);
        if (badLines.length)
          v.push(`the master script printed lines that are not its reports: ${badLines.slice(0, 3).join(' | ')}`);
      }
    }
  } finally {
    clearInterval(sampler);
    for (const t of timers) clearTimeout(t);
    if (alive()) {
      try {
        proc.kill('SIGKILL');
      } catch {
        /* gone */
      }
      await within(exited, 5000);
    }
    await reapChildren([...seen], v);
  }
  return report(sc, v, elapsedMs, boundMs, o, final?.summary, undefined, true);
}

/** A script's stderr, on one line: the error that killed it (its first lines), if any. */
function lastLines(text: string): string {
  const lines = text.trim().split('\n').filter(Boolean);
  const at = lines.findIndex((l) => /Error|error|Unhandled|uncaught/.test(l));
  const pick = at >= 0 ? lines.slice(Math.max(0, at - 2), at + 3) : lines.slice(-6);
  return pick.length ? pick.join(' ⏎ ').slice(0, 1500) : '(nothing on stderr)';
}

/** Checks that no child the run started is alive 5 s after its ending; SIGKILLs (group, then pid) any that is. */
async function reapChildren(pids: number[], v: string[]): Promise<void> {
  const leftovers = await waitGone(new Set(pids), 5000);
  if (!leftovers.length) return;
  v.push(`child processes left 5 s after the ending: ${leftovers.join(', ')}`);
  for (const pid of leftovers) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* not a group leader, or gone */
    }
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  await waitGone(leftovers, 2000);
}

function report(
  sc: Scenario,
  v: string[],
  elapsedMs: number,
  boundMs: number,
  o: Observed,
  summary: FinalSummary | undefined,
  startRejectedMs: number | undefined,
  script: boolean,
): RunReport {
  const signalledIds = o.accepted
    .filter((a) => a.index < sc.tasks.length && sc.tasks[a.index]!.abortAfterMs !== undefined)
    .map((a) => a.id);
  const status = (id: number) => o.events.get(id)?.[0] ?? o.outcomes.get(id)?.[0]?.meta.status;
  const puts = [...o.accepted, ...o.notAccepted, ...o.putErrors];
  return {
    violations: v,
    elapsedMs,
    boundMs,
    accepted: o.accepted.length,
    summary,
    startRejectedMs,
    script,
    queueFull: o.putErrors.filter((e) => e.name === 'QueueFullError').length,
    notAccepted: o.notAccepted.length,
    signalled: signalledIds.length,
    signalCancelled: signalledIds.filter((id) => status(id) === 'cancelled').length,
    followUps: puts.filter((p) => p.index >= sc.tasks.length).length,
    callbacksThrew: o.threw.length + (o.reader?.how === 'throw' ? 1 : 0),
    restarts: o.restarts,
    reader: o.reader?.how,
  };
}
