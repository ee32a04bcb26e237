// Restart storm: does recycling threads cost throughput? 10,000 short CPU tasks at P2×T4, with
// jittered lifecycles (a thread retires every ~50 tasks) and without, interleaved in one run.
// Target (issue 3): the lifecycle run keeps >= 90% of the plain run's throughput.
//   node bench/restart-storm.mjs [--tasks N] [--reps N] [--lifecycle N]
import { parseArgs } from 'node:util';
import { MPMS } from '../dist/index.js';

const { values } = parseArgs({ options: { tasks: { type: 'string', default: '10000' }, reps: { type: 'string', default: '3' }, lifecycle: { type: 'string', default: '50' } } });
const tasks = Number(values.tasks);
const reps = Number(values.reps);
const lifecycle = Number(values.lifecycle);
const worker = new URL('./workers/spin.mjs', import.meta.url);

async function run(withLifecycle) {
  const m = new MPMS({
    worker,
    processes: 2,
    threads: 4,
    collector: () => {},
    ...(withLifecycle ? { lifecycle, lifecycleJitter: 0.2 } : {}),
  });
  await m.start();
  const guard = setTimeout(() => {
    console.error('restart-storm: a run took more than 120 s', m.metrics());
    process.exit(3);
  }, 120_000);
  const t0 = performance.now();
  for (let i = 0; i < tasks; i++) await m.put(0.2);
  const summary = await m.join();
  clearTimeout(guard);
  const ms = performance.now() - t0;
  if (summary.ok !== tasks) throw new Error(`expected ${tasks} ok, got ${JSON.stringify(summary)}`);
  return { rate: (tasks / ms) * 1000, restarts: m.metrics().restarts.lifecycle };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const plain = [];
const storm = [];
const ratios = [];
let restarts = 0;
for (let r = 0; r < reps; r++) {
  const a = await run(false);
  const b = await run(true);
  plain.push(a.rate);
  storm.push(b.rate);
  ratios.push(b.rate / a.rate);
  restarts = b.restarts;
  console.error(`rep ${r + 1}/${reps}: plain ${a.rate.toFixed(0)}/s, lifecycle ${b.rate.toFixed(0)}/s (${b.restarts} thread restarts), ratio ${(b.rate / a.rate).toFixed(3)}`);
}
const fmt = (xs, d = 0) => `${median(xs).toFixed(d)} (${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)})`;
console.log(`### Restart storm: ${tasks} tasks of ~0.2 ms CPU, P2×T4, ${reps} reps interleaved (node ${process.version})\n`);
console.log('| case | tasks/s | thread restarts |');
console.log('|---|---|---|');
console.log(`| no lifecycle | ${fmt(plain)} | 0 |`);
console.log(`| lifecycle ${lifecycle} ± 20% | ${fmt(storm)} | ${restarts} |`);
console.log(`| **ratio** (per rep) | ${fmt(ratios, 3)} | |`);
