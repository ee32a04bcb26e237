// The suite's workloads. Each has a plan (the cases to run, per mode), a `measure` that runs one
// case inside its own process (bench/lib/isolate.mjs), and a `report` that turns the per-rep
// figures of every case into markdown, SVG charts and the facts the targets table checks.
import { fileURLToPath } from 'node:url';
import { createPeer, windowedFlood, importMpms, PEERS } from './peers/index.mjs';
import { percentile, median, span, fmt } from './lib/stats.mjs';
import { wallNow } from './lib/isolate.mjs';
import { processTree, snapshot, spent } from './lib/proc-cpu.mjs';

const TASKS = fileURLToPath(new URL('./workers/tasks.mjs', import.meta.url));
const P2T2 = { processes: 2, threads: 2 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const SLOW_PEERS = new Set(['tinypool-process', 'workerpool']);

/** A case: `key` is unique within its workload; `label` is what tables show. */
const kase = (peer, config, params = {}, label = PEERS[peer].label({ concurrency: 1, ...config })) => ({
  key: `${peer}:${label}`,
  peer,
  config: { concurrency: 1, ...config },
  params,
  label,
});

/** Flood `count` tasks, checking each result; returns tasks/s and the problems seen. */
async function timedFlood(peer, count, argOf, check, window) {
  let bad = 0;
  let sample = '';
  const t0 = performance.now();
  await windowedFlood(peer, count, argOf, (arg, result, ok) => {
    if (ok && check(arg, result)) return;
    if (!bad++) sample = `arg ${arg} gave ${ok ? '' : 'an error: '}${String(result?.message ?? result).slice(0, 80)}`;
  }, window);
  const ms = performance.now() - t0;
  return { ms, tasksPerSec: (count / ms) * 1000, problems: bad ? [`${bad} wrong results (first: ${sample})`] : [] };
}

async function started(spec, fn) {
  const t0 = performance.now();
  const peer = await createPeer(spec.peer, { ...spec.config, fn });
  return { peer, startMs: performance.now() - t0 };
}

async function stopped(peer) {
  const t0 = performance.now();
  await peer.stop();
  return { stopMs: performance.now() - t0, stoppedAt: wallNow() };
}

/** Rows of `cases` with one column per `cols` entry: [head, key, format]. */
function table(cases, runs, cols) {
  const ok = (c) => (runs[c.key] ?? []).filter(Boolean);
  const out = [`| case | ${cols.map((c) => c[0]).join(' | ')} |`, `|---|${cols.map(() => '---|').join('')}`];
  const cell = (c, k, f) => {
    const xs = ok(c).map((r) => (typeof k === 'function' ? k(r) : r[k]));
    // A figure this case does not measure (not a failure: its runs are there).
    return xs.length && xs.every((x) => x === undefined) ? '–' : span(xs, f);
  };
  for (const c of cases) out.push(`| ${c.peer === 'mpms' ? `**${c.label}**` : c.label} | ${cols.map(([, k, f]) => cell(c, k, f)).join(' | ')} |`);
  return out;
}

/** Per-rep ratios a/b of figure `k` (runs of one rep ran back to back). */
function ratios(runs, a, b, k) {
  const xs = [];
  const ra = runs[a.key] ?? [];
  const rb = runs[b.key] ?? [];
  for (let i = 0; i < Math.max(ra.length, rb.length); i++) if (ra[i] && rb[i]) xs.push(ra[i][k] / rb[i][k]);
  return xs;
}

function ratioLines(cases, runs, k, what) {
  const ours = cases.filter((c) => c.peer === 'mpms');
  const out = [];
  for (const a of ours) {
    for (const b of cases.filter((c) => c.peer !== 'mpms' && c.group === a.group)) {
      out.push(`- ${a.label} / ${b.label}: ${span(ratios(runs, a, b, k), fmt.x2, '×')} ${what}`);
    }
  }
  return out;
}

function chart(file, title, unit, cases, runs, k, format) {
  const rows = [];
  for (const c of cases) {
    const xs = (runs[c.key] ?? []).filter(Boolean).map((r) => (typeof k === 'function' ? k(r) : r[k]));
    if (xs.length) rows.push({ label: c.label, median: median(xs), min: Math.min(...xs), max: Math.max(...xs), ours: c.peer === 'mpms' });
  }
  return { file, title, unit, rows, format };
}

const med = (runs, c, k) => {
  const xs = (runs[c?.key] ?? []).filter(Boolean).map((r) => r[k]);
  return xs.length ? median(xs) : NaN;
};
const medRatio = (runs, a, b, k) => {
  const xs = ratios(runs, a, b, k);
  return xs.length ? median(xs) : NaN;
};

/**
 * CPU (µs per task, from /proc) spent during `body()` by this process — the master, or the
 * whole pool for thread pools: its main thread, and its other threads (workers, V8's helpers) —
 * and by its child processes (sampled before the engine stops them), with voluntary context
 * switches (wake-ups) per task over all of them.
 */
async function cpuPerTask(tasks, body) {
  const pids = processTree(process.pid);
  const a = snapshot(pids);
  const out = await body();
  const b = snapshot(pids);
  const own = spent(a, b, [process.pid]);
  const kids = spent(a, b, pids.slice(1));
  const per = (x) => (x * 1000) / tasks;
  return {
    out,
    cpu: {
      mainUs: per(own.main),
      v8Us: per(own.v8),
      workersUs: per(own.workers),
      childMainUs: per(kids.main),
      childV8Us: per(kids.v8),
      childWorkersUs: per(kids.workers),
      totalUs: per(own.total + kids.total),
      wakeups: (own.wakeups + kids.wakeups) / tasks,
    },
  };
}

const CPU_COLS = [
  ['CPU µs/task: master main thread', (r) => r.cpu?.mainUs, fmt.ms],
  ['master V8 helpers', (r) => r.cpu?.v8Us, fmt.ms],
  ['master worker threads', (r) => r.cpu?.workersUs, fmt.ms],
  ['children main threads', (r) => r.cpu?.childMainUs, fmt.ms],
  ['children V8 helpers', (r) => r.cpu?.childV8Us, fmt.ms],
  ['children worker threads', (r) => r.cpu?.childWorkersUs, fmt.ms],
  ['total', (r) => r.cpu?.totalUs, fmt.ms],
  ['wake-ups/task', (r) => r.cpu?.wakeups, fmt.x2],
];
const CPU_NOTE = 'CPU per task from /proc (Linux), over the flood only (after start-up, before stop), per kind of thread: the master\'s (for thread pools, the one process\'s) main thread, its V8 helper threads (background compiles, GC), its worker threads (thread pools run the tasks there), and the same for child processes (mpms runs the tasks in its children\'s worker threads, the bare processes in their main threads). Wake-ups are voluntary context switches (a thread that slept and was woken), summed over every thread. A loaded machine disturbs CPU time far less than wall time.';

// ------------------------------------------------------------------------------------------------

export const WORKLOADS = [
  {
    id: 'noop',
    title: 'No-op throughput, start-up and shutdown',
    plan(quick) {
      const configs = quick ? [P2T2] : [P2T2, { processes: 2, threads: 8 }, { processes: 4, threads: 4 }];
      const tasks = 100_000; // fewer would measure JIT warm-up more than the engine
      return configs.flatMap((cfg) => {
        const group = `P${cfg.processes}×T${cfg.threads}`;
        return ['mpms', 'tinypool', 'tinypool-process', 'piscina', 'workerpool', 'bare'].map((p) => ({
          ...kase(p, cfg, { tasks: SLOW_PEERS.has(p) ? tasks / 10 : tasks }),
          group,
        }));
      });
    },
    async measure(spec, state) {
      const { peer, startMs } = await started(spec, 'noop');
      state.phase = 'throughput';
      const flood = await timedFlood(peer, spec.params.tasks, (i) => i, (a, r) => a === r, 1000);
      state.phase = 'stop';
      return { tasks: spec.params.tasks, startMs, tasksPerSec: flood.tasksPerSec, problems: flood.problems, ...(await stopped(peer)) };
    },
    report(cases, runs) {
      const exitMs = (r) => r.exitAt - r.stoppedAt;
      const md = [
        'No-op tasks pushed through each engine (mpms: `put()` + collector; peers: their `run()`/`exec()` with 1,000 in flight). Every peer gets the same parallelism: processes × threads workers. Process-based peers run a tenth of the tasks (they are that much slower). start = constructor → every worker ready (peers: one warm-up task per worker); stop = last result → join()/destroy() resolved; exit = that → the process exited by itself.',
        '',
        ...table(cases, runs, [
          ['tasks/run', 'tasks', fmt.int],
          ['tasks/s', 'tasksPerSec', fmt.int],
          ['start (ms)', 'startMs', fmt.ms],
          ['stop (ms)', 'stopMs', fmt.ms],
          ['exit (ms)', exitMs, fmt.ms],
        ]),
        '',
        'Per-rep throughput ratios:',
        ...ratioLines(cases, runs, 'tasksPerSec', 'tasks/s'),
      ];
      const groups = [...new Set(cases.map((c) => c.group))];
      const charts = groups.map((g) =>
        chart(`noop-${g.replace('×', 'x')}.svg`, `No-op throughput, ${g}`, 'tasks/s', cases.filter((c) => c.group === g), runs, 'tasksPerSec', fmt.int),
      );
      const find = (peer, g) => cases.find((c) => c.peer === peer && c.group === g);
      const facts = {};
      for (const g of groups) {
        facts[`noop ${g}`] = med(runs, find('mpms', g), 'tasksPerSec');
        facts[`noop ${g} / bare`] = medRatio(runs, find('mpms', g), find('bare', g), 'tasksPerSec');
        facts[`noop ${g} / tinypool`] = medRatio(runs, find('mpms', g), find('tinypool', g), 'tasksPerSec');
      }
      facts.startMs = med(runs, find('mpms', 'P2×T2'), 'startMs');
      facts.stopMs = med(runs, find('mpms', 'P2×T2'), 'stopMs');
      return { md, charts, facts };
    },
  },
  {
    id: 'cold',
    title: 'Cold start: the first tasks after start(), and a whole 20k batch (P2×T2)',
    plan(quick) {
      const peers = ['mpms', 'tinypool', 'tinypool-process', 'piscina', 'workerpool', 'bare'];
      // The first 5k, 20k and 100k tasks after start() (marks of one flood), then the warm rate
      // over the tasks after those (100k; 20k for the process-based peers, 5× slower).
      const rates = peers.map((p) => ({ ...kase(p, P2T2, { kind: 'rates', warm: quick ? 20_000 : SLOW_PEERS.has(p) ? 20_000 : 100_000, cold: quick ? 20_000 : 100_000 }), group: 'rates' }));
      // A whole batch as a user runs it: constructor, start(), 20,000 tasks, join()/destroy().
      const batch = peers.map((p) => ({ ...kase(p, P2T2, { kind: 'batch', tasks: 20_000 }, `${PEERS[p].label({ ...P2T2, concurrency: 1 })}, whole batch`), group: 'batch' }));
      return [...rates, ...batch];
    },
    async measure(spec, state) {
      if (spec.params.kind === 'batch') {
        const t0 = performance.now();
        const { peer } = await started(spec, 'noop');
        state.phase = 'batch';
        const flood = await timedFlood(peer, spec.params.tasks, (i) => i, (a, r) => a === r, 1000);
        await peer.stop();
        const ms = performance.now() - t0;
        return { batchMs: ms, batchPerSec: (spec.params.tasks / ms) * 1000, problems: flood.problems };
      }
      const { peer } = await started(spec, 'noop');
      const { cold, warm } = spec.params;
      const marks = new Map([5_000, 20_000, 100_000, cold + warm].filter((n) => n <= cold + warm).map((n) => [n, 0]));
      let done = 0;
      state.phase = 'flood';
      const t0 = performance.now();
      const flood = await timedFlood(peer, cold + warm, (i) => i, (a, r) => {
        if (marks.has(++done)) marks.set(done, performance.now());
        return a === r;
      }, 1000);
      state.phase = 'stop';
      await peer.stop();
      const rate = (n, from = 0) => ((n - from) / (marks.get(n) - (from ? marks.get(from) : t0))) * 1000;
      const res = { first5k: rate(5_000), first20k: rate(20_000), warmPerSec: rate(cold + warm, cold), problems: flood.problems };
      if (marks.has(100_000) && cold >= 100_000) res.first100k = rate(100_000);
      res.cold20kVsWarm = res.first20k / res.warmPerSec;
      return res;
    },
    report(cases, runs) {
      const rates = cases.filter((c) => c.group === 'rates');
      const batch = cases.filter((c) => c.group === 'batch');
      const md = [
        'No-op tasks from a fresh engine: the rate over the first 5k, 20k and 100k tasks counted from start() resolved (peers: from every worker ready, as in the no-op table), and the warm rate over the tasks after those (100k; 20k for the process-based peers). mpms is fed by `await put()` + collector, peers by `run()` with 1,000 in flight. *Whole batch*: constructor → start() → 20,000 tasks → join()/destroy() resolved, in a fresh process.',
        '',
        ...table(rates, runs, [
          ['first 5k (tasks/s)', 'first5k', fmt.int],
          ['first 20k (tasks/s)', 'first20k', fmt.int],
          ['first 100k (tasks/s)', 'first100k', fmt.int],
          ['warm (tasks/s)', 'warmPerSec', fmt.int],
          ['first 20k ÷ warm', 'cold20kVsWarm', fmt.x2],
        ]),
        '',
        ...table(batch, runs, [
          ['20k batch incl. start + join (ms)', 'batchMs', fmt.ms],
          ['tasks/s over it', 'batchPerSec', fmt.int],
        ]),
        '',
        'Per-rep ratios:',
        ...ratioLines(rates, runs, 'first20k', 'first 20k tasks/s'),
        ...ratioLines(batch, runs, 'batchPerSec', 'whole 20k batch (tasks/s incl. start and join)'),
      ];
      const mp = rates.find((c) => c.peer === 'mpms');
      return {
        md,
        charts: [chart('cold-20k.svg', 'First 20,000 tasks after start(), P2×T2', 'tasks/s', rates, runs, 'first20k', fmt.int)],
        facts: {
          coldVsWarm: med(runs, mp, 'cold20kVsWarm'),
          coldVsTinypool: medRatio(runs, mp, rates.find((c) => c.peer === 'tinypool'), 'first20k'),
          batchVsTinypool: medRatio(runs, batch.find((c) => c.peer === 'mpms'), batch.find((c) => c.peer === 'tinypool'), 'batchPerSec'),
        },
      };
    },
  },
  {
    id: 'latency',
    title: 'Round-trip latency, idle and under load (P2×T2)',
    plan(quick) {
      return ['mpms', 'tinypool', 'piscina', 'bare'].map((p) => kase(p, P2T2, { probes: quick ? 200 : 500, window: 1000 }));
    },
    async measure(spec, state) {
      const { peer } = await started(spec, 'noop');
      state.phase = 'warm-up';
      await timedFlood(peer, 20_000, (i) => i, () => true, 1000);
      state.phase = 'idle round trips';
      const idle = [];
      for (let i = 0; i < spec.params.probes; i++) {
        const t = performance.now();
        await peer.run(i);
        idle.push(performance.now() - t);
      }
      state.phase = 'round trips under load';
      // A flood through run() keeps `window` tasks in flight while probes are timed behind it.
      let loading = true;
      let inflight = 0;
      let loadDone = 0;
      let drained;
      const idleAgain = new Promise((r) => (drained = r));
      const launch = () => {
        while (loading && inflight < spec.params.window) {
          inflight++;
          peer.run(0).then(() => {
            inflight--;
            loadDone++;
            if (loading) launch();
            else if (inflight === 0) drained();
          });
        }
      };
      launch();
      const loaded = [];
      for (let i = 0; i < spec.params.probes; i++) {
        await sleep(1);
        const t = performance.now();
        await peer.run(i);
        loaded.push(performance.now() - t);
      }
      loading = false;
      if (inflight > 0) await idleAgain;
      state.phase = 'stop';
      await peer.stop();
      return {
        idleP50: percentile(idle, 0.5),
        idleP99: percentile(idle, 0.99),
        loadP50: percentile(loaded, 0.5),
        loadP99: percentile(loaded, 0.99),
        loadTasks: loadDone,
      };
    },
    report(cases, runs) {
      const md = [
        `Idle: sequential single tasks on the warm, idle pool. Under load: the same probes (one every ≥ 1 ms) while a flood keeps 1,000 tasks in flight through the same \`run()\` call; a probe waits behind whatever is queued ahead of it (every engine here is FIFO).`,
        '',
        ...table(cases, runs, [
          ['idle p50 (ms)', 'idleP50', fmt.ms],
          ['idle p99 (ms)', 'idleP99', fmt.ms],
          ['under load p50 (ms)', 'loadP50', fmt.ms],
          ['under load p99 (ms)', 'loadP99', fmt.ms],
        ]),
      ];
      const mp = cases.find((c) => c.peer === 'mpms');
      return {
        md,
        charts: [
          chart('latency-idle.svg', 'Idle round trip p50, P2×T2', 'ms (lower is better)', cases, runs, 'idleP50', fmt.ms),
          chart('latency-load.svg', 'Round trip p99 under a flood, P2×T2', 'ms (lower is better)', cases, runs, 'loadP99', fmt.ms),
        ],
        facts: { idleP50: med(runs, mp, 'idleP50'), loadP99: med(runs, mp, 'loadP99') },
      };
    },
  },
  {
    id: 'sleep',
    title: 'Async I/O-like tasks: 10 ms sleeps, 32 in flight',
    plan(quick) {
      const tasks = quick ? 1600 : 3200;
      return [
        kase('mpms', { processes: 2, threads: 16 }, { tasks }),
        kase('mpms', { processes: 2, threads: 2, concurrency: 8 }, { tasks }),
        kase('tinypool', { processes: 2, threads: 2, concurrency: 8 }, { tasks }),
        kase('piscina', { processes: 2, threads: 2, concurrency: 8 }, { tasks }),
        kase('inline', { processes: 1, threads: 1 }, { tasks }),
      ];
    },
    async measure(spec, state) {
      const { peer } = await started(spec, 'sleep');
      state.phase = 'flood';
      const { out: flood, cpu } = await cpuPerTask(spec.params.tasks, () => timedFlood(peer, spec.params.tasks, () => 10, (_a, r) => r === 10, 32));
      await peer.stop();
      return { tasksPerSec: flood.tasksPerSec, efficiency: flood.tasksPerSec / 3200, cpu, problems: flood.problems };
    },
    report(cases, runs) {
      const md = [
        'Each task awaits a 10 ms timer. 32 slots (processes × threads × concurrency = 32) make the ideal 3,200 tasks/s; efficiency = tasks/s ÷ 3,200. mpms is fed by `put()` (its slots bound what is in flight); peers by `run()` with 32 in flight. The last row calls the task function in the master itself, 32 at a time: what Node\'s timers allow on this machine (a 10 ms timer fires a little late), the real ceiling.',
        '',
        ...table(cases, runs, [
          ['tasks/s', 'tasksPerSec', fmt.int],
          ['of ideal', 'efficiency', fmt.x2],
          ...CPU_COLS,
        ]),
        '',
        CPU_NOTE,
      ];
      const inline = cases.find((c) => c.peer === 'inline');
      const ours = cases.filter((c) => c.peer === 'mpms');
      md.push('', ...ours.map((c) => `- ${c.label} ÷ timers in the master: ${span(ratios(runs, c, inline, 'tasksPerSec'), fmt.x2)}`));
      const best = (f) => Math.max(...ours.map(f));
      return {
        md,
        charts: [chart('sleep.svg', '10 ms async tasks, 32 in flight', 'fraction of the ideal 3,200 tasks/s', cases, runs, 'efficiency', fmt.x2)],
        facts: { sleepEfficiency: best((c) => med(runs, c, 'efficiency')), sleepVsTimers: best((c) => medRatio(runs, c, inline, 'tasksPerSec')) },
      };
    },
  },
  {
    id: 'cpu',
    title: 'CPU-bound scaling: 5 ms tasks on 2 cores',
    plan(quick) {
      const tasks = quick ? 400 : 800;
      return [
        kase('bare-cpu', { processes: 2, threads: 1 }, { tasks }),
        kase('mpms', { processes: 2, threads: 1 }, { tasks }),
        kase('tinypool', { processes: 2, threads: 1 }, { tasks }),
        kase('piscina', { processes: 2, threads: 1 }, { tasks }),
      ];
    },
    async measure(spec, state) {
      const { peer } = await started(spec, 'spin');
      state.phase = 'flood';
      const { out: flood, cpu } = await cpuPerTask(spec.params.tasks, () => timedFlood(peer, spec.params.tasks, () => 5, () => true, 8));
      await peer.stop();
      return { tasksPerSec: flood.tasksPerSec, cpu, problems: flood.problems };
    },
    report(cases, runs) {
      const base = cases.find((c) => c.peer === 'bare-cpu');
      const overBare = (c) => {
        const xs = [];
        (runs[c.key] ?? []).forEach((r, i) => {
          const b = runs[base.key]?.[i];
          if (r?.cpu && b?.cpu) xs.push(r.cpu.totalUs - b.cpu.totalUs);
        });
        return xs;
      };
      const md = [
        'Each task spins 5 ms of CPU. Two workers on two cores: the ideal is 400 tasks/s; "bare processes" run the same tasks back to back in two forked processes with no engine and no per-task message, and efficiency is each engine\'s rate ÷ theirs, per rep.',
        '',
        ...table(cases, runs, [['tasks/s', 'tasksPerSec', fmt.int], ...CPU_COLS]),
        '',
        `${CPU_NOTE} The task itself is ~5 ms of CPU; the bare processes' total is the work alone.`,
        '',
        ...cases.filter((c) => c !== base).map((c) => `- ${c.label} efficiency vs bare processes: ${span(ratios(runs, c, base, 'tasksPerSec'), fmt.x2)}; CPU per task beyond the bare processes': ${span(overBare(c), fmt.ms)} µs`),
      ];
      return {
        md,
        charts: [chart('cpu.svg', 'CPU-bound 5 ms tasks, 2 workers on 2 cores', 'tasks/s', cases, runs, 'tasksPerSec', fmt.int)],
        facts: {
          cpuEfficiency: medRatio(runs, cases.find((c) => c.peer === 'mpms'), base, 'tasksPerSec'),
          cpuVsTinypool: medRatio(runs, cases.find((c) => c.peer === 'mpms'), cases.find((c) => c.peer === 'tinypool'), 'tasksPerSec'),
        },
      };
    },
  },
  {
    id: 'payload',
    title: 'Large results: Buffers of 100 KB and 1 MB (P2×T2)',
    plan(quick) {
      return [
        [100_000, quick ? 1500 : 4000],
        [1_000_000, quick ? 200 : 500],
      ].flatMap(([bytes, tasks]) =>
        ['mpms', 'tinypool', 'piscina', 'bare'].map((p) => {
          const size = bytes >= 1e6 ? '1 MB' : '100 KB';
          // The bare echo's no-op windows (256 per child) would hold 256 MB of 1 MB results: 8 per thread, 32 per child here.
          const cfg = p === 'bare' ? { ...P2T2, bare: { childWindow: 32, threadWindow: 8 } } : P2T2;
          return { ...kase(p, cfg, { bytes, tasks }, `${PEERS[p].label({ ...P2T2, concurrency: 1 })}, ${size}`), group: size };
        }),
      );
    },
    async measure(spec, state) {
      const { peer } = await started(spec, 'alloc');
      state.phase = 'flood';
      const { bytes, tasks } = spec.params;
      const flood = await timedFlood(peer, tasks, () => bytes, (a, r) => r?.length === bytes && r[bytes - 1] === 7, 64);
      await peer.stop();
      return { mbPerSec: (flood.tasksPerSec * bytes) / 1e6, problems: flood.problems };
    },
    report(cases, runs) {
      const md = [
        'Each task returns a Buffer of the given size (filled in the worker); MB/s = result bytes delivered to the master per second (1 MB = 10⁶ bytes). Peers with 64 in flight; the bare echo with windows of 32 tasks per child and 8 per thread. Thread pools pass a result between threads of one process (one copy); mpms and the bare echo also serialize it across a process boundary.',
        '',
        ...table(cases, runs, [['MB/s', 'mbPerSec', fmt.int]]),
        '',
        ...ratioLines(cases, runs, 'mbPerSec', 'MB/s'),
      ];
      const mb = cases.filter((c) => c.group === '1 MB');
      return {
        md,
        charts: [chart('payload.svg', 'Buffer results, P2×T2', 'MB/s', cases, runs, 'mbPerSec', fmt.int)],
        facts: {
          mb1: med(runs, mb.find((c) => c.peer === 'mpms'), 'mbPerSec'),
          mb1VsBare: medRatio(runs, mb.find((c) => c.peer === 'mpms'), mb.find((c) => c.peer === 'bare'), 'mbPerSec'),
        },
      };
    },
  },
  {
    id: 'recovery',
    title: 'Recovery after a child is SIGKILLed (mpms, P2×T2)',
    plan(quick) {
      return [{ key: 'mpms:recovery', peer: 'mpms', label: 'mpms P2×T2, 5 ms tasks', config: P2T2, params: { tasks: quick ? 1200 : 2000 } }];
    },
    async measure(spec, state) {
      const { MPMS } = await importMpms();
      const n = spec.params.tasks;
      let results = 0;
      let crashed = 0;
      let lastCrashAt = 0;
      let victim = 0;
      let onWarm;
      const warm = new Promise((r) => (onWarm = r));
      let onAll;
      const all = new Promise((r) => (onAll = r));
      const m = new MPMS({
        worker: TASKS,
        export: 'sleep',
        ...P2T2,
        collector(meta) {
          if (meta.status === 'crashed') {
            crashed++;
            lastCrashAt = performance.now();
          }
          if (meta.processIndex === 0 && meta.pid) victim = meta.pid;
          if (++results === 300) onWarm();
          if (results === n) onAll();
        },
      });
      await m.start();
      state.phase = 'feeding';
      const feeding = (async () => {
        for (let i = 0; i < n; i++) await m.put(5);
      })();
      await warm;
      state.phase = 'kill';
      const alive = () => m.metrics().processesAlive;
      const t0 = performance.now();
      process.kill(victim, 'SIGKILL');
      while (alive() === 2) await sleep(1);
      while (alive() < 2) await sleep(1);
      const capacityMs = performance.now() - t0;
      state.phase = 'drain';
      await feeding;
      await all;
      const summary = await m.join();
      const settledMs = lastCrashAt ? lastCrashAt - t0 : NaN;
      const problems = summary.total === n && summary.ok + summary.crashed === n ? [] : [`summary ${JSON.stringify(summary)}`];
      return { capacityMs, settledMs, recoveryMs: Math.max(capacityMs, settledMs || 0), crashed, problems };
    },
    report(cases, runs) {
      const md = [
        'A flood of 5 ms sleep tasks; once 300 are done, the child of process slot 0 is SIGKILLed. settled = kill → the last of its tasks settled `crashed`; capacity back = kill → its replacement ready (`metrics().processesAlive` back to 2).',
        '',
        ...table(cases, runs, [
          ['tasks crashed', 'crashed', fmt.int],
          ['settled (ms)', 'settledMs', fmt.ms],
          ['capacity back (ms)', 'capacityMs', fmt.ms],
        ]),
      ];
      return { md, charts: [], facts: { recoveryMs: med(runs, cases[0], 'recoveryMs') } };
    },
  },
  {
    id: 'lifecycle',
    title: 'Throughput while lifecycles recycle threads (mpms, P2×T4)',
    plan() {
      const cfg = { processes: 2, threads: 4 };
      const cpu = { tasks: 10_000, fn: 'spin', arg: 0.2 };
      const cpu1 = { tasks: 10_000, fn: 'spin', arg: 1 };
      const io = { tasks: 10_000, fn: 'sleep', arg: 2 };
      return [
        { key: 'mpms:plain', peer: 'mpms', label: 'mpms P2×T4, 0.2 ms CPU, no lifecycle', config: cfg, params: cpu },
        { key: 'mpms:lc1000', peer: 'mpms', label: 'mpms P2×T4, 0.2 ms CPU, lifecycle 1000 ± 20%', config: { ...cfg, mpms: { lifecycle: 1000, lifecycleJitter: 0.2 } }, params: cpu },
        { key: 'mpms:cpu1-plain', peer: 'mpms', label: 'mpms P2×T4, 1 ms CPU, no lifecycle', config: cfg, params: cpu1 },
        { key: 'mpms:cpu1-lc500', peer: 'mpms', label: 'mpms P2×T4, 1 ms CPU, lifecycle 500 ± 20%', config: { ...cfg, mpms: { lifecycle: 500, lifecycleJitter: 0.2 } }, params: cpu1 },
        { key: 'mpms:io-plain', peer: 'mpms', label: 'mpms P2×T4, 2 ms sleeps, no lifecycle', config: cfg, params: io },
        { key: 'mpms:io-lc300', peer: 'mpms', label: 'mpms P2×T4, 2 ms sleeps, lifecycle 300 ± 20%', config: { ...cfg, mpms: { lifecycle: 300, lifecycleJitter: 0.2 } }, params: io },
      ];
    },
    async measure(spec, state) {
      const { peer } = await started(spec, spec.params.fn);
      let warm = 0;
      peer.engine.on('restart', (e) => void (e.warm && warm++));
      state.phase = 'flood';
      const flood = await timedFlood(peer, spec.params.tasks, () => spec.params.arg, () => true);
      const restarts = Object.values(peer.engine.metrics().restarts).reduce((a, b) => a + b, 0);
      await peer.stop();
      return { tasksPerSec: flood.tasksPerSec, restarts, warm, problems: flood.problems };
    },
    report(cases, runs) {
      const [plain, lc, cpu1Plain, cpu1Lc, ioPlain, ioLc] = cases;
      const md = [
        '10,000 tasks each: CPU tasks (every core busy: a restart costs its CPU — 35–45 ms — taken from the work; at 0.2 ms × lifecycle 1000 a thread does only ~200 ms of work between restarts, the edge), and 2 ms sleeps (I/O-like: cores to spare, so a restart costs only if capacity dips). `bench/restart-storm.mjs` sweeps more lifecycles and task sizes and reports the CPU each restart costs. *Warm* restarts found their successor ready (started ahead of time).',
        '',
        ...table(cases, runs, [
          ['tasks/s', 'tasksPerSec', fmt.int],
          ['thread restarts', 'restarts', fmt.int],
          ['warm', 'warm', fmt.int],
        ]),
        '',
        `- 0.2 ms CPU tasks, with lifecycle / without, per rep: ${span(ratios(runs, lc, plain, 'tasksPerSec'), fmt.x2)}`,
        `- 1 ms CPU tasks, with lifecycle / without, per rep: ${span(ratios(runs, cpu1Lc, cpu1Plain, 'tasksPerSec'), fmt.x2)}`,
        `- I/O tasks, with lifecycle / without, per rep: ${span(ratios(runs, ioLc, ioPlain, 'tasksPerSec'), fmt.x2)}`,
      ];
      return { md, charts: [], facts: { lifecycleRatio: medRatio(runs, lc, plain, 'tasksPerSec'), lifecycleCpu1Ratio: medRatio(runs, cpu1Lc, cpu1Plain, 'tasksPerSec'), lifecycleIoRatio: medRatio(runs, ioLc, ioPlain, 'tasksPerSec') } };
    },
  },
  {
    id: 'memory',
    title: 'Master memory while streaming many tasks (mpms, P2×T2)',
    plan(quick) {
      const tasks = quick ? 200_000 : 1_000_000;
      return [{ key: 'mpms:memory', peer: 'mpms', label: `mpms P2×T2, ${fmt.int(tasks)} no-op tasks`, config: P2T2, params: { tasks } }];
    },
    async measure(spec, state) {
      const { peer } = await started(spec, 'noop');
      const base = process.memoryUsage.rss();
      let peak = base;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 50);
      state.phase = 'flood';
      const flood = await timedFlood(peer, spec.params.tasks, (i) => i, (a, r) => a === r);
      clearInterval(sampler);
      peak = Math.max(peak, process.memoryUsage.rss());
      await peer.stop();
      return { growthMiB: (peak - base) / 2 ** 20, baseMiB: base / 2 ** 20, tasksPerSec: flood.tasksPerSec, problems: flood.problems };
    },
    report(cases, runs) {
      const md = [
        'Every task goes through `await put()` and the collector; RSS of the master sampled every 50 ms. growth = peak − RSS after start().',
        '',
        ...table(cases, runs, [
          ['RSS after start (MiB)', 'baseMiB', fmt.mib],
          ['peak growth (MiB)', 'growthMiB', fmt.mib],
          ['tasks/s', 'tasksPerSec', fmt.int],
        ]),
      ];
      return { md, charts: [], facts: { memoryGrowthMiB: med(runs, cases[0], 'growthMiB') } };
    },
  },
  {
    // Not a benchmark: checks the suite's own safety net. Run only when named (`--only selftest`):
    // a case that blocks its event loop (so its inner bound cannot fire) with a live detached
    // child must be killed, child included, by the outer bound, and the suite must fail saying so.
    id: 'selftest',
    hidden: true,
    title: 'Self-test: a hung case is killed with its descendants',
    plan() {
      return [{ key: 'selftest', peer: 'none', label: 'hung case', config: {}, params: {} }];
    },
    async measure() {
      const { spawn } = await import('node:child_process');
      spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore', detached: true });
      await sleep(700); // let the tracker see the child
      for (;;);
    },
    report() {
      return { md: [], charts: [], facts: {} };
    },
  },
];
