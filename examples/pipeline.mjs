/**
 * A `for await` pipeline with backpressure, from a large input file to a slow consumer, in
 * bounded memory.
 *
 *   node examples/pipeline.mjs [lines=20000]
 *
 * 1. Writes a JSONL file of 20,000 records (~2 KiB each, ~40 MiB) to os.tmpdir().
 * 2. Streams it with readline and `await m.put(line)` per line: put() waits while the task queue
 *    is full, which pauses the loop, which pauses readline, which stops reading the file.
 * 3. Reads outcomes with `for await (const { meta, result } of m.iterResults())`, concurrently,
 *    through a deliberately slow consumer (it sleeps 1 ms after every 10 results). While it lags,
 *    outcomes wait in a bounded queue (`resultQueueMaxsize`) and dispatch pauses.
 *
 * The master's RSS is sampled throughout: after a warm-up it stays roughly flat, however large
 * the file, because at no point does the whole file, or all the results, sit in memory (try
 * 80000 lines). RSS also depends on when V8 and the allocator hand pages back (Node 24 keeps
 * more), so run with `node --expose-gc` to see the exact figure: the live heap after a full GC
 * at 25%, 50% and 75% of the run, which is what the master really holds.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { MPMS } from 'mpms';

const LINES = Number(process.argv[2] ?? 20_000);
const MiB = 2 ** 20;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mpms-pipeline-'));
const file = path.join(dir, 'records.jsonl');

// 1. The input: generated with backpressure too, so writing it costs no memory either.
{
  const words = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta', 'theta', 'iota', 'kappa'];
  const out = fs.createWriteStream(file);
  for (let id = 0; id < LINES; id++) {
    let text = '';
    for (let w = 0; text.length < 2000; w++) text += `${words[(id * 7 + w * 3) % words.length]}${w} `;
    if (!out.write(`${JSON.stringify({ id, user: `user${id % 97}`, text })}\n`)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}
const fileBytes = fs.statSync(file).size;

const m = new MPMS({
  worker: new URL('./workers/parse-line.mjs', import.meta.url),
  processes: 2,
  threads: 2,
  taskQueueMaxsize: 64, //   at most 64 lines wait for a thread
  resultQueueMaxsize: 64, // at most 64 outcomes wait for the consumer
});
await m.start();

// RSS sampler: the master's resident memory, from here to the end. The first quarter of the run
// is warm-up (the JIT, V8's heap growing to its working size); after that RSS should stay flat.
const baseline = process.memoryUsage.rss();
let maxRss = baseline;
let maxAfterWarmup = 0;
const atQuarter = []; // RSS when 25%, 50%, 75% of the outcomes were in
const liveHeap = []; // heap after a full GC at the same points (only with --expose-gc)
const sampler = setInterval(() => {
  const rss = process.memoryUsage.rss();
  maxRss = Math.max(maxRss, rss);
  if (atQuarter.length) maxAfterWarmup = Math.max(maxAfterWarmup, rss);
  while (atQuarter.length < 3 && m.finishCount >= ((atQuarter.length + 1) * LINES) / 4) {
    atQuarter.push(rss);
    if (globalThis.gc) {
      globalThis.gc();
      liveHeap.push(process.memoryUsage().heapUsed);
    }
  }
}, 20);

const t0 = performance.now();
// 3. The consumer, started first so that it runs while the producer feeds the engine.
const consuming = (async () => {
  let ok = 0;
  let notOk = 0;
  let words = 0;
  let seen = 0;
  for await (const { meta, result } of m.iterResults()) {
    if (meta.status === 'ok') (ok++, (words += result.words));
    else (notOk++, console.error(`line ${meta.taskId}: ${meta.status}: ${result.message}`));
    if (++seen % 10 === 0) await sleep(1); // the slow part: e.g. writing to a database
  }
  return { ok, notOk, words };
})();

// 2. The producer: one task per line, each put() awaited.
const rl = readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity });
let maxQueued = 0;
for await (const line of rl) {
  await m.put(line);
  maxQueued = Math.max(maxQueued, m.metrics().queued);
}
const summary = await m.join(); // close() + wait for every outcome
const { ok, notOk, words } = await consuming;
clearInterval(sampler);
maxRss = Math.max(maxRss, process.memoryUsage.rss());
const secs = (performance.now() - t0) / 1000;
fs.rmSync(dir, { recursive: true, force: true });

console.log(`input: ${LINES} lines, ${(fileBytes / MiB).toFixed(1)} MiB of JSONL, streamed in ${secs.toFixed(2)} s (${(LINES / secs).toFixed(0)} lines/s)`);
console.log(`results: ${ok} ok, ${notOk} not ok, ${words} words counted; most tasks queued at once: ${maxQueued}`);
const mib = (n) => (n / MiB).toFixed(0);
console.log(`master RSS (MiB): start ${mib(baseline)}, at 25% ${mib(atQuarter[0])}, 50% ${mib(atQuarter[1])}, 75% ${mib(atQuarter[2])}, end ${mib(process.memoryUsage.rss())}`);
console.log(`master RSS: max growth ${((maxRss - baseline) / MiB).toFixed(1)} MiB over the run, ${((maxAfterWarmup - atQuarter[0]) / MiB).toFixed(1)} MiB after warm-up (the file is ${(fileBytes / MiB).toFixed(0)} MiB)`);
if (liveHeap.length) console.log(`master live heap after GC (MiB): 25% ${(liveHeap[0] / MiB).toFixed(1)}, 50% ${(liveHeap[1] / MiB).toFixed(1)}, 75% ${(liveHeap[2] / MiB).toFixed(1)}`);
console.log(`summary: total=${summary.total} ok=${summary.ok} error=${summary.error} timeout=${summary.timeout} crashed=${summary.crashed} cancelled=${summary.cancelled}`);
if (ok !== LINES) process.exitCode = 1;
