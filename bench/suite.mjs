#!/usr/bin/env node
// The benchmark suite: mpms against its peers (tinypool in both runtimes, piscina, workerpool's
// process mode, a bare fork + worker_threads echo) on the same machine in the same run, over
// every workload of bench/workloads.mjs. The machine is shared and noisy, so the cases of a
// workload run interleaved (a, b, c, a, b, c, ...), every figure is a median (min–max) over the
// repetitions, and ratios pair the runs of one repetition. Each run is its own process, bounded
// (bench/lib/isolate.mjs): a hung engine fails the suite with a diagnosis, never hangs it.
//
// Usage: node bench/suite.mjs [--quick] [--reps N] [--only noop,latency,...] [--write FILE]
//                             [--baseline DIR]
//   --quick  smaller runs, 2 reps, P2×T2 only: under 2 minutes
//   --baseline  also run every mpms case on the build in DIR (another checkout's dist/),
//            interleaved with the rest: before/after figures from one run, side by side
//   --write  also write the report there (npm run bench: docs/benchmarks.md) and its SVG charts
//            to a `bench/` folder beside it
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WORKLOADS } from './workloads.mjs';
import { runIsolated, runCaseBody } from './lib/isolate.mjs';
import { barChart } from './lib/svg.mjs';
import { fmt } from './lib/stats.mjs';

const SELF = fileURLToPath(import.meta.url);
const CASE_TIMEOUT_MS = Number(process.env.MPMS_BENCH_CASE_TIMEOUT_MS ?? 120_000);

const { values: args } = parseArgs({
  options: {
    case: { type: 'string' }, // internal: run one case (JSON) in this process
    quick: { type: 'boolean', default: false },
    reps: { type: 'string' },
    only: { type: 'string' },
    write: { type: 'string' },
    baseline: { type: 'string' },
  },
});

// The reference Python library (MPMS), measured on this machine class: quoted, not re-run here.
const PYTHON = [
  ['no-op, P2×T2', '≈ 11,500 tasks/s'],
  ['10 ms sleeps, P2×T16', '≈ 2,770 tasks/s (87% of ideal)'],
  ['CPU 5 ms, P2×T1', 'efficiency 0.81'],
  ['100 KB results', '≈ 300 MB/s'],
];
const PYTHON_DATE = '2026-11 (figures given with the project brief)';

/** Targets of issue 6, checked against the medians of this run. */
const TARGETS = [
  ['No-op P2×T2', (f) => f['noop P2×T2'], (x) => x >= 300_000, '≥ 300,000 tasks/s', fmt.int],
  ['No-op P2×T2 ÷ bare echo', (f) => f['noop P2×T2 / bare'], (x) => x >= 0.25, '≥ 0.25', fmt.x2],
  ['No-op P2×T2 ÷ tinypool threads', (f) => f['noop P2×T2 / tinypool'], (x) => x >= 15, '≥ 15×', fmt.x2],
  ['No-op P4×T4 ÷ bare echo', (f) => f['noop P4×T4 / bare'], (x) => x >= 0.25, '≥ 0.25 (no worse than P2×T2)', fmt.x2],
  ['No-op P4×T4 ÷ tinypool threads', (f) => f['noop P4×T4 / tinypool'], (x) => x >= 15, '≥ 15×', fmt.x2],
  ['Idle round trip p50', (f) => f.idleP50, (x) => x <= 0.5, '≤ 0.5 ms', fmt.ms],
  ['Round trip p99 under a flood', (f) => f.loadP99, (x) => x <= 20, '≤ 20 ms', fmt.ms],
  ['CPU-bound efficiency vs bare processes', (f) => f.cpuEfficiency, (x) => x >= 0.95, '≥ 0.95', fmt.x2],
  ['10 ms async tasks, 32 in flight', (f) => f.sleepEfficiency, (x) => x >= 0.97, '≥ 0.97 of ideal', fmt.x2],
  ['… the same ÷ 10 ms timers in the master itself', (f) => f.sleepVsTimers, (x) => x >= 0.97, '≥ 0.97', fmt.x2],
  ['1 MB Buffer results', (f) => f.mb1, (x) => x >= 600, '≥ 600 MB/s', fmt.int],
  ['1 MB Buffer results ÷ bare echo', (f) => f.mb1VsBare, (x) => x >= 0.65, '≥ 0.65', fmt.x2],
  ['start() at P2×T2', (f) => f.startMs, (x) => x <= 250, '≤ 250 ms', fmt.ms],
  ['last result → join() resolved', (f) => f.stopMs, (x) => x <= 50, '≤ 50 ms', fmt.ms],
  ['SIGKILLed child → tasks settled + replacement ready', (f) => f.recoveryMs, (x) => x <= 500, '≤ 500 ms', fmt.ms],
  ['Lifecycle 1000 ± 20% ÷ no lifecycle (P2×T4, 0.2 ms CPU tasks: ~200 ms of work per thread life)', (f) => f.lifecycleRatio, (x) => x >= 0.9, '≥ 0.90 (issue 3)', fmt.x2],
  ['Lifecycle 500 ± 20% ÷ no lifecycle (P2×T4, 1 ms CPU tasks)', (f) => f.lifecycleCpu1Ratio, (x) => x >= 0.9, '≥ 0.90 (issue 3)', fmt.x2],
  ['Lifecycle 300 ± 20% ÷ no lifecycle (P2×T4, 2 ms sleeps)', (f) => f.lifecycleIoRatio, (x) => x >= 0.9, '≥ 0.90 (issue 3)', fmt.x2],
  ['First 20k no-op tasks after start() ÷ warm rate (P2×T2)', (f) => f.coldVsWarm, (x) => x >= 0.7, '≥ 0.70 (issue 19)', fmt.x2],
  ['First 20k no-op tasks after start() ÷ tinypool threads\' first 20k', (f) => f.coldVsTinypool, (x) => x >= 5, '≥ 5× (issue 19)', fmt.x2],
  ['CPU-bound 5 ms tasks ÷ tinypool (P2×T1 vs 2 threads)', (f) => f.cpuVsTinypool, (x) => x >= 1, '≥ 1 (issue 19)', fmt.x2],
  ['Master RSS growth streaming the tasks', (f) => f.memoryGrowthMiB, (x) => x < 150, '< 150 MiB', fmt.mib],
];

function distFingerprint(dir = fileURLToPath(new URL('../dist/', import.meta.url))) {
  dir = dir.endsWith('/') ? dir : `${dir}/`;
  const h = createHash('sha1');
  try {
    for (const f of fs.readdirSync(dir, { recursive: true }).filter((f) => f.endsWith('.js')).sort()) h.update(f).update(fs.readFileSync(dir + f));
  } catch {
    return null;
  }
  return h.digest('hex').slice(0, 12);
}

async function orchestrate() {
  const quick = args.quick;
  const reps = Number(args.reps ?? (quick ? 2 : 3));
  const only = args.only?.split(',').map((s) => s.trim());
  const workloads = WORKLOADS.filter((w) => (only ? only.includes(w.id) : !w.hidden));
  const build = distFingerprint();
  if (!build) throw new Error('dist/ is missing: run `npm run build` first');
  const baseline = args.baseline ? path.resolve(args.baseline) : undefined;
  const baseBuild = baseline ? distFingerprint(baseline) : undefined;
  if (baseline && !baseBuild) throw new Error(`--baseline ${baseline}: no build there`);
  const factsBefore = {};
  const sectionsBefore = [];
  const t0 = performance.now();
  const failures = [];
  const sections = [];
  const charts = [];
  const facts = {};

  for (const w of workloads) {
    const cases = w.plan(quick);
    // The baseline's twin of each mpms case runs right after it, every rep.
    const twins = baseline ? cases.filter((c) => c.peer === 'mpms').map((c) => ({ ...c, key: `${c.key}:before`, label: `${c.label} [before]`, env: { MPMS_DIST: baseline } })) : [];
    const order = cases.flatMap((c) => [c, ...twins.filter((t) => t.key === `${c.key}:before`)]);
    const runs = Object.fromEntries(order.map((c) => [c.key, []]));
    const broken = new Set();
    process.stderr.write(`\n== ${w.title}\n`);
    for (let r = 0; r < reps; r++) {
      for (const c of order) {
        if (broken.has(c.key)) {
          runs[c.key].push(null);
          continue;
        }
        const spec = { workload: w.id, peer: c.peer, config: c.config, params: c.params, label: c.label };
        const { res, failure } = await runIsolated(SELF, ['--case', JSON.stringify(spec)], { label: c.label, timeoutMs: CASE_TIMEOUT_MS, env: c.env });
        if (failure) {
          process.stderr.write(`  FAILED ${failure}\n`);
          failures.push(failure);
          broken.add(c.key); // one failure is the finding; repeating it only costs time
        } else {
          const shown = Object.entries(res).filter(([k, v]) => typeof v === 'number' && !k.endsWith('At')).map(([k, v]) => `${k} ${v >= 100 ? Math.round(v) : v.toFixed(3)}`);
          process.stderr.write(`  rep ${r + 1}/${reps} ${c.label}: ${shown.join(', ')}\n`);
        }
        runs[c.key].push(res);
      }
    }
    const rep = w.report(cases, runs);
    Object.assign(facts, rep.facts);
    charts.push(...rep.charts);
    sections.push(`## ${w.title}`, '', ...rep.md, ...rep.charts.map((ch) => `\n![${ch.title}](bench/${ch.file})`), '');
    if (twins.length) {
      // The same report with the baseline's runs in the mpms cases' place (peers' runs shared).
      const before = w.report(cases, { ...runs, ...Object.fromEntries(twins.map((t) => [t.key.slice(0, -':before'.length), runs[t.key]])) });
      Object.assign(factsBefore, before.facts);
      sectionsBefore.push(`### ${w.title} — baseline build, same run`, '', ...before.md, '');
    }
  }
  if (distFingerprint() !== build) failures.push('dist/ changed during the run (engine rebuilt): the mpms figures mix two builds; run again');

  const beforeCell = (get, f) => (baseline ? ` ${Number.isFinite(get(factsBefore)) ? f(get(factsBefore)) : '–'} |` : '');
  const targetRows = TARGETS.filter(([, get]) => Number.isFinite(get(facts))).map(([what, get, met, target, f]) => `| ${what} | ${target} |${beforeCell(get, f)} ${f(get(facts))} | ${met(get(facts)) ? 'met' : '**missed**'} |`);
  const cpus = os.cpus();
  const seconds = Math.round((performance.now() - t0) / 1000);
  const doc = [
    '# Benchmarks',
    '',
    `Written by \`${quick ? 'npm run bench -- --quick' : 'npm run bench'}\` (bench/suite.mjs) on ${new Date().toISOString().slice(0, 10)} in ${seconds} s.`,
    `Machine: ${cpus.length} × ${cpus[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.platform()} ${os.release()}; Node ${process.version}; mpms dist ${build}.`,
    `Every figure is a median (min–max) over ${reps} repetitions run interleaved in this one run; ratios pair the runs of one repetition. The machine is shared: compare ratios, not absolute figures across runs.`,
    '',
    '## Targets (issue 6), medians of this run',
    '',
    ...(baseline
      ? [`Baseline build (\`--baseline\`): ${baseline}, dist ${baseBuild}; its mpms cases ran interleaved with the rest, each right after its twin.`, '', '| target | wanted | before (baseline) | measured | |', '|---|---|---|---|---|']
      : ['| target | wanted | measured | |', '|---|---|---|---|']),
    ...targetRows,
    '',
    'Where a target is missed, docs/architecture.md ("Performance") says what bounds it, measured.',
    '',
    ...sections,
    ...(sectionsBefore.length ? ['## The baseline build, same run', '', 'Every table again with the baseline build\'s figures in the mpms rows (the peers\' runs are the same).', '', ...sectionsBefore] : []),
    '## The reference Python library (external figures, quoted)',
    '',
    `MPMS (Python), measured on this machine class, ${PYTHON_DATE}; not re-run by this script.`,
    '',
    '| workload | MPMS (Python) |',
    '|---|---|',
    ...PYTHON.map(([a, b]) => `| ${a} | ${b} |`),
    ...(failures.length ? ['', '## Failures', '', ...failures.map((f) => `- ${f}`)] : []),
  ].join('\n');
  console.log('\n' + doc);
  if (args.write) {
    const dir = path.join(path.dirname(args.write), 'bench');
    fs.mkdirSync(dir, { recursive: true });
    for (const ch of charts) fs.writeFileSync(path.join(dir, ch.file), barChart(ch));
    // Sections other benches keep in the same file (bench/bullmq.mjs) survive this rewrite.
    let kept = '';
    try {
      kept = (fs.readFileSync(args.write, 'utf8').match(/\n<!-- bench\/[\w.-]+ -->\n[\s\S]*?<!-- \/bench\/[\w.-]+ -->\n?/g) ?? []).join('');
    } catch {
      // No file yet.
    }
    fs.writeFileSync(args.write, `${doc}\n${kept}`);
    console.log(`\nwritten to ${args.write} and ${charts.length} charts to ${dir}/`);
  }
  process.stderr.write(`\nsuite finished in ${seconds} s${failures.length ? `, ${failures.length} failure(s)` : ''}\n`);
  process.exitCode = failures.length ? 1 : 0;
}

if (args.case) {
  const spec = JSON.parse(args.case);
  const w = WORKLOADS.find((x) => x.id === spec.workload);
  await runCaseBody(spec.label, CASE_TIMEOUT_MS, (state) => w.measure(spec, state));
} else {
  await orchestrate();
}
