// Restart storm: does recycling threads cost throughput? 10,000 short CPU tasks at P2×T4, with
// jittered lifecycles (± 20%) of several lengths and without, interleaved in one run.
// Target (issue 3): recycling keeps >= 90% of the plain run's throughput. Each thread restart
// costs a Worker boot and teardown in CPU (an empty Worker alone costs ~17–19 ms here), so the
// ratio is bounded by restarts × that cost against the work's own CPU; the table reports both,
// so the lifecycle at which the target holds can be read off, with what bounds it below.
// Successors are booted ahead of a retirement (child/relay.ts), so with I/O-like tasks (cores
// to spare) a restart should cost nothing; `warm` counts restarts whose successor was ready.
//   node bench/restart-storm.mjs [--tasks N] [--reps N] [--lifecycles 50,200,1000] [--task-ms 0.2]
//                                [--task spin|sleep] [--processes 2] [--threads 4]
import { parseArgs } from 'node:util';
import fs from 'node:fs';
import { MPMS } from '../dist/index.js';

const { values } = parseArgs({
  options: { tasks: { type: 'string', default: '10000' }, reps: { type: 'string', default: '3' }, lifecycles: { type: 'string', default: '50,200,1000' }, 'task-ms': { type: 'string', default: '0.2' }, task: { type: 'string', default: 'spin' }, processes: { type: 'string', default: '2' }, threads: { type: 'string', default: '4' } },
});
const tasks = Number(values.tasks);
const reps = Number(values.reps);
const lifecycles = values.lifecycles.split(',').map(Number);
const taskMs = Number(values['task-ms']);
const task = values.task;
const processes = Number(values.processes);
const threads = Number(values.threads);
const worker = new URL('./workers/tasks.mjs', import.meta.url);

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

async function run(lifecycle) {
  const m = new MPMS({ worker, export: task, processes, threads, collector: () => {}, ...(lifecycle ? { lifecycle, lifecycleJitter: 0.2 } : {}) });
  const cpu0 = cpuMs();
  let warm = 0;
  m.on('restart', (e) => void (e.warm && warm++));
  await m.start();
  const guard = setTimeout(() => {
    console.error('restart-storm: a run took more than 120 s', m.metrics());
    process.exit(3);
  }, 120_000);
  const t0 = performance.now();
  for (let i = 0; i < tasks; i++) await m.put(taskMs);
  const summary = await m.join();
  const ms = performance.now() - t0;
  clearTimeout(guard);
  if (summary.ok !== tasks) throw new Error(`expected ${tasks} ok, got ${JSON.stringify(summary)}`);
  return { rate: (tasks / ms) * 1000, restarts: m.metrics().restarts.lifecycle, warm, cpu: cpuMs() - cpu0 };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const plain = [];
const rows = lifecycles.map((lifecycle) => ({ lifecycle, rates: [], ratios: [], restarts: [], warm: [], cpuPerRestart: [] }));
for (let r = 0; r < reps; r++) {
  const a = await run(0);
  plain.push(a.rate);
  for (const row of rows) {
    const b = await run(row.lifecycle);
    row.rates.push(b.rate);
    row.ratios.push(b.rate / a.rate);
    row.restarts.push(b.restarts);
    row.warm.push(b.warm);
    if (b.restarts > 0) row.cpuPerRestart.push((b.cpu - a.cpu) / b.restarts);
    console.error(`rep ${r + 1}/${reps}: plain ${a.rate.toFixed(0)}/s, lifecycle ${row.lifecycle}: ${b.rate.toFixed(0)}/s (${b.restarts} thread restarts, ${b.warm} warm), ratio ${(b.rate / a.rate).toFixed(3)}`);
  }
}
const fmt = (xs, d = 0) => (xs.length ? `${median(xs).toFixed(d)} (${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)})` : '–');
console.log(`### Restart storm: ${tasks} tasks of ~${taskMs} ms ${task === 'spin' ? 'CPU' : task}, P${processes}×T${threads}, ${reps} reps interleaved (node ${process.version}, ${new Date().toISOString().slice(0, 10)})\n`);
console.log('| case | tasks/s | thread restarts | warm | throughput vs no lifecycle (per rep) | extra CPU per restart (ms) |');
console.log('|---|---|---|---|---|---|');
console.log(`| no lifecycle | ${fmt(plain)} | 0 | | 1 | |`);
for (const row of rows) {
  console.log(`| lifecycle ${row.lifecycle} ± 20% | ${fmt(row.rates)} | ${fmt(row.restarts)} | ${fmt(row.warm)} | ${fmt(row.ratios, 3)} | ${fmt(row.cpuPerRestart, 1)} |`);
}
