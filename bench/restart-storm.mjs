// Restart storm: does recycling threads cost throughput? 10,000 tasks at P2×T4, with jittered
// lifecycles (± 20%) of several lengths and without, interleaved in one run.
// Target (issue 3): recycling keeps >= 90% of the plain run's throughput.
//
// Two costs can eat into it, and the default workloads separate them:
// - CPU: each thread restart costs a Worker boot and teardown (an empty Worker alone costs
//   ~20–25 ms of CPU here). When every core is busy (CPU tasks), that CPU is taken from the work,
//   so the ratio is about W / (W + R): W the work a thread does between restarts, R the cost of
//   one. The table reports R, so the lifecycle at which the target holds can be read off.
// - Capacity: a slot idles while its replacement boots. Successors are booted ahead of a
//   retirement for threads that mostly wait (child/relay.ts), so with I/O-like tasks (cores to
//   spare) a restart should cost nothing; `warm` counts restarts whose successor was ready.
//
//   node bench/restart-storm.mjs                      # the default workloads below
//   node bench/restart-storm.mjs --task spin --task-ms 0.2 --lifecycles 50,200,1000
//        [--tasks N] [--reps N] [--task spin|sleep] [--processes 2] [--threads 4]
import { parseArgs } from 'node:util';
import fs from 'node:fs';
import { MPMS } from '../dist/index.js';

const { values } = parseArgs({
  options: {
    tasks: { type: 'string', default: '10000' },
    reps: { type: 'string', default: '3' },
    lifecycles: { type: 'string' },
    'task-ms': { type: 'string' },
    task: { type: 'string' },
    processes: { type: 'string', default: '2' },
    threads: { type: 'string', default: '4' },
  },
});
const tasks = Number(values.tasks);
const reps = Number(values.reps);
const processes = Number(values.processes);
const threads = Number(values.threads);
const worker = new URL('./workers/tasks.mjs', import.meta.url);

/** What runs: one workload from the flags, or the default set. */
const workloads =
  values.task || values['task-ms'] || values.lifecycles
    ? [{ task: values.task ?? 'spin', ms: Number(values['task-ms'] ?? 0.2), lifecycles: (values.lifecycles ?? '50,200,1000').split(',').map(Number) }]
    : [
        // Short CPU tasks: ~200 ms of work per thread life at lifecycle 1000 — the edge of the target.
        { task: 'spin', ms: 0.2, lifecycles: [1000, 2000] },
        { task: 'spin', ms: 1, lifecycles: [500, 1000] },
        // I/O-like: what recycling costs when cores are not all busy.
        { task: 'sleep', ms: 2, lifecycles: [100, 300] },
      ];

/** CPU ms of this process plus its reaped children (Linux /proc; children count once they exited). */
function cpuMs() {
  const own = process.cpuUsage();
  let children = 0;
  try {
    const f = fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
    children = ((Number(f[13]) + Number(f[14])) * 1000) / 100; // cutime + cstime, in clock ticks (100 Hz)
  } catch {
    // Not Linux: CPU per restart is not reported.
  }
  return (own.user + own.system) / 1000 + children;
}

async function run(w, lifecycle) {
  const m = new MPMS({ worker, export: w.task, processes, threads, collector: () => {}, ...(lifecycle ? { lifecycle, lifecycleJitter: 0.2 } : {}) });
  const cpu0 = cpuMs();
  let warm = 0;
  m.on('restart', (e) => void (e.warm && warm++));
  await m.start();
  const guard = setTimeout(() => {
    console.error('restart-storm: a run took more than 120 s', m.metrics());
    process.exit(3);
  }, 120_000);
  const t0 = performance.now();
  for (let i = 0; i < tasks; i++) await m.put(w.ms);
  const summary = await m.join();
  const ms = performance.now() - t0;
  clearTimeout(guard);
  if (summary.ok !== tasks) throw new Error(`expected ${tasks} ok, got ${JSON.stringify(summary)}`);
  return { rate: (tasks / ms) * 1000, restarts: m.metrics().restarts.lifecycle, warm, cpu: cpuMs() - cpu0 };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (xs, d = 0) => (xs.length ? `${median(xs).toFixed(d)} (${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)})` : '–');
const what = (w) => `${w.ms} ms ${w.task === 'spin' ? 'CPU' : w.task}`;

const results = workloads.map((w) => ({ w, plain: [], rows: w.lifecycles.map((lifecycle) => ({ lifecycle, rates: [], ratios: [], restarts: [], warm: [], cpuPerRestart: [] })) }));
for (let r = 0; r < reps; r++) {
  for (const { w, plain, rows } of results) {
    const a = await run(w, 0);
    plain.push(a.rate);
    for (const row of rows) {
      const b = await run(w, row.lifecycle);
      row.rates.push(b.rate);
      row.ratios.push(b.rate / a.rate);
      row.restarts.push(b.restarts);
      row.warm.push(b.warm);
      if (b.restarts > 0) row.cpuPerRestart.push((b.cpu - a.cpu) / b.restarts);
      console.error(`rep ${r + 1}/${reps}, ${what(w)}: plain ${a.rate.toFixed(0)}/s, lifecycle ${row.lifecycle}: ${b.rate.toFixed(0)}/s (${b.restarts} thread restarts, ${b.warm} warm), ratio ${(b.rate / a.rate).toFixed(3)}`);
    }
  }
}
console.log(`### Restart storm: ${tasks} tasks, P${processes}×T${threads}, ${reps} reps interleaved (node ${process.version}, ${new Date().toISOString().slice(0, 10)})\n`);
console.log('| tasks | case | tasks/s | thread restarts | warm | throughput vs no lifecycle (per rep) | extra CPU per restart (ms) |');
console.log('|---|---|---|---|---|---|---|');
for (const { w, plain, rows } of results) {
  console.log(`| ${what(w)} | no lifecycle | ${fmt(plain)} | 0 | | 1 | |`);
  for (const row of rows) {
    console.log(`| ${what(w)} | lifecycle ${row.lifecycle} ± 20% | ${fmt(row.rates)} | ${fmt(row.restarts)} | ${fmt(row.warm)} | ${fmt(row.ratios, 3)} | ${fmt(row.cpuPerRestart, 1)} |`);
  }
}
