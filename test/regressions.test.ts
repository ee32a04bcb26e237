/**
 * Counter-examples found by the property suite (test/property), reduced to minimal, fixed
 * scenarios, each kept as a regression test once the engine was fixed.
 */
import { describe, expect, it } from 'vitest';
import { MPMS, TaskCancelledError, TaskTimeoutError, WorkerCrashedError, type Meta } from '../dist/index.js';
import { fixture, guardChildren } from './helpers.js';

const worker = fixture('property-worker.mjs');
guardChildren();

const CLASS_BY_STATUS = { timeout: TaskTimeoutError, crashed: WorkerCrashedError, cancelled: TaskCancelledError } as const;

async function run(opts: Partial<ConstructorParameters<typeof MPMS>[0]>, steps: (m: MPMS) => Promise<void>) {
  const got: { meta: Meta; result: unknown }[] = [];
  const m = new MPMS({ worker, processes: 1, threads: 2, ...opts, collector: (meta, result) => void got.push({ meta, result }) });
  await m.start();
  await steps(m);
  const summary = await m.join();
  return { got, summary };
}

describe('regressions found by the property suite', () => {
  // Property run, seed 1576566461 path 57: "task 15: crashed with TaskCancelledError: task was
  // still running when its process stopped (graceful die: task 13 threw WorkerGracefulDie)".
  // A graceful die's deadline settles the tasks still running with Code.Crashed, but
  // relay.abortTask builds a TaskCancelledError for every code but Timeout: status 'crashed'
  // with a result that is not a WorkerCrashedError (no exitCode / signal), against the contract.
  // Since issue 14 (item 7) a graceful die is a soft restart: no deadline of its own cuts the
  // running task any more; it finishes, and its result is its own.
  it('graceful die: a task still running at workerGracefulDieTimeout finishes, and its result matches its status', async () => {
    const { got, summary } = await run({ workerGracefulDieTimeout: 200 }, async (m) => {
      await m.put('sleep', 1000);
      await new Promise((r) => setTimeout(r, 100));
      await m.put('gracefulDie', 1);
    });
    expect(summary.total).toBe(2);
    const sleeper = got.find((g) => g.meta.args[0] === 'sleep')!;
    expect(sleeper.meta.status).toBe('ok');
    expect(sleeper.result).toBe(1000);
  });

  // Same property run (tasks 8, 14, 16 of a shrink step). A thread stuck in a long task cannot
  // answer the retire message of a graceful die, so the tasks prefetched behind it are never
  // handed back; at the deadline they settle 'crashed' ("task was still running…") though they
  // never started (no startedAt). docs/architecture.md: a graceful die "hands back its unstarted
  // tasks". The relay knows from the shared slots which ones the thread never consumed.
  it('graceful die: tasks prefetched behind a stuck task never started, so they are handed back and run', async () => {
    const { got, summary } = await run({ workerGracefulDieTimeout: 200, taskTimeout: 3000 }, async (m) => {
      await m.put('spin', 0);
      for (let i = 0; i < 8; i++) await m.put('sleep', 30);
      await new Promise((r) => setTimeout(r, 200));
      await m.put('gracefulDie', 1);
    });
    expect(summary.total).toBe(10);
    for (const g of got) if (g.meta.status === 'crashed') expect(g.meta.startedAt, `task ${g.meta.taskId} ${g.meta.args.join(' ')}`).toBeDefined();
    for (const g of got.filter((x) => x.meta.args[0] === 'sleep')) expect(g.meta.status).toBe('ok');
  });

  // Found while writing examples/io-concurrency.mjs: a task that timed out and was retried on the
  // same thread could be settled by its first attempt's late AbortError (status `error`), and an
  // abort grace timer could kill the thread under the retry. Outcomes, slots and timers now match
  // the attempt, not just the task id.
  it('a retried task is settled by its own attempt, never by the late outcome of an earlier one', async () => {
    // The race shows in about one run of 40 tasks in three: three rounds make a regression likely to show.
    for (let round = 0; round < 3; round++) {
      const got: Meta[] = [];
      const m = new MPMS({
        worker: fixture('retry-worker.mjs'),
        processes: 1,
        threads: 1,
        concurrency: 4,
        taskTimeout: 100,
        retries: 1,
        collector: (meta) => void got.push(meta),
      });
      await m.start();
      for (let i = 0; i < 40; i++) await m.put(i);
      const summary = await m.join();
      expect(summary).toMatchObject({ total: 40, ok: 40 });
      for (const meta of got) expect(meta.attempts).toBe(2);
      expect(m.metrics().restarts.hard).toBe(0);
    }
  });

  // Found while writing the examples: a master started with `node --input-type=module -e "..."`
  // forked children with its own `-e` code in their flags, so each child ran the master's script
  // instead of the child entry, and forked again. The guard in the script keeps a regression from
  // turning into a chain of forks: a child that runs it exits at once, and start() fails.
  it('a master started with `node -e` starts real children (its entry flags are not inherited)', async () => {
    const { spawn } = await import('node:child_process');
    const code = [
      "if (process.env.MPMS_EVAL_GUARD) process.exit(9);",
      "process.env.MPMS_EVAL_GUARD = '1';",
      `const { MPMS } = await import(${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)});`,
      `const m = new MPMS({ worker: ${JSON.stringify(fixture('basic-worker.mjs'))}, processes: 1, threads: 1 });`,
      'await m.start();',
      "await m.put('add', 41);",
      'const s = await m.join();',
      'console.log(JSON.stringify(s));',
    ].join('\n');
    const proc = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout!.on('data', (d) => (out += d));
    const exitCode = await new Promise<number | null>((resolve) => proc.on('exit', resolve));
    expect(exitCode).toBe(0);
    expect(JSON.parse(out.trim())).toMatchObject({ total: 1, ok: 1 });
  });

  // Property run MPMS_FC_SEED=7 (MPMS_FC_RUNS=40), shrunk by hand. An abort that landed after the
  // thread received a task but before the relay saw it start settled it `cancelled` without
  // watching it; the thread started it anyway, and a task that ignores its signal then held the
  // thread for ever: join() hung. Aborted tasks are now watched until they leave their thread.
  it('an abort racing the start of a task that ignores it still frees the thread: join() ends', async () => {
    for (let delay = 0; delay < 12; delay++) {
      const got: Meta[] = [];
      const m = new MPMS({ worker, processes: 1, threads: 1, concurrency: 2, hookTimeout: 500, collector: (meta) => void got.push(meta) });
      await m.start();
      await m.put('sleep', 20);
      const ac = new AbortController();
      setTimeout(() => ac.abort(), delay);
      await m.submit(['spin', 1], { signal: ac.signal });
      await m.put('return', 2);
      const r = await Promise.race([m.join().then(() => 'joined'), new Promise((res) => setTimeout(() => res('hang'), 5000))]);
      if (r === 'hang') await m.terminate();
      expect(r, `abort after ${delay} ms: ${got.map((g) => `${g.args[0]}:${g.status}`).join(' ')}`).toBe('joined');
      expect(got.length).toBe(3);
    }
  });

  // Found reading the engine once more: the timer of a replacement waiting out its back-off was
  // unref'd, so a script whose only child had died ended silently, with tasks still waiting.
  it('a script whose only child is being replaced does not end before join(): every task gets its outcome', async () => {
    const { spawn } = await import('node:child_process');
    const fs = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const marker = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mpms-alone-')), 'broken');
    const proc = spawn(process.execPath, [fixture('alone-script.mjs'), marker], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout!.on('data', (d) => (out += d));
    const code = await new Promise<number | null>((resolve) => proc.on('exit', resolve));
    expect(code).toBe(0);
    const line = out.split('\n').find((l) => l.startsWith('SUMMARY '));
    expect(line, 'the script ended before join() resolved').toBeDefined();
    expect(JSON.parse(line!.slice(8))).toMatchObject({ total: 4, crashed: 1, cancelled: 3 });
  });

  // Property run MPMS_FC_SEED=7 (MPMS_FC_RUNS=250), shrunk by fast-check: the AbortSignal of a
  // task fired while its child was dying; the abort went to the dead child, the task came back
  // to the queue unstarted and ran on the replacement, spinning for ever: join() hung. The master
  // now remembers the abort and settles such a task `cancelled` instead of running it.
  it('a task whose signal fired while its child died is cancelled, not run again (replays the counter-example)', async () => {
    const { runScenario } = await import('./property/run-scenario.js');
    const scenario = {
      settings: { processes: 1, threads: 1, concurrency: 1, taskQueueMaxsize: 1, retries: 0, hookTimeout: 200, workerGracefulDieTimeout: 200 },
      ending: { kind: 'join' },
      hooks: { threadFinalizer: 'throw' },
      tasks: [{ kind: 'sigkill' }, { kind: 'spin', abortAfterMs: 0 }],
    };
    for (let round = 0; round < 5; round++) {
      const r = await runScenario(scenario as never);
      expect(r.violations).toEqual([]);
    }
  }, 120_000);

  // Found by the property suite in `npm test` (seed 20261122, path 2), reproduced about 1 run in
  // 40 under load: `{processes: 2, threads: 2, concurrency: 2, lifecycle: 1, ...}` with tasks
  // throw, gracefulDie (signal aborted after 6 ms), return — the gracefulDie task settled
  // `crashed` ("process 1 exited with code 0 while holding task 2"). A trace showed the master
  // handled the child's 'exit' event before the messages the child had written before exiting
  // (its batch with that very outcome), and settled what it held as crashed. The exit is now
  // accounted once the child's IPC channel is drained. Here the order seen under load is
  // replayed on purpose: the child's messages (and its channel's 'disconnect', which follows
  // them) reach the engine 300 ms late, its 'exit' at once. (Without the fix the task is
  // settled crashed, or — once its thread's start log is gone — run again on the replacement.)
  it("a child's last outcomes, delivered after its 'exit' event, still count: a graceful die's own task settles error, not crashed", async () => {
    const got: Meta[] = [];
    const m = new MPMS({ worker, processes: 1, threads: 1, workerGracefulDieTimeout: 200, collector: (meta) => void got.push(meta) });
    await m.start();
    type Internals = { sup: { children: { proc: import('node:child_process').ChildProcess }[] } };
    const proc = (m as unknown as Internals).sup.children[0]!.proc;
    const emit = proc.emit.bind(proc) as (event: string | symbol, ...args: unknown[]) => boolean;
    proc.emit = ((event: string | symbol, ...args: unknown[]) => {
      if (event === 'message' || event === 'disconnect') {
        setTimeout(() => emit(event, ...args), 300);
        return true;
      }
      return emit(event, ...args);
    }) as typeof proc.emit;
    await m.put('gracefulDie', 1);
    await m.put('return', 2);
    const summary = await m.join();
    expect(got.map((g) => `${g.args[0]}:${g.status}`).sort()).toEqual(['gracefulDie:error', 'return:ok']);
    expect(summary).toMatchObject({ total: 2, ok: 1, error: 1, crashed: 0 });
    // Its outcome is the one its first child sent: it was neither settled crashed nor run again elsewhere.
    const die = got.find((g) => g.args[0] === 'gracefulDie')!;
    expect(die.pid).toBe(proc.pid);
    expect(die.attempts).toBe(1);
  });
});
