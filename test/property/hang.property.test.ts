/**
 * Property-based tests of the engine's promise: fast-check generates whole runs (model.ts) —
 * the worker's side (tasks that return, throw, sleep at their timeout's boundary, run long,
 * leak, spin, exit their thread, SIGKILL or SIGABRT their process, die gracefully, return
 * something unsendable or undecodable, throw something uncloneable, spawn a grandchild; hooks
 * that throw or hang), the user's side (a collector that is sync, async, slow, throwing, or
 * puts follow-ups; an iterResults() loop that reads slowly, leaves, throws, comes late or puts
 * follow-ups; listeners that throw; close() at a random point) and an ending (join /
 * gracefulShutdown / terminate / Ctrl+C or SIGTERM to a real master script) — runs each with real
 * processes, and checks every invariant after each (check.ts, run-scenario.ts).
 *
 *   npm test                                  15 scenarios, fixed seed, + one fixed scenario per class
 *   MPMS_FC_RUNS=300 npx vitest run test/property     many more, fresh seed (printed)
 *   MPMS_FC_SEED=<seed> [MPMS_FC_PATH=<path>]         replay what a failure reported
 *   MPMS_FC_SCENARIO=<file.json | JSON>               run exactly one scenario (as dumped on failure)
 *   MPMS_FC_PROFILE=crawler,reader                    draw only from these profiles (model.ts PROFILES)
 *   MPMS_FC_BUDGET_MS=<ms>                            stop generating (and shrinking) after this long
 *   MPMS_FC_VERBOSE=1                                 one line per run, and the engine's warnings
 *   MPMS_FC_IGNORE=<regex>                            debugging only: drop violations matching it (to look past a known bug)
 */

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fixedSettings, PROFILES, type Profile, type Scenario, scenarioArb } from './model.js';
import { type RunReport, runScenario } from './run-scenario.js';

const env = process.env;
const RUNS = env.MPMS_FC_RUNS ? Number(env.MPMS_FC_RUNS) : 15;
// The bounded run inside `npm test` is deterministic (CI must not fail on a lucky draw); runs
// sized with MPMS_FC_RUNS (`npm run test:hang`) explore with a fresh seed unless one is given.
const SEED = env.MPMS_FC_SEED
  ? Number(env.MPMS_FC_SEED)
  : env.MPMS_FC_RUNS
    ? Math.floor(Math.random() * 2 ** 31)
    : 20261122;
const PATH = env.MPMS_FC_PATH || undefined;
// Generation and shrinking stop after this budget (a failure found by then is still reported).
const BUDGET_MS = env.MPMS_FC_BUDGET_MS ? Number(env.MPMS_FC_BUDGET_MS) : RUNS * 15_000 + 120_000;
const ONLY = env.MPMS_FC_PROFILE ? (env.MPMS_FC_PROFILE.split(',').map((p) => p.trim()) as Profile[]) : undefined;
const IGNORE = env.MPMS_FC_IGNORE ? new RegExp(env.MPMS_FC_IGNORE) : undefined;
for (const p of ONLY ?? [])
  if (!PROFILES.includes(p)) throw new Error(`MPMS_FC_PROFILE: unknown profile ${p} (known: ${PROFILES.join(', ')})`);

function fixedScenario(): Scenario | undefined {
  const raw = env.MPMS_FC_SCENARIO;
  if (!raw) return undefined;
  const text = raw.trim().startsWith('{') ? raw : fs.readFileSync(raw, 'utf8');
  const parsed = JSON.parse(text) as Scenario | { scenario: Scenario };
  return 'scenario' in parsed ? parsed.scenario : parsed;
}

const stats = {
  runs: 0,
  failures: 0,
  hangs: 0,
  scripts: 0,
  startFailed: 0,
  slowestStartFailMs: 0,
  slowestMs: 0,
  slowestBoundMs: 0,
  slowest: undefined as Scenario | undefined,
  tightest: 0,
  ignored: 0,
  queueFull: 0,
  notAccepted: 0,
  signalled: 0,
  signalCancelled: 0,
  followUps: 0,
  callbacksThrew: 0,
  restarts: 0,
  byProfile: {} as Record<string, number>,
  byEnding: {} as Record<string, number>,
  readers: {} as Record<string, number>,
};
let lastFailure: { scenario: Scenario; violations: string[] } | undefined;

function count(sc: Scenario, r: RunReport): void {
  stats.runs++;
  stats.queueFull += r.queueFull;
  stats.notAccepted += r.notAccepted;
  stats.signalled += r.signalled;
  stats.signalCancelled += r.signalCancelled;
  stats.followUps += r.followUps;
  stats.callbacksThrew += r.callbacksThrew;
  stats.restarts += r.restarts;
  const inc = (o: Record<string, number>, k: string) => (o[k] = (o[k] ?? 0) + 1);
  inc(stats.byProfile, sc.profile ?? 'fixed');
  inc(stats.byEnding, sc.ending.kind);
  if (r.reader) inc(stats.readers, r.reader);
  if (r.script) stats.scripts++;
  if (r.violations.some((x) => x.startsWith('HANG'))) stats.hangs++;
  if (r.startRejectedMs !== undefined) {
    stats.startFailed++;
    stats.slowestStartFailMs = Math.max(stats.slowestStartFailMs, r.startRejectedMs);
    return;
  }
  if (r.elapsedMs > stats.slowestMs)
    Object.assign(stats, { slowestMs: r.elapsedMs, slowestBoundMs: r.boundMs, slowest: sc });
  if (r.boundMs > 0) stats.tightest = Math.max(stats.tightest, r.elapsedMs / r.boundMs);
}

function statsLine(wallMs: number): string {
  const fmt = (o: Record<string, number>) =>
    Object.entries(o)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ');
  return (
    `[fc] runs ${stats.runs} (incl. shrinking), failures ${stats.failures}, hangs ${stats.hangs}${IGNORE ? `, violations ignored (MPMS_FC_IGNORE) ${stats.ignored}` : ''}, wall ${(wallMs / 1000).toFixed(1)} s ` +
    `(${stats.runs ? (wallMs / stats.runs / 1000).toFixed(2) : '-'} s per run)\n` +
    `[fc] profiles: ${fmt(stats.byProfile)}\n[fc] endings: ${fmt(stats.byEnding)}; in a master script ${stats.scripts}; ` +
    `ended at a failing start() ${stats.startFailed} (slowest rejection ${stats.slowestStartFailMs} ms)\n` +
    `[fc] user side: follow-up puts ${stats.followUps}, callbacks that threw ${stats.callbacksThrew}, iterators ended: ${fmt(stats.readers) || 'none'}; ` +
    `puts resolved without a taskId ${stats.notAccepted}, QueueFullError ${stats.queueFull}, restarts seen ${stats.restarts}, ` +
    `signalled tasks ${stats.signalled} (cancelled ${stats.signalCancelled})\n` +
    `[fc] slowest run ${stats.slowestMs} ms (its bound ${stats.slowestBoundMs} ms), tightest run ${(stats.tightest * 100).toFixed(0)} % of its bound` +
    `${stats.slowest ? `\n[fc] slowest: ${JSON.stringify(stats.slowest)}` : ''}`
  );
}

async function property(sc: Scenario): Promise<void> {
  const r = await runScenario(sc);
  if (IGNORE) {
    const kept = r.violations.filter((x) => !IGNORE.test(x));
    stats.ignored += r.violations.length - kept.length;
    r.violations = kept;
  }
  count(sc, r);
  if (env.MPMS_FC_VERBOSE) {
    console.log(
      `[fc] run ${stats.runs}: ${sc.profile ?? 'fixed'}, ${r.elapsedMs} ms (bound ${r.boundMs}), P${sc.settings.processes}×T${sc.settings.threads}×C${sc.settings.concurrency}, ${sc.tasks.length} tasks, ${sc.ending.kind}${r.script ? ' (script)' : ''}${r.startRejectedMs !== undefined ? ' (start() rejected)' : ''}, ${r.violations.length} violations`,
    );
  }
  if (r.violations.length) {
    stats.failures++;
    lastFailure = { scenario: sc, violations: r.violations };
    throw new Error(
      `${r.violations.length} violation(s):\n  - ${r.violations.join('\n  - ')}\nscenario: ${JSON.stringify(sc)}`,
    );
  }
}

describe('property: exactly one outcome, no hang, no process left, the master alive — whatever the worker and the user do', () => {
  it(`${RUNS} random scenarios (seed ${SEED}${ONLY ? `, profiles ${ONLY.join(',')}` : ''})`, {
    timeout: BUDGET_MS + 300_000,
  }, async () => {
    const fixed = fixedScenario();
    const arb = fixed ? fc.constant(fixed) : scenarioArb(ONLY);
    const started = Date.now();
    let details: fc.RunDetails<[Scenario]> | undefined;
    try {
      details = await fc.check(fc.asyncProperty(arb, property), {
        numRuns: fixed ? 1 : RUNS,
        seed: SEED,
        path: PATH,
        interruptAfterTimeLimit: BUDGET_MS,
      });
    } finally {
      console.log(statsLine(Date.now() - started));
    }
    if (details.failed) {
      const shrunk = details.counterexample?.[0] ?? lastFailure?.scenario;
      const violations =
        lastFailure?.scenario === shrunk
          ? lastFailure!.violations
          : [String((details.errorInstance as Error)?.message ?? details.errorInstance)];
      const file = path.join(os.tmpdir(), `mpms-counterexample-${Date.now()}.json`);
      fs.writeFileSync(
        file,
        JSON.stringify({ seed: details.seed, path: details.counterexamplePath, scenario: shrunk, violations }, null, 2),
      );
      const message =
        `[fc] FAILED after ${details.numRuns} run(s), shrunk ${details.numShrinks} time(s)${details.interrupted ? ' (the time budget cut the search or the shrinking short)' : ''}\n` +
        `[fc] seed ${details.seed}, path ${details.counterexamplePath}\n` +
        `[fc] violations:\n  - ${violations.join('\n  - ')}\n` +
        `[fc] shrunk scenario:\n${JSON.stringify(shrunk, null, 2)}\n` +
        `[fc] written to ${file}\n` +
        `[fc] replay it:        MPMS_FC_SCENARIO=${file} npx vitest run test/property\n` +
        `[fc] replay the search: MPMS_FC_SEED=${details.seed} MPMS_FC_PATH=${details.counterexamplePath} MPMS_FC_RUNS=${RUNS}${ONLY ? ` MPMS_FC_PROFILE=${ONLY.join(',')}` : ''} npx vitest run test/property`;
      console.error(message);
      throw new Error(message);
    }
    expect(stats.runs).toBeGreaterThan(0);
  });
});

/**
 * One fixed scenario per class of trouble the model draws, so that every `npm test` exercises
 * each (the random draws of a 15-run suite may hold none of a class). Each is small.
 */
const FIXED: Record<string, Scenario> = {
  'SIGTERM to a master script with grandchild tasks, mid-run': {
    settings: fixedSettings({ processes: 2 }),
    ending: { kind: 'signal', signal: 'SIGTERM', afterPuts: 3, stallMs: 200 },
    tasks: [
      { kind: 'grandchild', after: 'return' },
      { kind: 'sleep', ms: 30 },
      { kind: 'grandchild', after: 'return' },
      { kind: 'return' },
      { kind: 'abort' },
      { kind: 'sleep', ms: 40 },
    ],
    close: { beforeTask: 5, delayMs: 0 },
  },
  'grandchildren in their own process group, then join()': {
    settings: fixedSettings(),
    ending: { kind: 'join' },
    tasks: [
      { kind: 'grandchild', after: 'return', detached: true },
      { kind: 'return' },
      { kind: 'grandchild', after: 'return', detached: true },
    ],
  },
  'Ctrl+C during a plain put loop waiting for room': {
    settings: fixedSettings({ threads: 1, taskQueueMaxsize: 1 }),
    ending: { kind: 'signal', signal: 'SIGINT', afterPuts: 2, stallMs: 400 },
    tasks: Array.from({ length: 8 }, () => ({ kind: 'sleep' as const, ms: 150 })),
  },
  'a crawler: an async collector awaiting follow-up puts, small queues': {
    settings: fixedSettings({ taskQueueMaxsize: 2, resultQueueMaxsize: 2 }),
    ending: { kind: 'join' },
    tasks: [{ kind: 'return' }, { kind: 'return' }],
    consumer: {
      kind: 'collector',
      mode: 'async',
      followUps: { fanout: [3], tasks: Array.from({ length: 24 }, () => ({ kind: 'return' as const })) },
    },
  },
  'a crawler: a for-await loop putting follow-ups': {
    settings: fixedSettings({ taskQueueMaxsize: 2, resultQueueMaxsize: 2 }),
    ending: { kind: 'join' },
    tasks: [{ kind: 'return' }],
    consumer: {
      kind: 'iterator',
      followUps: { fanout: [2, 3], tasks: Array.from({ length: 20 }, () => ({ kind: 'sleep' as const, ms: 5 })) },
    },
  },
  // It reads slowly, so when it leaves the result queue is full and dispatch waits for it.
  'a slow reader that breaks early, then join()': {
    settings: fixedSettings({ resultQueueMaxsize: 2 }),
    ending: { kind: 'join' },
    tasks: Array.from({ length: 40 }, () => ({ kind: 'return' as const })),
    consumer: { kind: 'iterator', delayMs: 30, stop: { after: 3, how: 'break' } },
  },
  'a poison task at P1×T1 with retries': {
    settings: fixedSettings({ threads: 1, retries: 8 }),
    ending: { kind: 'join' },
    tasks: [
      ...Array.from({ length: 4 }, () => ({ kind: 'return' as const })),
      { kind: 'sigkill' },
      ...Array.from({ length: 6 }, () => ({ kind: 'sleep' as const, ms: 10 })),
    ],
  },
  'a soft limit (processMemoryLimit) with long tasks and no hard limit': {
    settings: fixedSettings({ processMemoryLimit: 45 }),
    ending: { kind: 'join' },
    tasks: [{ kind: 'long', ms: 2500 }, { kind: 'long', ms: 2500 }, { kind: 'return' }, { kind: 'return' }],
  },
  'an undecodable result and uncloneable thrown values among ordinary tasks': {
    settings: fixedSettings({ threads: 1 }),
    ending: { kind: 'join' },
    tasks: [
      { kind: 'return' },
      { kind: 'deep', depth: 6000 },
      { kind: 'return' },
      { kind: 'badThrow', how: 'fnStack' },
      { kind: 'return' },
      { kind: 'badThrow', how: 'throwingGetter' },
      { kind: 'return' },
    ],
  },
  "throwing 'task' and 'restart' listeners and a throwing collector": {
    settings: fixedSettings({ lifecycle: 2 }),
    ending: { kind: 'join' },
    tasks: Array.from({ length: 8 }, () => ({ kind: 'return' as const })),
    consumer: { kind: 'collector', mode: 'sync', throwEvery: 3 },
    listeners: { taskThrowEvery: 2, restartThrows: true },
  },
  'tasks at ±20 % of a tight taskTimeout, with retries and concurrency': {
    settings: fixedSettings({ threads: 1, concurrency: 4, taskQueueMaxsize: 6, taskTimeout: 30, retries: 1 }),
    ending: { kind: 'join' },
    tasks: Array.from({ length: 100 }, (_, i) => ({ kind: 'near' as const, pct: ((i * 7) % 41) - 20 })),
  },
};

describe('property: one fixed scenario per class', () => {
  for (const [name, sc] of Object.entries(FIXED)) {
    it(name, { timeout: 120_000 }, async () => {
      const r = await runScenario(sc);
      expect(r.violations).toEqual([]);
      expect(r.accepted).toBeGreaterThan(0);
    });
  }
});
