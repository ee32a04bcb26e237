#!/usr/bin/env node
// Where the first tasks after start() go: the cold phase (the first `--tasks` tasks) against the
// warm phase (the `--warm` tasks after it), per process and per kind of thread — main threads,
// worker threads, and V8's helper threads (background JIT compiles and GC) — as CPU per task read
// from /proc, which a loaded machine disturbs far less than wall time. Variants (Node flags,
// environment, another build) run interleaved in one invocation, so they compare side by side.
//
//   node bench/warmup.mjs [--reps 5] [--tasks 20000] [--warm 40000] [--processes 2] [--threads 2]
//        [--variant 'name|node flags|ENV=1 ENV2=x'] ...      (default: one variant, as built)
//   MPMS_DIST=/path/to/dist selects a build per variant (as an ENV entry).
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { processTree, snapshot, spent } from './lib/proc-cpu.mjs';
import { median } from './lib/stats.mjs';

const SELF = fileURLToPath(import.meta.url);
const TASKS = fileURLToPath(new URL('./workers/tasks.mjs', import.meta.url));
const { values: o } = parseArgs({
  options: {
    run: { type: 'boolean', default: false },
    reps: { type: 'string', default: '5' },
    tasks: { type: 'string', default: '20000' },
    warm: { type: 'string', default: '40000' },
    processes: { type: 'string', default: '2' },
    threads: { type: 'string', default: '2' },
    fn: { type: 'string', default: 'noop' },
    arg: { type: 'string', default: '' },
    variant: { type: 'string', multiple: true },
  },
});

async function run() {
  const dist = process.env.MPMS_DIST ?? fileURLToPath(new URL('../dist/', import.meta.url));
  const { MPMS } = await import(pathToFileURL(`${dist}/index.js`).href);
  const cold = Number(o.tasks);
  const warm = Number(o.warm);
  const arg = o.arg === '' ? null : Number(o.arg);
  let done = 0;
  const marks = new Map([[5000, 0], [cold, 0], [cold + warm, 0]]);
  let onAll;
  let all = new Promise((r) => (onAll = r));
  let target = cold;
  const m = new MPMS({
    worker: TASKS,
    export: o.fn,
    processes: Number(o.processes),
    threads: Number(o.threads),
    collector() {
      done++;
      if (marks.has(done)) marks.set(done, performance.now());
      if (done === target) onAll();
    },
  });
  const t0 = performance.now();
  await m.start();
  const t1 = performance.now();
  const pids = processTree(process.pid);
  const s0 = snapshot(pids);
  for (let i = 0; i < cold; i++) await m.put(arg ?? i);
  await all;
  const s1 = snapshot(pids);
  target = cold + warm;
  all = new Promise((r) => (onAll = r));
  const t2 = performance.now();
  for (let i = 0; i < warm; i++) await m.put(arg ?? i);
  await all;
  const s2 = snapshot(pids);
  const t3 = performance.now();
  await m.join();
  const split = (a, b) => {
    const master = spent(a, b, [process.pid]);
    const kids = spent(a, b, pids.slice(1));
    return { masterMain: master.main, masterV8: master.v8, childMain: kids.main, childV8: kids.v8, threads: kids.workers, wakeups: master.wakeups + kids.wakeups, wMaster: master.mainWakeups, wMasterV8: master.v8Wakeups, wChildMain: kids.mainWakeups, wChildV8: kids.v8Wakeups, wThreads: kids.workerWakeups };
  };
  const per = (x, n) => Object.fromEntries(Object.entries(x).map(([k, v]) => [k, (v * 1000) / n]));
  return {
    startMs: t1 - t0,
    first5kPerSec: 5000 / ((marks.get(5000) - t1) / 1000),
    coldPerSec: cold / ((marks.get(cold) - t1) / 1000),
    warmPerSec: warm / ((t3 - t2) / 1000),
    cold: per(split(s0, s1), cold), // µs (and wake-ups × 1000) per task
    warm: per(split(s1, s2), warm),
  };
}

function orchestrate() {
  const variants = (o.variant?.length ? o.variant : ['as built||']).map((v) => {
    const [name, flags = '', env = ''] = v.split('|');
    return { name, flags: flags.split(' ').filter(Boolean), env: Object.fromEntries(env.split(' ').filter(Boolean).map((kv) => kv.split('='))) };
  });
  const pass = ['--tasks', o.tasks, '--warm', o.warm, '--processes', o.processes, '--threads', o.threads, '--fn', o.fn, '--arg', o.arg];
  const res = new Map(variants.map((v) => [v.name, []]));
  for (let r = 0; r < Number(o.reps); r++) {
    for (const v of variants) {
      const p = spawnSync(process.execPath, [...v.flags, SELF, '--run', ...pass], { env: { ...process.env, ...v.env }, encoding: 'utf8', timeout: 120_000 });
      const line = p.stdout.split('\n').find((l) => l.startsWith('{'));
      if (!line) throw new Error(`variant ${v.name} failed: ${p.stderr.slice(-2000)}`);
      const x = JSON.parse(line);
      res.get(v.name).push(x);
      console.error(`rep ${r + 1} ${v.name}: cold ${Math.round(x.coldPerSec)}/s, warm ${Math.round(x.warmPerSec)}/s, ratio ${(x.coldPerSec / x.warmPerSec).toFixed(2)}`);
    }
  }
  const f = (xs, d = 1) => `${median(xs).toFixed(d)} (${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)})`;
  console.log(`\n### Warm-up: first ${o.tasks} tasks after start() vs the next ${o.warm}, P${o.processes}×T${o.threads}, ${o.fn}, ${o.reps} reps interleaved (node ${process.version})\n`);
  console.log('| variant | first 5k/s | cold/s | warm/s | cold ÷ warm | CPU µs/task cold: master main + V8 helpers, children main + V8 helpers, threads (total) | warm: the same | wake-ups/task cold → warm | warm wake-ups/task: master main, master V8, children main, children V8, threads |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  const cpu = (xs, ph) => {
    const ks = ['masterMain', 'masterV8', 'childMain', 'childV8', 'threads'];
    if (ph === 'wake') {
      const ws = ['wMaster', 'wMasterV8', 'wChildMain', 'wChildV8', 'wThreads'];
      return ws.map((k) => (median(xs.map((x) => x.warm[k])) / 1000).toFixed(2)).join(', ');
    }
    const parts = ks.map((k) => median(xs.map((x) => x[ph][k])).toFixed(1));
    const total = median(xs.map((x) => ks.reduce((s, k) => s + x[ph][k], 0))).toFixed(1);
    return `${parts[0]} + ${parts[1]}, ${parts[2]} + ${parts[3]}, ${parts[4]} (${total})`;
  };
  for (const [name, xs] of res) {
    console.log(`| ${name} | ${f(xs.map((x) => x.first5kPerSec), 0)} | ${f(xs.map((x) => x.coldPerSec), 0)} | ${f(xs.map((x) => x.warmPerSec), 0)} | ${f(xs.map((x) => x.coldPerSec / x.warmPerSec), 2)} | ${cpu(xs, 'cold')} | ${cpu(xs, 'warm')} | ${median(xs.map((x) => x.cold.wakeups / 1000)).toFixed(2)} → ${median(xs.map((x) => x.warm.wakeups / 1000)).toFixed(2)} | ${cpu(xs, 'wake')} |`);
  }
}

if (o.run) console.log(JSON.stringify(await run()));
else orchestrate();
