/**
 * An I/O-like job: 500 simulated HTTP requests (20–50 ms each, 35 ms on average) on
 * 2 processes x 2 threads x `concurrency: 16` = 64 requests in flight.
 *
 *   node examples/io-concurrency.mjs
 *
 * One at a time they would take 500 x 35 ms = 17.5 s; with 64 in flight the ideal is
 * 17.5 s / 64 ≈ 0.27 s. The example also shows:
 *   - `taskTimeout` + `retries: 1`: "flaky" requests hang on their first attempt, time out, and
 *     succeed on the retry (meta.attempts === 2);
 *   - "broken" requests throw: outcome `error` with the worker's own message and code;
 *   - `submit(args, { signal })`: one deliberately slow request is cancelled with an
 *     AbortController (outcome `cancelled`).
 */
import { MPMS } from 'mpms';

const N = 500;
const P = 2;
const T = 2;
const CONCURRENCY = 16;
const MEAN_MS = 35;

const byStatus = {};
let retriedOk = 0;
let plain = 0; // requests that answered on their first try
let plainDoneAt = 0;
const failures = [];
const m = new MPMS({
  worker: new URL('./workers/fetch-like.mjs', import.meta.url),
  processes: P,
  threads: T,
  concurrency: CONCURRENCY,
  taskTimeout: 500, //  a request that has not answered in 500 ms settles `timeout`...
  retries: 1, //         ...and is tried once more before that outcome is final
  collector(meta, result) {
    byStatus[meta.status] = (byStatus[meta.status] ?? 0) + 1;
    if (meta.status === 'ok' && meta.attempts > 1) retriedOk++;
    if (meta.status === 'ok' && meta.attempts === 1) (plain++, (plainDoneAt = performance.now()));
    if (meta.status !== 'ok') failures.push(`  ${meta.args[0]}: ${meta.status} (${result.name}: ${result.message})`);
  },
});
await m.start();

const t0 = performance.now();
const cancel = new AbortController();
for (let i = 0; i < N; i++) {
  let url = `https://example.test/items/${i}`;
  if (i % 150 === 75) url = `https://example.test/broken/${i}`; // 3 of them
  if (i % 200 === 10) url = `https://example.test/flaky/${i}`; //  3 of them
  if (i === 100) {
    // One slow request we give up on: the same AbortController could cancel any number of tasks.
    await m.submit([`https://example.test/slow/${i}`], { signal: cancel.signal });
    setTimeout(() => cancel.abort(), 150);
    continue;
  }
  await m.put(url);
}
const summary = await m.join();
const secs = (performance.now() - t0) / 1000;

const ideal = (N * MEAN_MS) / (P * T * CONCURRENCY) / 1000;
const plainSecs = (plainDoneAt - t0) / 1000;
console.log(`${N} requests of 20-50 ms on ${P}x${T} threads, concurrency ${CONCURRENCY}`);
console.log(`  one at a time they would take ~${((N * MEAN_MS) / 1000).toFixed(1)} s; ideal: (${N} x ${MEAN_MS} ms) / (${P}x${T}x${CONCURRENCY}) = ${ideal.toFixed(2)} s`);
console.log(`  the ${plain} requests that answered first time: done after ${plainSecs.toFixed(2)} s (${(plain / plainSecs).toFixed(0)} requests/s)`);
console.log(`  whole run, including the flaky ones' 500 ms timeout and retry: ${secs.toFixed(2)} s`);
console.log(`outcomes: ${JSON.stringify(byStatus)}; ok after a retry: ${retriedOk}`);
console.log(`not ok:\n${failures.sort().join('\n')}`);
console.log(`summary: total=${summary.total} ok=${summary.ok} error=${summary.error} timeout=${summary.timeout} crashed=${summary.crashed} cancelled=${summary.cancelled}`);
