import { describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fixture, isAlive, waitGone } from './helpers.js';

interface Run {
  proc: ChildProcess;
  started: Promise<void>;
  exit: Promise<{ code: number | null; ms: number; summary: Record<string, unknown> | undefined; stderr: string }>;
  log: string;
}

/** Runs the shutdown fixture script; `started` resolves once `n` tasks have begun running. */
function run(taskMs: number, count: number, n: number, flags = ''): Run {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mpms-shutdown-'));
  const log = path.join(dir, 'log');
  fs.writeFileSync(log, '');
  const proc = spawn(process.execPath, [fixture('shutdown-script.mjs'), String(taskMs), String(count), log, flags], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let stderr = '';
  let signalledAt = 0;
  let resolveStarted!: () => void;
  const started = new Promise<void>((r) => (resolveStarted = r));
  proc.stdout!.on('data', (d) => {
    out += d;
    if ((out.match(/^started$/gm) ?? []).length >= n) resolveStarted();
  });
  proc.stderr!.on('data', (d) => (stderr += d));
  const origKill = proc.kill.bind(proc);
  proc.kill = (sig) => {
    signalledAt ||= Date.now();
    return origKill(sig);
  };
  const exit = new Promise<{ code: number | null; ms: number; summary: Record<string, unknown> | undefined; stderr: string }>((resolve) => {
    proc.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('SUMMARY '));
      resolve({ code, ms: Date.now() - signalledAt, summary: line ? JSON.parse(line.slice(8)) : undefined, stderr });
    });
  });
  return { proc, started, exit, log };
}

describe('shutdown by signal (a real script)', () => {
  it('SIGTERM while 4 tasks of 800 ms run and 36 wait: 4 ok, 36 cancelled, finalizers run, exits by itself', async () => {
    const r = run(800, 40, 4);
    await r.started;
    r.proc.kill('SIGTERM');
    const { code, ms, summary } = await r.exit;
    expect(code).toBe(0);
    // Inside the 10 s grace a signal grants (SIGNAL_SHUTDOWN_TIMEOUT_MS): the 800 ms tasks were
    // let finish and nothing waited the grace out. (Wall-clock bounds tighter than the mechanism
    // being tested fail on a loaded machine without telling anything.)
    expect(ms).toBeLessThan(10_000);
    expect(summary).toMatchObject({ total: 40, ok: 4, cancelled: 36, unstarted: 36 });
    const finalizers = fs.readFileSync(r.log, 'utf8').split('\n').filter((l) => l.startsWith('threadFinalizer'));
    expect(finalizers.length).toBe(4);
    expect(await waitGone(summary!.pids as number[])).toEqual([]);
  });

  it('a second SIGINT during a slow graceful shutdown ends everything at once, not after the grace', async () => {
    const r = run(60_000, 8, 4);
    await r.started;
    r.proc.kill('SIGINT');
    // Wait for the first signal to be taken (the engine logs it) before the second.
    await new Promise((resolve) => r.proc.stderr!.once('data', resolve));
    const t = Date.now();
    r.proc.kill('SIGINT');
    const { code, summary } = await r.exit;
    // Half the 10 s grace the first signal granted the 60 s tasks: the second one did not wait for it.
    expect(Date.now() - t).toBeLessThan(5000);
    expect(code).toBe(0);
    expect(summary).toMatchObject({ total: 8, ok: 0 });
    expect((summary!.cancelled as number) + (summary!.crashed as number)).toBe(8);
  });

  it('a thread holding a native resource: on SIGINT its finalizer closes it, nothing survives', async () => {
    const r = run(300, 8, 4, 'browser');
    await r.started;
    r.proc.kill('SIGINT');
    const { code } = await r.exit;
    expect(code).toBe(0);
    const lines = fs.readFileSync(r.log, 'utf8').split('\n');
    const browsers = lines.filter((l) => l.startsWith('browser ')).map((l) => Number(l.split(' ')[1]));
    expect(browsers.length).toBeGreaterThanOrEqual(4);
    for (const pid of browsers) expect(lines).toContain(`closed ${pid}`);
    expect(await waitGone(browsers, 3000)).toEqual([]);
  });

  it('when the finalizer hangs, the hard deadline still ends the thread, its process and its resource', async () => {
    const r = run(300, 8, 4, 'browser,hang');
    await r.started;
    r.proc.kill('SIGINT');
    const { code } = await r.exit;
    expect(code).toBe(0);
    const browsers = fs.readFileSync(r.log, 'utf8').split('\n').filter((l) => l.startsWith('browser ')).map((l) => Number(l.split(' ')[1]));
    expect(browsers.length).toBeGreaterThanOrEqual(4);
    expect(await waitGone(browsers, 5000)).toEqual([]);
  });

  it('the master SIGKILLed while tasks hold grandchildren: none alive 5 s later', async () => {
    const r = run(60_000, 8, 4, 'browser');
    await r.started;
    const browsers = fs.readFileSync(r.log, 'utf8').split('\n').filter((l) => l.startsWith('browser ')).map((l) => Number(l.split(' ')[1]));
    expect(browsers.length).toBe(4);
    expect(browsers.every(isAlive)).toBe(true);
    r.proc.kill('SIGKILL');
    await r.exit;
    expect(await waitGone(browsers, 5000)).toEqual([]);
  });
});
