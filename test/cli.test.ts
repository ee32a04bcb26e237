/**
 * The `mpms` command line, end to end: the built CLI (dist/cli/main.js) in a real process, real
 * pipes, real engine children. Every wait is bounded and tied to an event (an output line, a
 * message on stderr, the exit), never to a sleep.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { childPids, fixture, isAlive, waitGone } from './helpers.js';
import { SHUTDOWN_TIMEOUT_MS } from '../dist/cli/run.js';

const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface Outcome {
  line: number;
  taskId: number;
  status: string;
  args?: unknown[];
  result?: unknown;
  error?: { name: string; message: string; [field: string]: unknown };
  runMs: number | null;
}

interface Cli {
  child: ChildProcessWithoutNullStreams;
  stdout: () => string;
  stderr: () => string;
  /** Resolves once `pred` holds for the output so far; rejects at the deadline or if the CLI exits first. */
  until: (what: string, pred: () => boolean, ms: number) => Promise<void>;
  /** Resolves with the exit once the CLI ends by itself; SIGKILLs it and rejects after `ms`. */
  exit: (ms: number) => Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const started: ChildProcessWithoutNullStreams[] = [];

afterEach(() => {
  // A failed test must not leave its CLI running (it would hold the engine's children too).
  for (const c of started.splice(0)) if (c.exitCode === null && c.signalCode === null && c.pid && isAlive(c.pid)) c.kill('SIGKILL');
});

function cli(args: string[], input?: string, endInput = true): Cli {
  return spawned(spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] }), input, endInput);
}

function spawned(child: ChildProcessWithoutNullStreams, input?: string, endInput = true): Cli {
  started.push(child);
  let out = '';
  let err = '';
  const listeners = new Set<() => void>();
  const poke = () => listeners.forEach((l) => l());
  child.stdout.setEncoding('utf8').on('data', (d: string) => ((out += d), poke()));
  child.stderr.setEncoding('utf8').on('data', (d: string) => ((err += d), poke()));
  // The CLI may stop reading its input early (that is what a signal does): not a test failure.
  child.stdin.on('error', () => {});
  if (input !== undefined) child.stdin.write(input);
  if (endInput) child.stdin.end();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  child.on('close', poke);
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    until: (what, pred, ms) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (pred()) return finish();
          if (child.exitCode !== null || child.signalCode !== null) finish(new Error(`the CLI exited before ${what}; stderr:\n${err}`));
        };
        const timer = setTimeout(() => finish(new Error(`no ${what} within ${ms} ms; stderr:\n${err}`)), ms);
        const finish = (e?: Error) => {
          clearTimeout(timer);
          listeners.delete(check);
          if (e) reject(e);
          else resolve();
        };
        listeners.add(check);
        check();
      }),
    exit: (ms) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`the CLI did not exit within ${ms} ms; stderr:\n${err}`));
        }, ms);
        void exited.then((r) => {
          clearTimeout(timer);
          resolve(r);
        });
      }),
  };
}

function outcomes(stdout: string): Outcome[] {
  return stdout
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as Outcome);
}

function summaryIfAny(stderr: string): Record<string, number> | undefined {
  return /mpms: \d+ tasks? in/.test(stderr) ? summary(stderr) : undefined;
}

/** The counts from the CLI's summary line on stderr. */
function summary(stderr: string): Record<string, number> {
  const m = /mpms: (\d+) tasks? in [\d.]+ s \([\d.]+ tasks\/s\): (\d+) ok, (\d+) error, (\d+) timeout, (\d+) crashed, (\d+) cancelled/.exec(stderr);
  if (!m) throw new Error(`no summary on stderr:\n${stderr}`);
  const [total, ok, error, timeout, crashed, cancelled] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  return { total, ok, error, timeout, crashed, cancelled };
}

const small = ['-p', '2', '-t', '1'];

/** A scratch directory for one test, removed after it. */
function scratch(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mpms-cli-'));
  dirs.push(dir);
  return dir;
}
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** Input lines for the gate fixture: each task waits for the file `<dir>/<gate>`. */
function gatedLines(dir: string, gates: string[]): string {
  return gates.map((g, i) => JSON.stringify([dir, g, i + 1])).join('\n') + '\n';
}

/** Opens a gate of the gate fixture: the tasks waiting on it return. */
function open(dir: string, gate: string): void {
  fs.writeFileSync(path.join(dir, gate), '');
}

describe('mpms run', () => {
  it('runs every input line once and exits 0 when all are ok', { timeout: 30_000 }, async () => {
    const lines = [];
    for (let i = 0; i < 40; i++) lines.push(JSON.stringify([i, 1000]));
    // Blank lines are skipped; a non-array value is the single argument; CRLF is accepted.
    const input = lines.slice(0, 20).join('\n') + '\n\n  \r\n' + '{"x":1}\r\n"str"\n' + lines.slice(20).join('\n');
    const run = cli(['run', fixture('cli-add.mjs'), ...small], input);
    const { code } = await run.exit(20_000);
    expect(run.stderr()).not.toMatch(/warning/);
    expect(code).toBe(0);
    const got = outcomes(run.stdout());
    expect(got).toHaveLength(42);
    expect(new Set(got.map((o) => o.taskId)).size).toBe(42);
    const byId = new Map(got.map((o) => [o.taskId, o]));
    // taskIds count accepted lines from 1 in input order: 1..20, then the object and the string, then 23..42.
    for (let i = 0; i < 40; i++) {
      const o = byId.get(i < 20 ? i + 1 : i + 3)!;
      expect(o).toMatchObject({ status: 'ok', result: i + 1000 });
      expect(typeof o.runMs).toBe('number');
    }
    expect(byId.get(21)).toMatchObject({ status: 'ok', result: { echo: { x: 1 } } });
    expect(byId.get(22)).toMatchObject({ status: 'ok', result: { echo: 'str' } });
    // `line` is the input line number: after the blank lines (21, 22) taskIds and lines part.
    for (let i = 0; i < 40; i++) expect(byId.get(i < 20 ? i + 1 : i + 3)!.line).toBe(i < 20 ? i + 1 : i + 5);
    expect([byId.get(21)!.line, byId.get(22)!.line]).toEqual([23, 24]);
    expect(summary(run.stderr())).toEqual({ total: 42, ok: 42, error: 0, timeout: 0, crashed: 0, cancelled: 0 });
  });

  it('reads --input and writes --output files, with plain progress lines when forced', { timeout: 30_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mpms-cli-'));
    try {
      const inFile = path.join(dir, 'tasks.jsonl');
      const outFile = path.join(dir, 'results.jsonl');
      fs.writeFileSync(inFile, Array.from({ length: 25 }, (_, i) => `[${i}, 1]`).join('\n') + '\n');
      const run = cli(['run', fixture('cli-add.mjs'), ...small, '--input', inFile, '--output', outFile, '--progress']);
      const { code } = await run.exit(20_000);
      expect(code).toBe(0);
      expect(run.stdout()).toBe('');
      const got = outcomes(fs.readFileSync(outFile, 'utf8'));
      expect(got.map((o) => o.result).sort((a, b) => (a as number) - (b as number))).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
      // stderr is a pipe here: no carriage returns, whatever --progress printed.
      expect(run.stderr()).not.toContain('\r');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('exits 1 and reports error lines when the worker throws for some inputs, and names a bad input line', { timeout: 30_000 }, async () => {
    const lines = Array.from({ length: 30 }, (_, i) => String(i + 1));
    lines.splice(10, 0, '[1, 2'); // line 11 is not JSON
    const run = cli(['run', fixture('cli-flaky.mjs'), ...small], lines.join('\n') + '\n');
    const { code } = await run.exit(20_000);
    expect(code).toBe(1);
    expect(run.stderr()).toMatch(/input line 11 is not valid JSON/);
    const got = outcomes(run.stdout());
    // The bad line is skipped, not fatal: every good line still has its outcome.
    expect(got).toHaveLength(30);
    const errors = got.filter((o) => o.status === 'error');
    expect(errors).toHaveLength(10);
    for (const e of errors) {
      expect(e.error).toMatchObject({ name: 'RangeError' });
      expect(e.error!.message).toMatch(/^no multiples of 3, got \d+$/);
      expect(e).not.toHaveProperty('result');
    }
    for (const o of got.filter((x) => x.status === 'ok')) expect((o.result as number) % 6).not.toBe(0);
    expect(summary(run.stderr())).toMatchObject({ total: 30, ok: 20, error: 10 });
    expect(run.stderr()).toMatch(/1 input line not valid JSON/);
  });

  describe('bad usage exits 2 with a precise message', () => {
    const cases: Array<[string, string[], RegExp]> = [
      ['an unknown flag', ['run', fixture('cli-add.mjs'), '--bogus'], /unknown option '--bogus'/],
      ['a misspelled flag', ['run', fixture('cli-add.mjs'), '--proceses', '2'], /did you mean --processes\?/],
      ['a missing worker module', ['run', 'test/fixtures/does-not-exist.mjs'], /worker module not found: test\/fixtures\/does-not-exist\.mjs/],
      ['no worker argument', ['run'], /missing the worker module/],
      ['a -p that is not a number', ['run', fixture('cli-add.mjs'), '-p', 'two'], /--processes \(-p\) expects an integer, got "two"/],
      ['a -p out of range', ['run', fixture('cli-add.mjs'), '-p', '0'], /--processes \(-p\) must be an integer >= 1, got 0/],
      ['a bad duration', ['run', fixture('cli-add.mjs'), '--task-timeout', 'soon'], /--task-timeout expects a duration/],
      ['a missing --input file', ['run', fixture('cli-add.mjs'), '--input', 'no/such/file.jsonl'], /cannot open --input no\/such\/file\.jsonl: no such file/],
      ['a missing export', ['run', fixture('cli-add.mjs'), '--export', 'nope', ...small], /no export `nope`/],
      ['an unknown command', ['frobnicate'], /unknown command 'frobnicate'/],
    ];
    for (const [what, args, message] of cases) {
      it(what, { timeout: 20_000 }, async () => {
        const run = cli(args, '');
        const { code } = await run.exit(15_000);
        expect(run.stderr()).toMatch(message);
        expect(code).toBe(2);
        expect(run.stdout()).toBe('');
      });
    }
  });

  it('shuts down gracefully on SIGINT mid-run: exits by itself, one line per accepted task, no child left', { timeout: 40_000 }, async () => {
    // More input than it could ever finish, and stdin left open, as with `producer | mpms run`.
    const input = Array.from({ length: 5000 }, () => '[100]').join('\n') + '\n';
    const run = cli(['run', fixture('cli-slow.mjs'), ...small, '--progress'], input, false);
    await run.until('first output line', () => run.stdout().includes('\n'), 20_000);
    const kids = childPids(run.child.pid);
    expect(kids.length).toBeGreaterThan(0);
    const t0 = Date.now();
    run.child.kill('SIGINT');
    const { code, signal } = await run.exit(20_000);
    // It exits once its running 100 ms tasks are done, not when the grace runs out: a CLI that
    // waited the grace out takes at least SHUTDOWN_TIMEOUT_MS — a bound from the settings, not
    // the machine's speed. (That nothing was cut short is checked below.)
    expect(Date.now() - t0).toBeLessThan(SHUTDOWN_TIMEOUT_MS);
    expect(signal).toBeNull();
    expect(code).toBe(1);
    expect(run.stderr()).toMatch(/SIGINT: stopped reading input/);
    expect(run.stderr()).toMatch(/interrupted by SIGINT/);
    const s = summary(run.stderr());
    const got = outcomes(run.stdout());
    expect(got).toHaveLength(s.total!);
    expect(new Set(got.map((o) => o.taskId)).size).toBe(s.total);
    expect(s.total).toBeLessThan(5000);
    expect(s.ok! + s.cancelled!).toBe(s.total);
    // Running tasks were let finish: nothing was cut short.
    expect(s.crashed).toBe(0);
    // The last progress line agrees, and cancelled tasks are not counted as failed.
    const last = run.stderr().split('\n').filter((l) => l.startsWith('mpms progress: ')).at(-1);
    expect(last).toMatch(new RegExp(`^mpms progress: ${s.total} done, ${s.ok} ok, 0 failed(, ${s.cancelled} cancelled)?, `));
    if (s.cancelled! > 0) expect(last).toContain(`${s.cancelled} cancelled`);
    expect(run.stderr()).toMatch(/to finish the job, run the same command again with --resume|interrupted by SIGINT/);
    expect(await waitGone(kids, 5_000)).toEqual([]);
  });

  it('stops at once on a second SIGINT when tasks do not finish', { timeout: 40_000 }, async () => {
    const input = Array.from({ length: 100 }, (_, i) => `[${i}]`).join('\n') + '\n';
    const run = cli(['run', fixture('cli-hang.mjs'), ...small], input, false);
    await run.until('first output line', () => run.stdout().includes('\n'), 20_000);
    const kids = childPids(run.child.pid);
    run.child.kill('SIGINT');
    await run.until('the first-signal message', () => /Send it again/.test(run.stderr()), 5_000);
    const t0 = Date.now();
    run.child.kill('SIGINT');
    const { code, signal } = await run.exit(15_000);
    // Its tasks never finish, so a CLI that waited for the grace the first signal granted takes
    // at least SHUTDOWN_TIMEOUT_MS (a bound from the settings): below it, the second signal did not.
    expect(run.stderr()).toMatch(/SIGINT again: stopping now/);
    expect(Date.now() - t0).toBeLessThan(SHUTDOWN_TIMEOUT_MS);
    expect(signal).toBeNull();
    expect(code).toBe(1);
    const s = summary(run.stderr());
    expect(outcomes(run.stdout())).toHaveLength(s.total!);
    expect(s.ok).toBeGreaterThan(0);
    expect(s.ok! + s.cancelled! + s.crashed!).toBe(s.total);
    expect(await waitGone(kids, 5_000)).toEqual([]);
  });
});

describe('mpms run: figures on stderr', () => {
  it('ends with a table: tasks by status, tasks/s, run and wait p50/p90/p99/max, restarts by reason', { timeout: 30_000 }, async () => {
    const lines = Array.from({ length: 10 }, (_, i) => JSON.stringify(['echo', i]));
    lines.push(JSON.stringify(['throw', 1]), JSON.stringify(['exit-thread', 3]));
    const run = cli(['run', fixture('basic-worker.mjs'), ...small], lines.join('\n') + '\n');
    expect((await run.exit(20_000)).code).toBe(1);
    const err = run.stderr();
    const table = err.slice(err.indexOf('\n', err.search(/mpms: \d+ tasks in/)) + 1);
    const row = (label: string) => {
      const m = new RegExp(`^  ${label} +(.*)$`, 'm').exec(table);
      if (!m) throw new Error(`no ${label} row in:\n${table}`);
      return m[1]!.trim().split(/\s+/);
    };
    expect(row('status')).toEqual(['tasks']);
    expect(Object.fromEntries(['ok', 'error', 'timeout', 'crashed', 'cancelled'].map((st) => [st, Number(row(st)[0])]))).toEqual({ ok: 10, error: 1, timeout: 0, crashed: 1, cancelled: 0 });
    expect(row('total')[0]).toBe('12');
    expect(table).toMatch(/^  total +12 +[\d.]+ tasks\/s over [\d.]+ s$/m);
    expect(row('ms')).toEqual(['p50', 'p90', 'p99', 'max']);
    for (const label of ['run', 'wait']) {
      const [p50, p90, p99, max] = row(label).map(Number) as [number, number, number, number];
      expect([p50, p90, p99, max].every(Number.isFinite), label).toBe(true);
      expect(p50 <= p90 && p90 <= p99 && p99 <= max, `${label}: ${row(label).join(' ')}`).toBe(true);
    }
    expect(table).toMatch(/^  restarts +crash 1, lifecycle 0, hard 0, gracefulDie 0, initFailure 0$/m);
  });

  it('--stats prints a live line of figures on stderr, also when it is not a terminal', { timeout: 30_000 }, async () => {
    // Gated tasks: what has finished at each moment is decided by the test, not by machine speed.
    const dir = scratch();
    const gates = Array.from({ length: 24 }, (_, i) => (i < 12 ? 'first' : 'second'));
    const run = cli(['run', fixture('cli-gate.mjs'), '-p', '1', '-t', '2', '--stats-interval', '100ms'], gatedLines(dir, gates));
    const re =
      /^mpms stats: [\d.]+ s  done (\d+)\/(\d+)  queued \d+  running (\d+)  prefetched \d+  ok \d+ error 0 timeout 0 crashed 0 cancelled 0  [\d.]+ tasks\/s  run p50\/p99 [\d.]+\/[\d.]+ ms  wait p50\/p99 [\d.]+\/[\d.]+ ms  processes (\d+)  threads (\d+)  restarts 0$/;
    const stats = () =>
      run
        .stderr()
        .split('\n')
        .filter((l) => l.startsWith('mpms stats: '))
        .map((l) => {
          const m = re.exec(l);
          if (!m) throw new Error(`unexpected stats line: ${l}`);
          const [done, total, running, processes, threads] = m.slice(1).map(Number) as [number, number, number, number, number];
          return { done, total, running, processes, threads };
        });
    // Two lines while no task can finish: it is periodic, not a one-off at the end.
    await run.until('two stats lines', () => stats().length >= 2, 15_000);
    expect(summaryIfAny(run.stderr())).toBeUndefined();
    open(dir, 'first');
    await run.until('a stats line with the first half done', () => stats().some((l) => l.done === 12), 15_000);
    open(dir, 'second');
    expect((await run.exit(20_000)).code).toBe(0);
    expect(run.stderr()).not.toContain('\r');
    const lines = stats();
    // Live: the done count moves between lines and never goes back.
    for (let i = 1; i < lines.length; i++) expect(lines[i]!.done).toBeGreaterThanOrEqual(lines[i - 1]!.done);
    expect(lines[0]!.done).toBe(0);
    // While tasks remain, the engine is whole: one process, two threads, and at most one task
    // running per thread (the tasks its children prefetched are not "running"). A line printed
    // after the last outcome may show the children being stopped, as they are.
    for (const l of lines.filter((x) => x.done < 24)) {
      expect(l).toMatchObject({ processes: 1, threads: 2 });
      expect(l.running).toBeLessThanOrEqual(2);
    }
    expect(lines.at(-1)!.total).toBe(24);
  });

  it('--stats-interval below 10 ms is bad usage', { timeout: 15_000 }, async () => {
    const run = cli(['run', fixture('cli-slow.mjs'), '--stats-interval', '5'], '');
    expect((await run.exit(10_000)).code).toBe(2);
    expect(run.stderr()).toMatch(/--stats-interval must be at least 10 ms/);
  });
});

describe('mpms run: progress tells the truth', () => {
  const plainLines = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('mpms progress: '));

  it('with --input FILE the total is counted up front: done/total, percent and an ETA from the first line', { timeout: 40_000 }, async () => {
    const dir = scratch();
    const inFile = path.join(dir, 'tasks.jsonl');
    // Far more lines than the engine takes in while every task waits: only counting the file
    // up front can know the total this early. Blank lines are not tasks.
    fs.writeFileSync(inFile, gatedLines(dir, Array.from({ length: 600 }, () => 'go')) + '\n\n');
    const run = cli(['run', fixture('cli-gate.mjs'), ...small, '-i', inFile, '-o', path.join(dir, 'out.jsonl'), '--progress']);
    await run.until('a progress line with the total', () => plainLines(run.stderr()).some((l) => l.includes('/600 ')), 15_000);
    expect(plainLines(run.stderr()).find((l) => l.includes('/600 '))).toMatch(/^mpms progress: 0\/600 done \(0%\), 0 ok, 0 failed, [\d.]+\/s, ETA --:--, elapsed \d+:\d\d$/);
    open(dir, 'go');
    expect((await run.exit(30_000)).code).toBe(0);
    const lines = plainLines(run.stderr());
    expect(lines.at(-1)).toMatch(/^mpms progress: 600\/600 done \(100%\), 600 ok, 0 failed, [\d.]+\/s, ETA 0:00, elapsed \d+:\d\d$/);
    // Never a total that grows as lines are read.
    for (const l of lines) expect(l).toMatch(/^mpms progress: \d+(\/600 done \(\d+%\)| done), /);
  });

  it('with stdin the total is unknown until the input ends: done, rate and elapsed, no fake total', { timeout: 40_000 }, async () => {
    const dir = scratch();
    const run = cli(['run', fixture('cli-gate.mjs'), ...small, '--progress', '-o', path.join(dir, 'out.jsonl')], gatedLines(dir, Array.from({ length: 600 }, () => 'go')), false);
    await run.until('a progress line', () => plainLines(run.stderr()).length > 0, 15_000);
    expect(plainLines(run.stderr())[0]).toMatch(/^mpms progress: 0 done, 0 ok, 0 failed, [\d.]+\/s, elapsed \d+:\d\d$/);
    open(dir, 'go');
    run.child.stdin.end();
    expect((await run.exit(30_000)).code).toBe(0);
    // Once the input ended its length is known, and the last line says so.
    expect(plainLines(run.stderr()).at(-1)).toMatch(/^mpms progress: 600\/600 done \(100%\), 600 ok, 0 failed, /);
  });

  it('the terminal line fits 80 columns, with a bar and an ETA when the total is known', async () => {
    const { renderProgressLine } = (await import('../dist/cli/progress.js')) as typeof import('../lib/cli/progress.js');
    const base = { ok: 0, failed: 0, cancelled: 0, bad: 0, rate: 812.3, etaMs: 943_000, elapsedMs: 5_000 };
    const cases = [
      { ...base, done: 648, total: 2000, ok: 640, failed: 8 },
      { ...base, done: 1_234_567, total: 2_000_000, ok: 1_234_000, failed: 555, cancelled: 12, bad: 3 },
      { ...base, done: 0, total: 5, etaMs: undefined },
      { ...base, done: 12_345_678, total: undefined, ok: 12_345_000, failed: 678, cancelled: 5, etaMs: undefined, elapsedMs: 50_000_000 },
    ];
    for (const s of cases) {
      const line = renderProgressLine(s, 80);
      expect(line.length, line).toBeLessThanOrEqual(79);
      if (s.total !== undefined) expect(line, line).toMatch(/ETA (--:--|\d+:\d\d)( |$)/);
      else expect(line, line).not.toMatch(/ETA|\[/);
      expect(line).toMatch(/ok +[\d.]+[kM]? +f(ailed|ail) +\d+/);
    }
    expect(renderProgressLine(cases[0]!, 80)).toMatch(/^mpms \[#+-+\] 648\/2000 32%  ok 640  failed 8  812\/s  ETA 15:43$/);
  });

  it('where stderr is not a terminal, a plain line once a minute unless --progress asks for every second', async () => {
    const { createProgress } = (await import('../dist/cli/progress.js')) as typeof import('../lib/cli/progress.js');
    vi.useFakeTimers();
    try {
      const written: string[] = [];
      const stderr = { isTTY: false, write: (t: string) => void written.push(t) } as unknown as NodeJS.WriteStream;
      let done = 0;
      const src = { done: () => done, total: () => 100, ok: () => done, failed: () => 0, cancelled: () => 0, bad: () => 0 };
      const quiet = createProgress('auto', src, { stderr, resultsOnTty: false });
      quiet.start();
      done = 10;
      vi.advanceTimersByTime(59_000);
      expect(written).toEqual([]);
      vi.advanceTimersByTime(1_000);
      expect(written).toHaveLength(1);
      expect(written[0]).toMatch(/^mpms progress: 10\/100 done \(10%\), 10 ok, 0 failed, [\d.]+\/s, ETA \d+:\d\d, elapsed 1:00\n$/);
      quiet.stop();
      written.length = 0;
      const forced = createProgress('on', src, { stderr, resultsOnTty: false });
      forced.start();
      done = 20;
      vi.advanceTimersByTime(1_000);
      expect(written).toHaveLength(1);
      expect(createProgress('off', src, { stderr, resultsOnTty: false }).constructor.name).toBe('NoProgress');
      forced.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  const hasScript = (() => {
    try {
      return fs.existsSync('/usr/bin/script') && os.platform() === 'linux';
    } catch {
      return false;
    }
  })();
  it.skipIf(!hasScript)('on a real terminal of 80 columns every redraw fits the width', { timeout: 40_000 }, async () => {
    const dir = scratch();
    const inFile = path.join(dir, 'tasks.jsonl');
    fs.writeFileSync(inFile, gatedLines(dir, Array.from({ length: 300 }, () => 'go')));
    const cmd = `stty cols 80; exec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} run ${JSON.stringify(fixture('cli-gate.mjs'))} -p 2 -t 1 -i ${JSON.stringify(inFile)} -o ${JSON.stringify(path.join(dir, 'out.jsonl'))}`;
    // util-linux script(1) gives the CLI a pseudo-terminal as stderr.
    const run = spawned(spawn('/usr/bin/script', ['-qec', cmd, '/dev/null'], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] }));
    await run.until('a bar', () => /mpms \[-+\] 0\/300 0%/.test(run.stdout()), 15_000);
    open(dir, 'go');
    expect((await run.exit(30_000)).code).toBe(0);
    // eslint-disable-next-line no-control-regex
    const redraws = run.stdout().split(/\r|\n/).map((l) => l.replace(/\x1b\[K/g, '')).filter((l) => l.startsWith('mpms ['));
    expect(redraws.length).toBeGreaterThan(0);
    for (const l of redraws) expect(l.length, l).toBeLessThanOrEqual(79);
    expect(redraws.at(-1)).toMatch(/^mpms \[#+\] 300\/300 100% +ok 300 +failed 0 /);
  });
});

describe('mpms run: output joins back to input', () => {
  it('each line carries its input line number, --echo-args its args; errors keep their own fields', { timeout: 30_000 }, async () => {
    const input = ['"map"', '', 'not json', '"throw"', '"throw-cause"', '  ', '["plain"]'].join('\n') + '\n';
    const run = cli(['run', fixture('cli-values.mjs'), ...small, '--echo-args'], input);
    expect((await run.exit(20_000)).code).toBe(1);
    const byLine = new Map(outcomes(run.stdout()).map((o) => [o.line, o]));
    expect([...byLine.keys()].sort((a, b) => a - b)).toEqual([1, 4, 5, 7]);
    expect(byLine.get(7)).toMatchObject({ args: ['plain'], status: 'ok', result: 'plain' });
    expect(byLine.get(4)).toMatchObject({
      args: ['throw'],
      status: 'error',
      error: { name: 'TypeError', message: 'bad input', code: 'E_BAD', detail: { n: { $bigint: '1' } } },
    });
    expect(byLine.get(4)).not.toHaveProperty('result');
    expect(byLine.get(5)!.error).toMatchObject({ name: 'Error', message: 'outer', cause: { name: 'Error', message: 'inner', code: 'E_INNER' } });
    expect(run.stderr()).toMatch(/input line 3 is not valid JSON/);
    // Without --echo-args, no args.
    const plain = cli(['run', fixture('cli-values.mjs'), ...small], '"x"\n');
    expect((await plain.exit(20_000)).code).toBe(0);
    expect(Object.keys(outcomes(plain.stdout())[0]!)).toEqual(['line', 'taskId', 'status', 'result', 'runMs']);
  });

  it('values JSON cannot carry are written by one rule, never silently as {} or null', { timeout: 30_000 }, async () => {
    const kinds = ['map', 'bytes', 'undefined', 'null', 'bigint', 'error-value'];
    const run = cli(['run', fixture('cli-values.mjs'), ...small], kinds.map((k) => JSON.stringify(k)).join('\n') + '\n');
    expect((await run.exit(20_000)).code).toBe(0);
    const got = new Map(outcomes(run.stdout()).map((o) => [kinds[o.line - 1], o]));
    expect(got.get('map')!.result).toEqual({ $map: [['a', { $bigint: '1' }], ['b', { $set: [1, { $undefined: null }] }]] });
    expect(got.get('bytes')!.result).toEqual({ buf: { $bytes: Buffer.from('hi').toString('base64') }, floats: { $Float64Array: [1.5, { $number: 'NaN' }] }, when: '1970-01-01T00:00:00.000Z' });
    // undefined: the key is left out (an ok line without `result`); null stays null.
    expect(got.get('undefined')).not.toHaveProperty('result');
    expect(got.get('null')).toHaveProperty('result', null);
    expect(got.get('bigint')!.result).toEqual({ $bigint: '12345678901234567890' });
    expect(got.get('error-value')!.result).toEqual({ $error: { name: 'RangeError', message: 'returned, not thrown' } });
  });
});

/** The outcome lines of a results file, parsed. */
function readOutcomes(file: string): Outcome[] {
  return outcomes(fs.readFileSync(file, 'utf8'));
}

describe('mpms run --resume', () => {
  it('Ctrl+C, then the same command with --resume: every input line ends exactly once ok', { timeout: 60_000 }, async () => {
    const dir = scratch();
    const inFile = path.join(dir, 'tasks.jsonl');
    const outFile = path.join(dir, 'out.jsonl');
    // Lines 1-10 may run at once; the rest wait for a gate that opens only after the SIGINT.
    const N = 200;
    fs.writeFileSync(inFile, gatedLines(dir, Array.from({ length: N }, (_, i) => (i < 10 ? 'early' : 'late'))));
    open(dir, 'early');
    const args = ['run', fixture('cli-gate.mjs'), '-p', '1', '-t', '2', '-i', inFile, '-o', outFile, '--stats-interval', '50ms'];
    const first = cli(args);
    await first.until('ten tasks done', () => /done 1\d\/\d+/.test(first.stderr()), 20_000);
    first.child.kill('SIGINT');
    await first.until('the first-signal message', () => /SIGINT: stopped reading input/.test(first.stderr()), 10_000);
    // The tasks running now finish; the rest were cancelled by the signal.
    open(dir, 'late');
    expect((await first.exit(30_000)).code).toBe(1);
    expect(first.stderr()).toMatch(/to finish the job, run the same command again with --resume/);
    const before = readOutcomes(outFile);
    const okBefore = new Set(before.filter((o) => o.status === 'ok').map((o) => o.line));
    expect(okBefore.size).toBeGreaterThanOrEqual(10);
    expect(okBefore.size).toBeLessThan(N);
    expect(before.filter((o) => o.status !== 'ok').every((o) => o.status === 'cancelled')).toBe(true);

    const second = cli([...args, '--resume']);
    expect((await second.exit(40_000)).code).toBe(0);
    expect(second.stderr()).toMatch(new RegExp(`--resume: ${okBefore.size} input lines already ok`));
    expect(summary(second.stderr())).toMatchObject({ total: N - okBefore.size, ok: N - okBefore.size });
    const after = readOutcomes(outFile);
    // The earlier run's lines are kept as they were; the rest is appended.
    expect(after.slice(0, before.length)).toEqual(before);
    const oks = after.filter((o) => o.status === 'ok').map((o) => o.line);
    expect(oks.length).toBe(N);
    expect(new Set(oks)).toEqual(new Set(Array.from({ length: N }, (_, i) => i + 1)));
    for (const o of after.filter((x) => x.status === 'ok')) expect(o.result).toBe(o.line);
  });

  it('cuts off a torn last line left by a killed run, and runs its task again', { timeout: 30_000 }, async () => {
    const dir = scratch();
    const inFile = path.join(dir, 'tasks.jsonl');
    const outFile = path.join(dir, 'out.jsonl');
    fs.writeFileSync(inFile, Array.from({ length: 6 }, (_, i) => `[${i}, 1]`).join('\n') + '\n');
    const done = [1, 2, 3].map((line) => JSON.stringify({ line, taskId: line, status: 'ok', result: line, runMs: 1 })).join('\n');
    fs.writeFileSync(outFile, done + '\n' + '{"line":4,"taskId":4,"status":"ok","res');
    const run = cli(['run', fixture('cli-add.mjs'), ...small, '-i', inFile, '-o', outFile, '--resume']);
    expect((await run.exit(20_000)).code).toBe(0);
    expect(run.stderr()).toMatch(/cut an incomplete last line \(\d+ bytes\)/);
    const after = readOutcomes(outFile);
    expect(after.map((o) => o.line).sort()).toEqual([1, 2, 3, 4, 5, 6]);
    expect(after.every((o) => o.status === 'ok')).toBe(true);
    expect(after.find((o) => o.line === 4)!.result).toBe(4);
  });

  it('refuses what it cannot resume from, and touches nothing', { timeout: 30_000 }, async () => {
    const dir = scratch();
    const notOurs = path.join(dir, 'notes.txt');
    fs.writeFileSync(notOurs, 'some notes\n');
    const cases: Array<[string[], RegExp]> = [
      [['--resume'], /--resume needs --output FILE/],
      [['--resume', '-o', notOurs], /is not an output of mpms run/],
    ];
    for (const [flags, message] of cases) {
      const run = cli(['run', fixture('cli-add.mjs'), ...small, ...flags], '[1, 2]\n');
      expect((await run.exit(15_000)).code).toBe(2);
      expect(run.stderr()).toMatch(message);
    }
    expect(fs.readFileSync(notOurs, 'utf8')).toBe('some notes\n');
  });
});

describe('mpms run: usage and start-up errors, said once and all at once', () => {
  it('reports every bad flag at once', { timeout: 15_000 }, async () => {
    const run = cli(['run', fixture('cli-add.mjs'), '-p', '0', '--threads=-1', '--task-timeout', '2x'], '');
    expect((await run.exit(10_000)).code).toBe(2);
    const err = run.stderr();
    expect(err).toMatch(/3 problems:/);
    expect(err).toMatch(/--processes \(-p\) must be an integer >= 1, got 0/);
    expect(err).toMatch(/--threads \(-t\) must be an integer >= 1, got -1/);
    expect(err).toMatch(/--task-timeout expects a duration .* got "2x"/);
    const unknown = cli(['run', fixture('cli-add.mjs'), '--bogus', '--threadz', '2'], '');
    expect((await unknown.exit(10_000)).code).toBe(2);
    expect(unknown.stderr()).toMatch(/unknown option '--bogus'[\s\S]*unknown option '--threadz' \(did you mean --threads\?\)/);
  });

  it('mpms worker and mpms status: every bad flag at once (their own, the Redis ones, the engine ones), exit 2, before Redis is tried', { timeout: 20_000 }, async () => {
    // A Redis that is there would not matter: nothing may start while a flag is wrong.
    const args = ['worker', fixture('cli-add.mjs'), '--redis', 'redis://127.0.0.1:1', '--queue', 'a:b', '--lock-duration', '1s', '--prefetch', '0', '-p', '0', '--bogus', '--stats-interval', '5'];
    const worker = cli(args, '');
    expect((await worker.exit(15_000)).code).toBe(2);
    const err = worker.stderr();
    expect(err).toMatch(/^mpms worker: 6 problems:\n/);
    for (const said of [
      '--queue must not contain ":", got "a:b"',
      '--lock-duration must be at least 2500 ms, got 1000',
      '--prefetch must be an integer >= 1, got 0',
      '--processes (-p) must be an integer >= 1, got 0',
      "unknown option '--bogus'",
      '--stats-interval must be at least 10 ms, got 5',
    ])
      expect(err).toContain(said);
    expect(err).not.toMatch(/connection refused|serving queue/);
    const status = cli(['status', '--redis', 'redis://127.0.0.1:1', '--interval', 'soon', '--jsn'], '');
    expect((await status.exit(15_000)).code).toBe(2);
    expect(status.stderr()).toMatch(/--interval expects a duration[\s\S]*unknown option '--jsn' \(did you mean --json\?\)[\s\S]*--queue is required/);
  });

  it('a worker module with a syntax error: its file, line and the offending source, as node shows them', { timeout: 20_000 }, async () => {
    for (const worker of ['cli-syntax-error.mjs', 'cli-imports-syntax-error.mjs']) {
      const run = cli(['run', fixture(worker), ...small], '[1]\n');
      expect((await run.exit(15_000)).code).toBe(2);
      const err = run.stderr();
      expect(err).toMatch(/could not start \(load\): Unexpected token ';' \(.*cli-syntax-error\.mjs:4\)/);
      expect(err).toContain('  return y +;\n');
      expect(err).toMatch(/\n {12}\^/);
    }
  });

  it('a log line says an error message once, even when the log message repeats it and pino adds its causes', async () => {
    const { logText } = (await import('../dist/cli/run.js')) as typeof import('../lib/cli/run.js');
    const msg = 'process 0 could not start (export): worker module x.mjs has no export `default`';
    // As the engine logs a child's start failure: the message, and an err whose message pino extends with its cause's.
    expect(logText(msg, `${msg}: worker module x.mjs has no export \`default\``)).toBe(`${msg}: worker module x.mjs has no export \`default\``);
    expect(logText(msg, msg)).toBe(msg);
    expect(logText('replacing it', 'boom')).toBe('replacing it: boom');
  });

  it('a start failure is reported once, however many children fail', { timeout: 20_000 }, async () => {
    const run = cli(['run', fixture('cli-no-default.mjs'), '-p', '2', '-t', '2'], '[1]\n');
    expect((await run.exit(15_000)).code).toBe(2);
    expect(run.stderr().match(/has no export `default`/g)).toHaveLength(1);
  });
});

describe('mpms', () => {
  it('prints its version and help', { timeout: 15_000 }, async () => {
    const version = cli(['--version']);
    expect((await version.exit(10_000)).code).toBe(0);
    expect(version.stdout().trim()).toBe(JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version);
    const help = cli(['run', '--help']);
    expect((await help.exit(10_000)).code).toBe(0);
    // Every engine flag comes from OPTION_SPECS; spot-check a few.
    for (const flag of ['--processes', '--threads', '--task-timeout', '--lifecycle', '--input', '--output', '--no-progress', '--stats', '--stats-interval']) expect(help.stdout()).toContain(flag);
  });
});
