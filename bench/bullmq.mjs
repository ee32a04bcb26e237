#!/usr/bin/env node
// Throughput over Redis: mpms (a master with bullmqTransport + `mpms worker` engines) against
// BullMQ's own Worker running the same job (a producer with the same bound on jobs outstanding +
// one Worker process whose concurrency is the engine's prefetch), in the same run, reps
// interleaved; each figure is a median (min–max) and each ratio is taken rep by rep.
//
//   node bench/bullmq.mjs [--reps 5] [--only noop,cpu,scale] [--redis redis://127.0.0.1:6379]
//                         [--noop-tasks 20000] [--cpu-tasks 4000] [--scale-tasks 4000] [--bullmq-concurrency 24]
//                         [--write docs/benchmarks.md]
//
// --write replaces the section between the markers <!-- bench/bullmq.mjs --> and
// <!-- /bench/bullmq.mjs --> of that file (appending it when absent) with this run's report.
//
// Workloads: no-op jobs and 1 ms CPU jobs at P2×T2 (vs a Worker of concurrency 24), and the
// scaling of 1 → 2 `mpms worker`s at P1×T2 on 5 ms sleeps. Besides tasks/s it reports the CPU
// each side spent per task: the master (or producer) process, the worker side (the worker
// process and all its descendants, from /proc) and Redis (INFO cpu).
//
// Without --redis (or MPMS_REDIS_URL) it starts a redis-server of its own on a free port and
// stops it by pid at the end. Needs `npm run build` first. Linux (/proc) for the CPU figures.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { fmt, span } from './lib/stats.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TASKS = path.join(ROOT, 'bench/workers/tasks.mjs');
/** The worker engine's base prefetch at P2×T2 (lib/scale-out/worker-engine.ts): the plain Worker's default concurrency. */
const PREFETCH = 2 * 2 * 4 + 8;
const OUTSTANDING = 1000;

const connOf = (url) => {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || 6379), maxRetriesPerRequest: null };
};

/** The job each side runs, by workload. */
const JOBS = {
  noop: { exp: 'noop', args: (i) => [i], plain: (x) => x },
  cpu: {
    exp: 'spin',
    args: () => [1],
    plain: (ms) => {
      const end = performance.now() + ms;
      let x = 0;
      while (performance.now() < end) x++;
      return x;
    },
  },
  sleep: { exp: 'sleep', args: () => [5], plain: (ms) => new Promise((r) => setTimeout(r, ms, ms)) },
};

// ---- the plain BullMQ worker process ----------------------------------------------------------
if (process.argv[2] === '--plain-worker') {
  const [, , , url, queue, kind, concurrency] = process.argv;
  const job = JOBS[kind];
  const w = new Worker(queue, async (j) => job.plain(...j.data.a), { connection: connOf(url), concurrency: Number(concurrency) });
  await w.waitUntilReady();
  process.stdout.write('ready\n');
  // Completions are counted here and reported on stdout: QueueEvents' 'completed' events are
  // not a reliable count (a first version of this bench waited for ever for the last ones).
  let completed = 0;
  let queued = false;
  w.on('completed', () => {
    completed++;
    if (!queued) {
      queued = true;
      setImmediate(() => {
        queued = false;
        process.stdout.write(`done ${completed}\n`);
      });
    }
  });
  process.on('SIGTERM', () => void w.close().then(() => process.exit(0)));
  await new Promise(() => {});
}

const { values } = parseArgs({
  options: {
    reps: { type: 'string', default: '5' },
    only: { type: 'string', default: 'noop,cpu,scale' },
    redis: { type: 'string' },
    'noop-tasks': { type: 'string', default: '20000' },
    'cpu-tasks': { type: 'string', default: '4000' },
    'scale-tasks': { type: 'string', default: '4000' },
    'bullmq-concurrency': { type: 'string', default: String(PREFETCH) },
    write: { type: 'string' },
  },
});
const REPS = Number(values.reps);
const BULLMQ_CONCURRENCY = Number(values['bullmq-concurrency']);
const ONLY = new Set(values.only.split(','));

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

let redisProc;
async function redisUrl() {
  const given = values.redis ?? process.env.MPMS_REDIS_URL;
  if (given) return given;
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mpms-bench-redis-'));
  redisProc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  const q = new Queue('probe', { connection: connOf(url) });
  await q.waitUntilReady();
  await q.close();
  return url;
}

/** Spawns a process and resolves once it prints `marker` (stdout or stderr). */
function spawnReady(args, marker) {
  const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  return new Promise((resolve, reject) => {
    let out = '';
    const on = (d) => {
      out += d;
      if (!out.includes(marker)) return;
      p.stdout.off('data', on);
      p.stderr.off('data', on);
      resolve(p);
    };
    p.stdout.on('data', on);
    p.stderr.on('data', on);
    p.once('exit', (code) => reject(new Error(`exited ${code} before ready: ${out}`)));
  });
}

async function stopProc(p) {
  if (p.exitCode !== null) return;
  const gone = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  const timer = setTimeout(() => {
    try {
      process.kill(-p.pid, 'SIGKILL');
    } catch {}
  }, 15_000);
  await gone;
  clearTimeout(timer);
}

// ---- CPU accounting ---------------------------------------------------------------------------
const TICK_US = 1e6 / 100; // USER_HZ is 100 on Linux

/** CPU µs used so far by `pid` and all its live descendants (/proc). */
function treeCpuUs(pid) {
  const stats = new Map();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const s = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      stats.set(Number(name), { ppid: Number(f[1]), cpu: (Number(f[11]) + Number(f[12])) * TICK_US });
    } catch {}
  }
  let total = 0;
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop();
    total += stats.get(p)?.cpu ?? 0;
    for (const [k, v] of stats) if (v.ppid === p) stack.push(k);
  }
  return total;
}

/** Redis' own CPU µs so far (INFO cpu). */
async function redisCpuUs(redis) {
  const info = await redis.info('cpu');
  const get = (k) => Number(new RegExp(`${k}:([\\d.]+)`).exec(info)?.[1] ?? 0);
  return (get('used_cpu_sys') + get('used_cpu_user')) * 1e6;
}

/** Measures `run()` (which returns after `n` tasks): tasks/s and CPU per task of this process, the worker trees and Redis. */
async function measure(n, workers, redis, run) {
  const c0 = process.cpuUsage();
  const w0 = workers.map(treeCpuUs);
  const r0 = await redisCpuUs(redis);
  const t0 = performance.now();
  await run();
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  const w = workers.map((p, i) => treeCpuUs(p) - w0[i]).reduce((a, b) => a + b, 0);
  const r = (await redisCpuUs(redis)) - r0;
  return { rate: (n / ms) * 1000, masterUs: (c.user + c.system) / n, workerUs: w / n, redisUs: r / n };
}

// ---- the two sides ----------------------------------------------------------------------------
async function runMpms(url, redis, queue, kind, n, engines, p, t) {
  const { MPMS } = await import('../dist/index.js');
  const { bullmqTransport } = await import('../dist/scale-out/index.js');
  const job = JOBS[kind];
  const workers = [];
  for (let i = 0; i < engines; i++) {
    workers.push(await spawnReady([path.join(ROOT, 'dist/cli/main.js'), 'worker', TASKS, '--export', job.exp, '--redis', url, '--queue', queue, '-p', String(p), '-t', String(t)], 'serving queue'));
  }
  try {
    let ok = 0;
    const m = new MPMS({ worker: TASKS, export: job.exp, taskQueueMaxsize: OUTSTANDING, collector: (meta) => void (meta.status === 'ok' && ok++), transport: bullmqTransport({ connection: url, queue, maxOutstanding: OUTSTANDING }) });
    await m.start();
    const r = await measure(n, workers.map((w) => w.pid), redis, async () => {
      for (let i = 0; i < n; i++) await m.put(...job.args(i));
      await m.join();
    });
    if (ok !== n) throw new Error(`mpms: ${ok} of ${n} ok`);
    return r;
  } finally {
    await Promise.all(workers.map(stopProc));
  }
}

async function runPlain(url, redis, queue, kind, n) {
  const job = JOBS[kind];
  const worker = await spawnReady([fileURLToPath(import.meta.url), '--plain-worker', url, queue, kind, String(BULLMQ_CONCURRENCY)], 'ready');
  const q = new Queue(queue, { connection: connOf(url) });
  try {
    await q.waitUntilReady();
    let done = 0;
    let added = 0;
    let wake;
    let buf = '';
    const finished = new Promise((resolve) => {
      worker.stdout.on('data', (d) => {
        buf += d;
        const lines = buf.split('\n');
        buf = lines.pop();
        for (const line of lines) if (line.startsWith('done ')) done = Number(line.slice(5));
        wake?.();
        if (done >= n) resolve();
      });
    });
    return await measure(n, [worker.pid], redis, async () => {
      // The same backpressure as the master: at most OUTSTANDING jobs unsettled.
      while (added < n) {
        if (added - done >= OUTSTANDING) {
          await new Promise((r) => (wake = r));
          continue;
        }
        const k = Math.min(500, n - added, OUTSTANDING - (added - done));
        await q.addBulk(Array.from({ length: k }, (_, i) => ({ name: kind, data: { a: job.args(added + i) }, opts: { removeOnComplete: true, removeOnFail: true } })));
        added += k;
      }
      await finished;
    });
  } finally {
    await stopProc(worker);
    await q.obliterate({ force: true }).catch(() => undefined);
    await q.close();
  }
}

/** Removes what a bench queue left (mpms keys included). */
async function clean(redis, queue) {
  const keys = await redis.keys(`bull:${queue}:*`);
  if (keys.length) await redis.del(...keys);
}

const SCENARIOS = [
  { id: 'noop', title: 'no-op jobs, worker side P2×T2', n: Number(values['noop-tasks']), sides: { mpms: (u, r, q, n) => runMpms(u, r, q, 'noop', n, 1, 2, 2), bullmq: (u, r, q, n) => runPlain(u, r, q, 'noop', n) }, ratio: ['mpms', 'bullmq'] },
  { id: 'cpu', title: '1 ms CPU jobs, worker side P2×T2', n: Number(values['cpu-tasks']), sides: { mpms: (u, r, q, n) => runMpms(u, r, q, 'cpu', n, 1, 2, 2), bullmq: (u, r, q, n) => runPlain(u, r, q, 'cpu', n) }, ratio: ['mpms', 'bullmq'] },
  { id: 'scale', title: '5 ms sleep jobs, `mpms worker -p 1 -t 2` × 1 and × 2', n: Number(values['scale-tasks']), sides: { one: (u, r, q, n) => runMpms(u, r, q, 'sleep', n, 1, 1, 2), two: (u, r, q, n) => runMpms(u, r, q, 'sleep', n, 2, 1, 2) }, ratio: ['two', 'one'] },
].filter((s) => ONLY.has(s.id));

const report = [];
const say = (line) => {
  console.log(line);
  report.push(line);
};

const INTRO = [
  'mpms: a master with `bullmqTransport` and `mpms worker` engines. BullMQ: a producer (`addBulk`, the same bound',
  'of 1,000 outstanding jobs) and one `Worker` process running the same job. Same Redis, same run, reps',
  'interleaved; a ratio pairs the two sides of one rep. CPU per task: the master or producer process',
  '(`process.cpuUsage`), the worker side (the worker process and all its descendants, from /proc), Redis',
  '(`INFO cpu`). Targets (issue 18): mpms ≥ 1.0× BullMQ on no-op jobs and ≥ 1.5× on 1 ms CPU jobs at P2×T2,',
  'master ≤ 60 µs CPU per no-op task; the 1 → 2 engine scaling is reported. The machine is shared: the load',
  'average says how busy it was; compare ratios, not absolute figures across runs.',
].join('\n');

/** Replaces this bench's section of `file` (between its markers), or appends one. */
function writeSection(file) {
  const begin = '<!-- bench/bullmq.mjs -->';
  const end = '<!-- /bench/bullmq.mjs -->';
  const section = [begin, '## Scale-out over Redis: mpms vs BullMQ\'s own Worker (bench/bullmq.mjs)', '', `Written by \`node bench/bullmq.mjs --write ${file}\` on ${new Date().toISOString().slice(0, 10)}.`, '', INTRO, '', ...report, end].join('\n');
  const doc = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const a = doc.indexOf(begin);
  const b = doc.indexOf(end);
  const out = a >= 0 && b > a ? doc.slice(0, a) + section + doc.slice(b + end.length) : `${doc.trimEnd()}\n\n${section}\n`;
  fs.writeFileSync(file, out);
}

const url = await redisUrl();
const redis = new Redis(url);
const LABEL = { mpms: 'mpms (bullmqTransport + `mpms worker -p 2 -t 2`)', bullmq: `BullMQ Worker (concurrency ${BULLMQ_CONCURRENCY}) + producer`, one: 'one `mpms worker -p 1 -t 2`', two: 'two `mpms worker -p 1 -t 2`' };
try {
  const load = os.loadavg().map((x) => x.toFixed(1)).join(' ');
  say(`${REPS} reps interleaved; Node ${process.version}; ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}); load average at start ${load}; ${(await redis.info('server')).match(/redis_version:(\S+)/)?.[1] ?? '?'} Redis on ${new URL(url).hostname}; ${OUTSTANDING} jobs outstanding at most`);
  for (const sc of SCENARIOS) {
    const names = Object.keys(sc.sides);
    const res = Object.fromEntries(names.map((k) => [k, []]));
    for (let r = 0; r < REPS; r++) {
      // Alternate which goes first, so neither always runs on a warmer (or cooler) machine.
      const order = r % 2 === 0 ? names : [...names].reverse();
      for (const which of order) {
        const queue = `bench-${sc.id}-${which}-${process.pid}-${r}`;
        const m = await sc.sides[which](url, redis, queue, sc.n);
        await clean(redis, queue);
        res[which].push(m);
        process.stderr.write(`${sc.id} rep ${r + 1}/${REPS} ${which}: ${fmt.int(m.rate)} tasks/s; CPU µs/task: master ${m.masterUs.toFixed(0)}, worker side ${m.workerUs.toFixed(0)}, Redis ${m.redisUs.toFixed(0)}\n`);
      }
    }
    const [a, b] = sc.ratio;
    const ratios = res[a].map((x, i) => x.rate / res[b][i].rate);
    say(`\n### ${sc.title}, ${sc.n} tasks per rep\n`);
    say('| | tasks/s | CPU µs/task: master / producer | worker side | Redis | total |');
    say('|---|---|---|---|---|---|');
    for (const k of names) {
      const xs = res[k];
      const us = (f) => span(xs.map(f), (v) => v.toFixed(0));
      say(`| ${LABEL[k]} | ${span(xs.map((x) => x.rate), fmt.int)} | ${us((x) => x.masterUs)} | ${us((x) => x.workerUs)} | ${us((x) => x.redisUs)} | ${us((x) => x.masterUs + x.workerUs + x.redisUs)} |`);
    }
    say(`| ${a} / ${b}, rep by rep | ${span(ratios, fmt.x2)} | | | | |`);
  }
  say(`\nLoad average at the end ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}. Each ratio pairs the two sides of one rep; a rep's sides run back to back, in alternating order.`);
  if (values.write) writeSection(values.write);
} finally {
  redis.disconnect();
  if (redisProc) redisProc.kill('SIGTERM');
}
