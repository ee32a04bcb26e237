#!/usr/bin/env node
// Throughput over Redis: mpms (a master with bullmqTransport + one `mpms worker` engine at
// P2×T2) against BullMQ's own Worker running the same no-op job (a producer with the same
// bound on jobs outstanding + one Worker process with the same concurrency as the engine's
// prefetch), in the same run, reps interleaved; each figure is a median (min–max).
//
//   node bench/bullmq.mjs [--tasks 20000] [--reps 5] [--redis redis://127.0.0.1:6379]
//
// Without --redis (or MPMS_REDIS_URL) it starts a redis-server of its own on a free port and
// stops it by pid at the end. Needs `npm run build` first.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Queue, Worker } from 'bullmq';
import { fmt, span } from './lib/stats.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const NOOP = path.join(ROOT, 'bench/workers/tasks.mjs');
const P = 2;
const T = 2;
/** The worker engine's default prefetch at P2×T2 (lib/scale-out/worker-engine.ts); the plain Worker gets the same concurrency. */
const PREFETCH = P * T * 4 + 8;
const OUTSTANDING = 1000;

const connOf = (url) => {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || 6379), maxRetriesPerRequest: null };
};

// ---- the plain BullMQ worker process ----------------------------------------------------------
if (process.argv[2] === '--plain-worker') {
  const [, , , url, queue] = process.argv;
  const w = new Worker(queue, async () => undefined, { connection: connOf(url), concurrency: PREFETCH });
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

const { values } = parseArgs({ options: { tasks: { type: 'string', default: '20000' }, reps: { type: 'string', default: '5' }, redis: { type: 'string' } } });
const N = Number(values.tasks);
const REPS = Number(values.reps);

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

async function runMpms(url, queue) {
  const { MPMS } = await import('../dist/index.js');
  const { bullmqTransport } = await import('../dist/scale-out/index.js');
  const worker = await spawnReady([path.join(ROOT, 'dist/cli/main.js'), 'worker', NOOP, '--redis', url, '--queue', queue, '-p', String(P), '-t', String(T)], 'serving queue');
  try {
    let ok = 0;
    const m = new MPMS({ worker: NOOP, taskQueueMaxsize: OUTSTANDING, collector: (meta) => void (meta.status === 'ok' && ok++), transport: bullmqTransport({ connection: url, queue, maxOutstanding: OUTSTANDING }) });
    await m.start();
    const t0 = performance.now();
    for (let i = 0; i < N; i++) await m.put(i);
    await m.join();
    const ms = performance.now() - t0;
    if (ok !== N) throw new Error(`mpms: ${ok} of ${N} ok`);
    return (N / ms) * 1000;
  } finally {
    await stopProc(worker);
  }
}

async function runPlain(url, queue) {
  const worker = await spawnReady([fileURLToPath(import.meta.url), '--plain-worker', url, queue], 'ready');
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
        if (done >= N) resolve();
      });
    });
    const t0 = performance.now();
    // The same backpressure as the master: at most OUTSTANDING jobs unsettled.
    while (added < N) {
      if (added - done >= OUTSTANDING) {
        await new Promise((r) => (wake = r));
        continue;
      }
      const n = Math.min(500, N - added, OUTSTANDING - (added - done));
      await q.addBulk(Array.from({ length: n }, (_, i) => ({ name: 'noop', data: { a: added + i }, opts: { removeOnComplete: true, removeOnFail: true } })));
      added += n;
    }
    await finished;
    return (N / (performance.now() - t0)) * 1000;
  } finally {
    await stopProc(worker);
    await q.obliterate({ force: true }).catch(() => undefined);
    await q.close();
  }
}

const url = await redisUrl();
const res = { mpms: [], plain: [] };
try {
  for (let r = 0; r < REPS; r++) {
    // Alternate which goes first, so neither always runs on a warmer machine.
    const order = r % 2 === 0 ? ['mpms', 'plain'] : ['plain', 'mpms'];
    for (const which of order) {
      const queue = `bench-${which}-${process.pid}-${r}`;
      const rate = which === 'mpms' ? await runMpms(url, queue) : await runPlain(url, queue);
      res[which].push(rate);
      process.stderr.write(`rep ${r + 1}/${REPS} ${which}: ${fmt.int(rate)} tasks/s\n`);
    }
  }
} finally {
  if (redisProc) redisProc.kill('SIGTERM');
}
const ratios = res.mpms.map((x, i) => x / res.plain[i]);
console.log(`no-op tasks over Redis, ${N} per rep, ${REPS} reps interleaved; worker side P${P}×T${T}, concurrency/prefetch ${PREFETCH}, ${OUTSTANDING} outstanding`);
console.log(`| | tasks/s |`);
console.log(`|---|---|`);
console.log(`| mpms (bullmqTransport + one \`mpms worker -p ${P} -t ${T}\`) | ${span(res.mpms, fmt.int)} |`);
console.log(`| BullMQ Worker (concurrency ${PREFETCH}), same no-op | ${span(res.plain, fmt.int)} |`);
console.log(`| mpms / BullMQ | ${span(ratios, fmt.x2)} |`);
