/** Shared test helpers: fixture paths and checks that no process we started is still alive. */
import { afterEach, beforeAll, expect } from 'vitest';
import { MPMS, type Meta, type MPMSOptions } from '../dist/index.js';
import { fileURLToPath } from 'node:url';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';

export const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits (bounded) until none of `pids` is alive; returns the ones still alive at the deadline. */
export async function waitGone(pids: Iterable<number>, ms = 5000): Promise<number[]> {
  const until = Date.now() + ms;
  let alive = [...pids].filter(isAlive);
  while (alive.length && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 25));
    alive = alive.filter(isAlive);
  }
  return alive;
}

/** Direct child processes of this process (the engine's children), from ps. */
export function childPids(ppid = process.pid): number[] {
  const out = execFileSync('ps', ['-o', 'pid=,comm=', '--ppid', String(ppid)], { encoding: 'utf8' }).trim();
  return out
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter(([pid, comm]) => pid && comm !== 'ps')
    .map(([pid]) => Number(pid));
}

/**
 * Registers hooks that fail a test which leaves a child process of this test process behind.
 * Leftovers are killed by pid (only processes this test process started), then reported.
 */
export function guardChildren(): void {
  let baseline: number[] = [];
  beforeAll(() => {
    baseline = childPids();
  });
  afterEach(async () => {
    const left = await reap(childPids().filter((p) => !baseline.includes(p)), 5000);
    expect(left, 'child processes left behind').toEqual([]);
  });
}

/**
 * Waits (bounded) for `pids` to end; SIGKILLs by pid the ones still alive at the deadline (only
 * processes this test started), so a failure does not leak into the rest of the run. Returns them.
 */
export async function reap(pids: number[], ms: number): Promise<number[]> {
  const alive = await waitGone(pids, ms);
  for (const pid of alive) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  return alive;
}

/** Runs start() expecting it to fail; returns the error, the time it took, and the children left behind. */
export async function failedStart(options: MPMSOptions) {
  const before = childPids();
  const m = new MPMS(options);
  const t0 = Date.now();
  let err: unknown;
  try {
    await m.start();
  } catch (e) {
    err = e;
  }
  const ms = Date.now() - t0;
  // Right after the rejection: the engine said it cleaned up, so nothing new may be left.
  const left = childPids().filter((p) => !before.includes(p));
  // If something was left, do not leak it into the rest of the run.
  await reap(left, 3000);
  return { err, ms, left, m };
}

/**
 * Runs `node ...args` to its end and resolves with its exit code and output. SIGKILLed (by its
 * pid, which this test started) if it is still running after `ms`, so a hang fails the test.
 */
export function runNode(args: string[], options: { cwd?: string; ms?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, args, { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => (stdout += d));
  proc.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => proc.kill('SIGKILL'), options.ms ?? 25_000);
  return new Promise((resolve) =>
    proc.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
}

/**
 * Returns a maker of engines on `worker` that are terminated after each test whatever happens.
 * Call it at the top of a file after guardChildren(): hooks run in reverse, so the engines are
 * gone before guardChildren's check.
 */
export function trackedEngines(worker: string): (options: Omit<MPMSOptions, 'worker'> & { worker?: MPMSOptions['worker'] }) => MPMS {
  const engines: MPMS[] = [];
  afterEach(async () => {
    for (const m of engines.splice(0)) await m.terminate().catch(() => undefined);
  });
  return (options) => {
    const m = new MPMS({ worker, ...options });
    engines.push(m);
    return m;
  };
}

/** Fails with `what()` if `p` has not settled within `ms`: how a deadlock shows in a test. */
export async function within<T>(p: Promise<T>, ms: number, what: () => unknown): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no progress within ${ms} ms: ${JSON.stringify(what())}`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves once `cond()` holds (a state, checked every 2 ms; bounded by the caller's `within`). */
export function until(cond: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const check = () => (cond() ? resolve() : setTimeout(check, 2));
    check();
  });
}

/** A pino logger (level warn, or `level`) that keeps its lines, so a test can look for a warning or an error. */
export function captureLogger(level = 'warn') {
  const lines: Array<{ level: number; msg: string }> = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { logger: pino({ level }, stream), lines };
}

/** Outcomes per task id, from the 'task' events (register it first, so it runs before any other listener). */
export function outcomeCounter(m: MPMS) {
  const seen = new Map<number, Meta[]>();
  const order: number[] = [];
  m.on('task', (meta) => {
    const list = seen.get(meta.taskId) ?? [];
    list.push(meta);
    seen.set(meta.taskId, list);
    order.push(meta.taskId);
  });
  return { seen, order, once: () => [...seen.values()].every((l) => l.length === 1) };
}

/** A gate file: tasks `['gate', path]` (flow and user-side workers) block until it exists. */
export function gate() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mpms-gate-'));
  const file = path.join(dir, 'open');
  return { file, open: () => fs.writeFileSync(file, '') };
}

/** A one-shot signal: `fire()` resolves `promise` (a test waits on an event its callbacks see). */
export function signal(): { promise: Promise<void>; fire: () => void } {
  let fire!: () => void;
  const promise = new Promise<void>((r) => (fire = r));
  return { promise, fire };
}
