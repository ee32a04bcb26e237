/**
 * Property-based hang tests: fast-check generates whole runs of the engine (settings, tasks
 * that return, throw, sleep, spin, exit their thread, SIGKILL or SIGABRT their process, die
 * gracefully, return something unsendable, or spawn a grandchild and return or hang; some
 * submitted with an AbortSignal that fires; hooks that throw or hang; a putTimeout on small
 * queues; lifecycle limits by count and by time; close() at a random point; and an ending:
 * join / gracefulShutdown / terminate / SIGTERM to a real master script), runs each with real
 * processes, and checks the guarantees after each (see run-scenario.ts).
 *
 *   npm test                                  15 scenarios (bounded, part of the normal suite)
 *   MPMS_FC_RUNS=300 npx vitest run test/property     many more
 *   MPMS_FC_SEED=<seed> [MPMS_FC_PATH=<path>]         replay what fast-check reported
 *   MPMS_FC_SCENARIO=<file.json | JSON>               run exactly one scenario (as dumped on failure)
 *   MPMS_FC_BUDGET_MS=<ms>                            stop generating (and shrinking) after this long
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { scenarioArb, type Scenario } from './model.js';
import { runScenario } from './run-scenario.js';

const env = process.env;
const RUNS = env.MPMS_FC_RUNS ? Number(env.MPMS_FC_RUNS) : 15;
// The bounded run inside `npm test` is deterministic (CI must not fail on a lucky draw); runs
// sized with MPMS_FC_RUNS (`npm run test:hang`) explore with a fresh seed unless one is given.
const SEED = env.MPMS_FC_SEED ? Number(env.MPMS_FC_SEED) : env.MPMS_FC_RUNS ? undefined : 20261122;
const PATH = env.MPMS_FC_PATH || undefined;
// Generation and shrinking stop after this budget (a failure found by then is still reported).
const BUDGET_MS = env.MPMS_FC_BUDGET_MS ? Number(env.MPMS_FC_BUDGET_MS) : RUNS * 15_000 + 120_000;

function fixedScenario(): Scenario | undefined {
  const raw = env.MPMS_FC_SCENARIO;
  if (!raw) return undefined;
  const text = raw.trim().startsWith('{') ? raw : fs.readFileSync(raw, 'utf8');
  const parsed = JSON.parse(text) as Scenario | { scenario: Scenario };
  return 'scenario' in parsed ? parsed.scenario : parsed;
}

const stats = { runs: 0, failures: 0, hangs: 0, scripts: 0, slowestBoundMs: 0, slowestMs: 0, slowest: undefined as Scenario | undefined, totalMs: 0, startFailed: 0, slowestStartFailMs: 0, queueFull: 0, signalled: 0, signalCancelled: 0 };
let lastFailure: { scenario: Scenario; violations: string[] } | undefined;

describe('property: no hang, exactly one outcome, no process left', () => {
  it(`${RUNS} random scenarios${SEED !== undefined ? ` (seed ${SEED})` : ''}`, { timeout: BUDGET_MS + 300_000 }, async () => {
    const fixed = fixedScenario();
    const arb = fixed ? fc.constant(fixed) : scenarioArb;
    const started = Date.now();
    try {
      await fc.assert(
        fc.asyncProperty(arb, async (sc) => {
          const r = await runScenario(sc);
          stats.runs++;
          stats.totalMs += r.elapsedMs;
          stats.queueFull += r.queueFull;
          stats.signalled += r.signalled;
          stats.signalCancelled += r.signalCancelled;
          if (sc.ending.kind === 'sigterm') stats.scripts++;
          if (r.violations.some((x) => x.startsWith('HANG'))) stats.hangs++;
          if (r.startRejectedMs !== undefined) {
            stats.startFailed++;
            stats.slowestStartFailMs = Math.max(stats.slowestStartFailMs, r.startRejectedMs);
          } else if (r.elapsedMs > stats.slowestMs) {
            stats.slowestMs = r.elapsedMs;
            stats.slowestBoundMs = r.boundMs;
            stats.slowest = sc;
          }
          if (env.MPMS_FC_VERBOSE) console.log(`[fc] run ${stats.runs}: ${r.elapsedMs} ms (bound ${r.boundMs}), P${sc.settings.processes}×T${sc.settings.threads}, ${sc.tasks.length} tasks, ${sc.ending.kind}${sc.hooks ? `, hooks ${JSON.stringify(sc.hooks)}` : ''}${r.startRejectedMs !== undefined ? ' (start() rejected)' : ''}, ${r.violations.length} violations`);
          if (r.violations.length) {
            stats.failures++;
            lastFailure = { scenario: sc, violations: r.violations };
            throw new Error(`${r.violations.length} violation(s):\n  - ${r.violations.join('\n  - ')}\nscenario: ${JSON.stringify(sc)}`);
          }
        }),
        { numRuns: fixed ? 1 : RUNS, seed: SEED, path: PATH, interruptAfterTimeLimit: BUDGET_MS },
      );
    } catch (err) {
      if (lastFailure) {
        // The last failure fast-check saw is the most shrunk one: dump it so it reproduces.
        const file = path.join(os.tmpdir(), `mpms-counterexample-${Date.now()}.json`);
        fs.writeFileSync(file, JSON.stringify(lastFailure, null, 2));
        console.error(
          `[fc] counter-example (most shrunk):\n${JSON.stringify(lastFailure, null, 2)}\n` +
            `[fc] written to ${file}; replay it with: MPMS_FC_SCENARIO=${file} npx vitest run test/property\n` +
            `[fc] or replay the search with the seed and path in fast-check's message below.`,
        );
      }
      throw err;
    } finally {
      console.log(
        `[fc] runs ${stats.runs} (incl. shrinking), failures ${stats.failures}, hangs ${stats.hangs}, SIGTERM-script runs ${stats.scripts}, wall ${((Date.now() - started) / 1000).toFixed(1)} s, ` +
          `ended at a failing start() ${stats.startFailed} (slowest rejection ${stats.slowestStartFailMs} ms), ` +
          `QueueFullError ${stats.queueFull}, signalled tasks ${stats.signalled} (cancelled ${stats.signalCancelled}), ` +
          `slowest run ${stats.slowestMs} ms (its bound ${stats.slowestBoundMs} ms)${stats.slowest ? `: ${JSON.stringify(stats.slowest)}` : ''}`,
      );
    }
    expect(stats.runs).toBeGreaterThan(0);
  });

  // The random draws of `npm test` may hold no SIGTERM run: this fixed one keeps the script path
  // (and the grandchild check) exercised on every run of the suite.
  it('a fixed SIGTERM run: a master script with grandchild tasks, signalled mid-run', { timeout: 60_000 }, async () => {
    const sc: Scenario = {
      settings: { processes: 2, threads: 2, concurrency: 1, taskQueueMaxsize: 4, retries: 0, hookTimeout: 300, workerGracefulDieTimeout: 300 },
      ending: { kind: 'sigterm', afterPuts: 3, stallMs: 200 },
      tasks: [{ kind: 'grandchild', then: 'return' }, { kind: 'sleep', ms: 30 }, { kind: 'grandchild', then: 'return' }, { kind: 'return' }, { kind: 'abort' }, { kind: 'sleep', ms: 40 }],
      close: { beforeTask: 5, delayMs: 0 },
    };
    const r = await runScenario(sc);
    expect(r.violations).toEqual([]);
    expect(r.accepted).toBeGreaterThanOrEqual(3);
  });
});

