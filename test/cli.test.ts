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
import { afterEach, describe, expect, it } from 'vitest';
import { childPids, fixture, isAlive, waitGone } from './helpers.js';

const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface Outcome {
  taskId: number;
  status: string;
  result?: unknown;
  error?: { name: string; message: string };
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
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
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
  return /mpms: \d+ tasks in/.test(stderr) ? summary(stderr) : undefined;
}

/** The counts from the CLI's summary line on stderr. */
function summary(stderr: string): Record<string, number> {
  const m = /mpms: (\d+) tasks in [\d.]+ s \([\d.]+ tasks\/s\): (\d+) ok, (\d+) error, (\d+) timeout, (\d+) crashed, (\d+) cancelled/.exec(stderr);
  if (!m) throw new Error(`no summary on stderr:\n${stderr}`);
  const [total, ok, error, timeout, crashed, cancelled] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  return { total, ok, error, timeout, crashed, cancelled };
}

const small = ['-p', '2', '-t', '1'];

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
    const run = cli(['run', fixture('cli-slow.mjs'), ...small], input, false);
    await run.until('first output line', () => run.stdout().includes('\n'), 20_000);
    const kids = childPids(run.child.pid);
    expect(kids.length).toBeGreaterThan(0);
    const t0 = Date.now();
    run.child.kill('SIGINT');
    const { code, signal } = await run.exit(20_000);
    // 100 ms tasks finish well inside the 10 s grace.
    expect(Date.now() - t0).toBeLessThan(8_000);
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
    // Far below the 10 s grace the first signal granted: the second one did not wait for it.
    expect(Date.now() - t0).toBeLessThan(6_000);
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
    const lines = Array.from({ length: 24 }, () => '[100]');
    const run = cli(['run', fixture('cli-slow.mjs'), '-p', '1', '-t', '2', '--stats-interval', '100ms'], lines.join('\n') + '\n');
    const statsLines = () => run.stderr().split('\n').filter((l) => l.startsWith('mpms stats: '));
    // Two lines while tasks still run: it is periodic, not a one-off at the end.
    await run.until('two stats lines', () => statsLines().length >= 2, 10_000);
    expect(summaryIfAny(run.stderr())).toBeUndefined();
    expect((await run.exit(20_000)).code).toBe(0);
    expect(run.stderr()).not.toContain('\r');
    const re = /^mpms stats: [\d.]+ s  done (\d+)\/(\d+)  queued \d+  running \d+  ok \d+ error 0 timeout 0 crashed 0 cancelled 0  [\d.]+ tasks\/s  run p50\/p99 [\d.]+\/[\d.]+ ms  wait p50\/p99 [\d.]+\/[\d.]+ ms  processes 1  threads 2  restarts 0$/;
    const done = statsLines().map((l) => {
      const m = re.exec(l);
      if (!m) throw new Error(`unexpected stats line: ${l}`);
      return Number(m[1]);
    });
    // Live: the done count moves between lines and never goes back.
    for (let i = 1; i < done.length; i++) expect(done[i]).toBeGreaterThanOrEqual(done[i - 1]!);
    expect(done.at(-1)!).toBeGreaterThan(done[0]!);
  });

  it('--stats-interval below 10 ms is bad usage', { timeout: 15_000 }, async () => {
    const run = cli(['run', fixture('cli-slow.mjs'), '--stats-interval', '5'], '');
    expect((await run.exit(10_000)).code).toBe(2);
    expect(run.stderr()).toMatch(/--stats-interval must be at least 10 ms/);
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
