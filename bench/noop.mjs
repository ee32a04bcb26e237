#!/usr/bin/env node
// No-op tasks/s at P2×T2: mpms vs tinypool (4 worker_threads in one process) vs the bare
// two-hop echo (bench/bare-echo.mjs, the floor of mpms's design). The machine is shared and
// noisy, so cases run interleaved (a, b, c, a, b, c, ...) and the figures to trust are the
// per-rep ratios; absolute rates are context.
//
// Every run is its own Node process: heaps and JIT state do not leak between cases, and a hung
// engine is killed (with every process it started) when its time bound passes, failing the
// bench with a message instead of hanging it. The orchestrator also checks that each run exits
// by itself after shutdown and leaves no descendant process behind.
//
// Usage: node bench/noop.mjs [--tasks N] [--tinypool-tasks N] [--reps N] [--quick]
//                            [--cases mpms,tinypool,bare[,bare:C:T]] [--timeout ms]
//   bare:C:T = bare echo with credit windows of C tasks per child and T per thread.
// Prints a markdown table on stdout; progress and diagnostics go to stderr.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import { createInterface } from 'node:readline';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { trackDescendants } from './proc-tree.mjs';

const SELF = fileURLToPath(import.meta.url);
const WORKER = fileURLToPath(new URL('./workers/noop.mjs', import.meta.url));
const RESULT_TAG = 'NOOP-BENCH-RESULT ';

const { values: args } = parseArgs({
  options: {
    case: { type: 'string' }, // internal: run one case in this process
    tasks: { type: 'string' },
    'tinypool-tasks': { type: 'string' },
    rtt: { type: 'string' },
    reps: { type: 'string', default: '3' },
    quick: { type: 'boolean', default: false },
    cases: { type: 'string', default: 'mpms,tinypool,bare' },
    timeout: { type: 'string', default: '120000' },
    // Also write the table to this file (npm run bench writes docs/benchmarks.md).
    write: { type: 'string' },
  },
});

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const percentile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

// ------------------------------------------------------------------ one case, in its own process

async function runCase(name, tasks, rttTasks, timeoutMs) {
  const state = { phase: 'start', done: 0, put: 0, describe: () => '' };
  // Inner bound: say where the run stopped before leaving; the orchestrator's outer bound then
  // kills whatever this process started.
  const guard = setTimeout(() => {
    console.error(
      `noop bench: case '${name}' exceeded ${timeoutMs} ms in phase '${state.phase}' ` +
        `(put ${state.put}, results ${state.done} of ${tasks})${state.describe()}`,
    );
    process.exit(3);
  }, timeoutMs);
  // Left referenced: a stall with nothing else pending must still end in this diagnosis, not
  // in Node's bare 'unsettled top-level await' exit.

  let res;
  try {
    if (name === 'mpms') res = await caseMpms(tasks, rttTasks, state);
    else if (name === 'tinypool') res = await caseTinypool(tasks, rttTasks, state);
    else if (name === 'selftest-hang') res = await caseSelftestHang();
    else if (name.startsWith('bare')) res = await caseBare(name, tasks, rttTasks, timeoutMs);
    else throw new Error(`unknown case ${name}`);
  } catch (err) {
    console.error(`noop bench: case '${name}' threw in phase '${state.phase}' (put ${state.put}, results ${state.done}): ${err?.stack ?? err}`.replace(/\n\s*/g, ' | '));
    process.exit(1);
  }
  clearTimeout(guard);
  process.stdout.write(RESULT_TAG + JSON.stringify({ case: name, ...res }) + '\n');
  // No process.exit: the orchestrator checks that the process leaves by itself (no handle left).
}

async function caseMpms(tasks, rttTasks, state) {
  const { MPMS } = await import('../dist/index.js');
  const seen = new Uint8Array(tasks + rttTasks);
  const bad = [];
  let allIn;
  const allDone = new Promise((resolve) => (allIn = resolve));
  let next = null; // resolver for the one task the round-trip phase is waiting on
  let tLast = 0;
  const collector = (meta, result) => {
    const arg = meta.args?.[0];
    if (meta.status !== 'ok' || result !== arg || seen[arg]) {
      if (bad.length < 5) bad.push({ taskId: meta.taskId, status: meta.status, arg, result: String(result) });
    } else {
      seen[arg] = 1;
    }
    state.done++;
    if (state.done === tasks) {
      tLast = performance.now();
      allIn();
    }
    if (next) {
      const r = next;
      next = null;
      r(meta);
    }
  };

  const t0 = performance.now();
  const m = new MPMS({ worker: WORKER, processes: 2, threads: 2, collector });
  state.describe = () => {
    try {
      return `; metrics ${JSON.stringify(m.metrics())}`;
    } catch (err) {
      return `; metrics() threw ${err}`;
    }
  };
  await m.start();
  const startMs = performance.now() - t0;

  state.phase = 'throughput';
  const t1 = performance.now();
  for (let i = 0; i < tasks; i++) {
    await m.put(i);
    state.put++;
  }
  await allDone;
  const elapsedMs = tLast - t1;

  state.phase = 'round trip';
  const rtts = [];
  for (let j = 0; j < rttTasks; j++) {
    const got = new Promise((resolve) => (next = resolve));
    const s = performance.now();
    await m.put(tasks + j);
    state.put++;
    await got;
    rtts.push(performance.now() - s);
  }

  state.phase = 'join';
  const t2 = performance.now();
  const summary = await m.join();
  const stopMs = performance.now() - t2;

  const expected = tasks + rttTasks;
  const problems = [];
  if (state.done !== expected) problems.push(`collector saw ${state.done} results, expected ${expected}`);
  if (bad.length) problems.push(`bad results: ${JSON.stringify(bad)}`);
  if (summary?.total !== expected || summary?.ok !== expected) problems.push(`summary ${JSON.stringify(summary)}`);
  return result(tasks, elapsedMs, rtts, startMs, stopMs, problems);
}

async function caseTinypool(tasks, rttTasks, state) {
  const { default: Tinypool } = await import('tinypool');
  const t0 = performance.now();
  const pool = new Tinypool({ filename: WORKER, minThreads: 4, maxThreads: 4 });
  // Threads start lazily; one task each makes start-up comparable to mpms's start().
  await Promise.all([0, 1, 2, 3].map((i) => pool.run(i)));
  const startMs = performance.now() - t0;

  state.phase = 'throughput';
  const WINDOW = 1000; // bounded memory, like mpms's queue bound
  const problems = [];
  const t1 = performance.now();
  await new Promise((resolve, reject) => {
    let next = 0;
    const launch = () => {
      while (next - state.done < WINDOW && next < tasks) {
        const i = next++;
        state.put++;
        pool.run(i).then((v) => {
          if (v !== i && problems.length < 5) problems.push(`task ${i} returned ${v}`);
          if (++state.done === tasks) resolve();
          else launch();
        }, reject);
      }
    };
    launch();
  });
  const elapsedMs = performance.now() - t1;

  state.phase = 'round trip';
  const rtts = [];
  for (let j = 0; j < rttTasks; j++) {
    const s = performance.now();
    await pool.run(j);
    rtts.push(performance.now() - s);
  }

  state.phase = 'destroy';
  const t2 = performance.now();
  await pool.destroy();
  const stopMs = performance.now() - t2;
  return result(tasks, elapsedMs, rtts, startMs, stopMs, problems);
}

// Checks the bench's own safety net: a run that blocks its event loop (so its inner bound cannot
// fire) with a live child must be killed, child included, by the outer bound.
async function caseSelftestHang() {
  spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore', detached: true });
  await new Promise((r) => setTimeout(r, 700)); // let the tracker see the child
  for (;;);
}

// 'bare' uses bare-echo's default windows; 'bare:C:T' sets the per-child and per-thread credit
// windows, e.g. to match the engine's and separate what windows cost from what bookkeeping costs.
async function caseBare(name, tasks, rttTasks, timeoutMs) {
  const { runBareEcho, DEFAULTS } = await import('./bare-echo.mjs');
  const [, cw = DEFAULTS.childWindow, tw = DEFAULTS.threadWindow] = name.split(':').map(Number);
  const r = await runBareEcho({ processes: 2, threads: 2, tasks, rttTasks, timeoutMs, childWindow: cw, threadWindow: tw });
  return {
    tasks,
    tasksPerSec: r.tasksPerSec,
    rttP50: r.rtt.p50,
    rttP99: r.rtt.p99,
    startMs: r.startupMs,
    stopMs: r.stopMs,
    problems: [],
  };
}

function result(tasks, elapsedMs, rtts, startMs, stopMs, problems) {
  return {
    tasks,
    tasksPerSec: (tasks / elapsedMs) * 1000,
    rttP50: percentile(rtts, 0.5),
    rttP99: percentile(rtts, 0.99),
    startMs,
    stopMs,
    problems,
  };
}

// ------------------------------------------------------------------ orchestrator

// The engine may be rebuilt while a long run is under way; figures from two builds must not be
// reported as one, so the built code is fingerprinted before and after.
function distFingerprint() {
  const dir = fileURLToPath(new URL('../dist/', import.meta.url));
  const h = createHash('sha1');
  try {
    for (const f of readdirSync(dir, { recursive: true }).filter((f) => f.endsWith('.js')).sort()) {
      h.update(f).update(readFileSync(dir + f));
    }
  } catch {
    return 'no dist';
  }
  return h.digest('hex').slice(0, 12);
}

function runInChild(name, tasks, rttTasks, timeoutMs) {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [SELF, '--case', name, '--tasks', String(tasks), '--rtt', String(rttTasks), '--timeout', String(timeoutMs)],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const tree = trackDescendants(child.pid);
    let res = null;
    let exitTimer = null;
    const failures = [];
    const fail = (msg) => failures.push(msg);

    // The run's own diagnosis (which phase, how far, engine metrics) becomes the failure text.
    let diagnosis = null;
    createInterface({ input: child.stderr }).on('line', (line) => {
      if (line.startsWith('noop bench: ')) diagnosis = line.slice('noop bench: '.length);
      process.stderr.write(`[${name}] ${line}\n`);
    });
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (!line.startsWith(RESULT_TAG)) return void process.stderr.write(`[${name}] ${line}\n`);
      res = JSON.parse(line.slice(RESULT_TAG.length));
      // After its result the run must leave on its own: a live handle here is an engine leak.
      exitTimer = setTimeout(() => {
        fail(`case '${name}' printed its result but did not exit within 10 s (a handle is left open); killed`);
        tree.sample();
        tree.kill();
        child.kill('SIGKILL');
      }, 10_000);
    });

    // Outer bound: the inner one prints and exits first; this catches a process too stuck for it.
    const hard = setTimeout(() => {
      fail(`case '${name}' did not finish within ${timeoutMs + 15_000} ms; killed it and ${tree.alive().length} descendants`);
      tree.sample();
      tree.kill();
      child.kill('SIGKILL');
    }, timeoutMs + 15_000);

    child.on('exit', async (code, signal) => {
      clearTimeout(hard);
      clearTimeout(exitTimer);
      tree.stop();
      if (!failures.length && code !== 0) {
        fail(diagnosis ?? `case '${name}' exited with code ${code}${signal ? ` (${signal})` : ''}`);
      }
      // Children of a finished engine get a few seconds to go; what stays is reported and killed.
      let left = tree.alive();
      for (let i = 0; i < 50 && left.length; i++) {
        await new Promise((r) => setTimeout(r, 100));
        left = tree.alive();
      }
      if (left.length) {
        fail(
          `case '${name}' left ${left.length} process(es) alive 5 s after it exited (killed now): ` +
            left.map((p) => `${p.pid} (${p.comm})`).join(', '),
        );
        tree.kill();
      }
      if (res?.problems?.length) fail(`case '${name}' finished with wrong results: ${res.problems.join('; ')}`);
      const failure = failures.length ? failures.join('; and ') : null;
      resolve({ res: failure ? null : res, failure });
    });
  });
}

async function orchestrate() {
  const quick = args.quick;
  const tasks = Number(args.tasks ?? (quick ? 20_000 : 100_000));
  const tpTasks = Number(args['tinypool-tasks'] ?? tasks);
  const rttTasks = Number(args.rtt ?? (quick ? 200 : 500));
  const reps = Number(args.reps);
  const timeoutMs = Number(args.timeout);
  const cases = args.cases.split(',').map((s) => s.trim()).filter(Boolean);
  const label = (c) => {
    if (c === 'mpms') return 'mpms P2×T2';
    if (c === 'tinypool') return 'tinypool, 4 threads';
    if (c === 'bare') return 'bare echo P2×T2';
    if (!c.startsWith('bare:')) return c;
    const [, cw, tw] = c.split(':');
    return `bare echo P2×T2, windows ${cw}/child ${tw}/thread`;
  };

  const build = cases.includes('mpms') ? distFingerprint() : null;
  const runs = Object.fromEntries(cases.map((c) => [c, []])); // per rep; null where it failed
  const failures = [];
  const broken = new Set();
  for (let r = 0; r < reps; r++) {
    for (const c of cases) {
      if (broken.has(c)) {
        runs[c].push(null);
        continue;
      }
      const n = c === 'tinypool' ? tpTasks : tasks;
      const { res, failure } = await runInChild(c, n, rttTasks, timeoutMs);
      if (failure) {
        console.error(`noop bench: ${failure}`);
        failures.push(failure);
        broken.add(c); // one failure is the finding; repeating it only costs time
      } else {
        process.stderr.write(
          `rep ${r + 1}/${reps} ${c}: ${Math.round(res.tasksPerSec)} tasks/s, rtt p50 ${res.rttP50.toFixed(3)} ms\n`,
        );
      }
      runs[c].push(res);
    }
  }

  if (build && distFingerprint() !== build) {
    failures.push('dist/ changed during the run (engine rebuilt): the mpms figures mix two builds; run again');
  }

  const int = (x) => Math.round(x).toLocaleString('en-US');
  const ms = (x) => (x >= 100 ? Math.round(x).toString() : x.toFixed(x >= 10 ? 1 : 3));
  const x2 = (x) => x.toFixed(2);
  const span = (xs, f, unit = '') =>
    xs.length ? `${f(median(xs))} (${f(Math.min(...xs))}–${f(Math.max(...xs))})${unit}` : 'failed';
  const ok = (c) => runs[c].filter(Boolean);
  const col = (c, k, f) => span(ok(c).map((r) => r[k]), f);

  const out = [];
  out.push(
    `### No-op tasks, P2×T2 (node ${process.version}, ${reps} reps interleaved, median (min–max)` +
      `${build ? `, dist ${build}` : ''})`,
    '',
    '| case | tasks/run | tasks/s | idle RTT p50 (ms) | idle RTT p99 (ms) | start (ms) | stop (ms) |',
    '|---|---|---|---|---|---|---|',
  );
  for (const c of cases) {
    const n = c === 'tinypool' ? tpTasks : tasks;
    out.push(
      `| ${label(c)} | ${int(n)} | ${col(c, 'tasksPerSec', int)} | ${col(c, 'rttP50', ms)} | ` +
        `${col(c, 'rttP99', ms)} | ${col(c, 'startMs', ms)} | ${col(c, 'stopMs', ms)} |`,
    );
  }
  // Ratios pair runs of the same rep, which ran back to back.
  const ratio = (a, b, k) => {
    const xs = [];
    for (let r = 0; r < reps; r++) if (runs[a]?.[r] && runs[b]?.[r]) xs.push(runs[a][r][k] / runs[b][r][k]);
    return span(xs, x2, '×');
  };
  for (const b of cases.filter((c) => c !== 'mpms')) {
    const a = 'mpms';
    if (!runs[a]) continue;
    out.push(
      `| **mpms / ${label(b)}** (per-rep ratio) | | ${ratio(a, b, 'tasksPerSec')} | ` +
        `${ratio(a, b, 'rttP50')} | ${ratio(a, b, 'rttP99')} | | |`,
    );
  }
  out.push(
    '',
    `tasks/s: first put to last result (start-up and shutdown excluded, shown apart). Idle RTT: ${rttTasks} ` +
      'sequential single tasks on the warm, idle pool. Windows: tinypool 1000 in flight; bare echo 256 per child, 64 per thread.',
  );
  if (failures.length) out.push('', '**Failures:**', ...failures.map((f) => `- ${f}`));
  console.log('\n' + out.join('\n'));
  if (args.write) {
    const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.platform()} ${os.release()}`;
    const head = [
      '# Benchmarks',
      '',
      `Written by \`npm run bench\` (bench/noop.mjs) on ${new Date().toISOString().slice(0, 10)}. Machine: ${machine}; Node ${process.version}.`,
      'Every figure is a median (min–max) over repetitions run interleaved in the same run; ratios are per repetition. The machine is shared: compare ratios, not absolute figures across runs.',
      '',
      'External reference (the Python MPMS library, measured on this machine class, quoted): no-op P2×T2 ≈ 11,500 tasks/s.',
      '',
    ];
    fs.writeFileSync(args.write, head.join('\n') + out.join('\n') + '\n');
    console.log(`\nwritten to ${args.write}`);
  }
  process.exitCode = failures.length ? 1 : 0;
}

if (args.case) {
  await runCase(args.case, Number(args.tasks), Number(args.rtt ?? 500), Number(args.timeout));
} else {
  await orchestrate();
}
