import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { guardChildren, childPids, fixture, isAlive, waitGone } from './helpers.js';

// Whatever a test started must be gone once it ends.
guardChildren();

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** ms from the SUMMARY line to the exit, or -1 if no summary was printed. */
  exitAfterPrintMs: number;
  summary: Record<string, unknown> | undefined;
  /** Every pid seen as a child of the script while it ran (sampled) plus what it printed. */
  pids: number[];
  stderr: string;
  killedByTest: boolean;
}

/**
 * Runs the fixture script and waits (bounded) for it to end by itself. If it is still alive
 * 10 s after printing its summary (or 40 s after start) the test kills it and reports that.
 */
function runScript(mode: 'plain' | 'collector' | 'kill'): Promise<Outcome> {
  const proc = spawn(process.execPath, [fixture('clean-exit-script.mjs'), mode], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let stderr = '';
  let printedAt = 0;
  let killedByTest = false;
  const seen = new Set<number>();
  const sampler = setInterval(() => {
    try {
      for (const pid of childPids(proc.pid)) seen.add(pid);
    } catch {
      // ps can race with the exit; the printed pids still count.
    }
  }, 50);
  const kill = (why: string) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    killedByTest = true;
    stderr += `\n[test] ${why}: killing the script\n`;
    proc.kill('SIGKILL');
  };
  const startBound = setTimeout(() => kill('no exit within 40 s of start'), 40_000);
  let exitBound: NodeJS.Timeout | undefined;
  proc.stdout!.on('data', (d) => {
    out += d;
    if (!printedAt && /^SUMMARY /m.test(out)) {
      printedAt = Date.now();
      exitBound = setTimeout(() => kill('still alive 10 s after printing its summary'), 10_000);
    }
  });
  proc.stderr!.on('data', (d) => (stderr += d));
  return new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      const exitedAt = Date.now();
      clearInterval(sampler);
      clearTimeout(startBound);
      clearTimeout(exitBound);
      const lines = out.split('\n');
      const summaryLine = lines.find((l) => l.startsWith('SUMMARY '));
      const childrenLine = lines.find((l) => l.startsWith('CHILDREN '));
      const summary = summaryLine ? (JSON.parse(summaryLine.slice(8)) as Record<string, unknown>) : undefined;
      for (const pid of (summary?.pids as number[] | undefined) ?? []) seen.add(pid);
      for (const pid of childrenLine ? (JSON.parse(childrenLine.slice(9)) as number[]) : []) seen.add(pid);
      resolve({ code, signal, exitAfterPrintMs: printedAt ? exitedAt - printedAt : -1, summary, pids: [...seen], stderr, killedByTest });
    });
  });
}

async function expectCleanExit(r: Outcome) {
  expect(r.killedByTest, r.stderr).toBe(false);
  expect(r.summary, r.stderr).toBeDefined();
  expect(r.code, r.stderr).toBe(0);
  expect(r.signal).toBeNull();
  expect(r.exitAfterPrintMs).toBeGreaterThanOrEqual(0);
  expect(r.exitAfterPrintMs).toBeLessThan(10_000);
  // The engine's children were seen (2 processes at least) and none of them is alive now.
  expect(r.pids.length).toBeGreaterThanOrEqual(2);
  const alive = await waitGone(r.pids, 3000);
  expect(alive).toEqual([]);
  expect(r.pids.filter(isAlive)).toEqual([]);
}

describe('a script that does not call process.exit() ends by itself', () => {
  it('50 tasks, no collector, join(), print: exits 0 on its own; no engine child left', async () => {
    const r = await runScript('plain');
    await expectCleanExit(r);
    expect(r.summary).toMatchObject({ total: 50, ok: 50, error: 0, crashed: 0, cancelled: 0, timeout: 0, unstarted: 0 });
  });

  it('the same with an async collector', async () => {
    const r = await runScript('collector');
    await expectCleanExit(r);
    expect(r.summary).toMatchObject({ total: 50, ok: 50, collected: 50 });
  });

  it('the same when one task SIGKILLs its child (iterResults): the killer settles crashed, exits 0 on its own, no child left', async () => {
    const r = await runScript('kill');
    await expectCleanExit(r);
    expect(r.summary).toMatchObject({ total: 50, read: 50, error: 0, timeout: 0, cancelled: 0 });
    // The killer itself, plus whatever else that child's threads held when it died (by design).
    expect(r.summary!.crashed as number).toBeGreaterThanOrEqual(1);
    expect(r.summary!.ok as number).toBeGreaterThanOrEqual(40);
    expect((r.summary!.ok as number) + (r.summary!.crashed as number)).toBe(50);
    // Whether a replacement child was spawned before join() depends on timing (its start may be
    // delayed by the restart back-off); any that was seen is checked by expectCleanExit.
  });
});
