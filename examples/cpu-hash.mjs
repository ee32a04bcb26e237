/**
 * A CPU job over Buffers: hash 2,000 generated 64 KiB blocks on 2 processes x 2 threads.
 *
 *   node examples/cpu-hash.mjs [N=2000]
 *
 * The master generates each block just before put(), so at most `taskQueueMaxsize` blocks are
 * in flight (put() waits while the queue is full). A collector checks every digest against one
 * computed locally and prints tasks/s and the engine's summary.
 */
import { createHash, randomFillSync } from 'node:crypto';
import { MPMS } from 'mpms';

const N = Number(process.argv[2] ?? 2000);
const BLOCK = 64 * 1024;
const ROUNDS = 4;

// The expected digest of every block, computed in the master, to check the workers' answers.
const expected = new Map();
function localDigest(block) {
  let d = createHash('sha256').update(block).digest();
  for (let r = 1; r < ROUNDS; r++) d = createHash('sha256').update(d).update(block).digest();
  return d.toString('hex');
}

let mismatches = 0;
let bytes = 0;
const m = new MPMS({
  worker: new URL('./workers/hash.mjs', import.meta.url),
  processes: 2,
  threads: 2,
  collector(meta, result) {
    if (meta.status !== 'ok') {
      console.error(`task ${meta.taskId}: ${meta.status}: ${result.message}`);
      return;
    }
    // Binary results cross back as binary: result.digest is a Buffer again in the master.
    if (result.digest.toString('hex') !== result.hex || result.hex !== expected.get(meta.blockIndex)) mismatches++;
    expected.delete(meta.blockIndex);
    bytes += result.bytes;
  },
});

await m.start();
const t0 = performance.now();
for (let i = 0; i < N; i++) {
  const block = randomFillSync(Buffer.allocUnsafe(BLOCK));
  const want = localDigest(block);
  expected.set(i, want);
  // Same as m.put(block, ROUNDS), plus a meta key the collector uses to find the expected digest.
  await m.submit([block, ROUNDS], { meta: { blockIndex: i } });
}
const summary = await m.join();
const secs = (performance.now() - t0) / 1000;

console.log(`hashed ${N} x 64 KiB (${(bytes / 2 ** 20).toFixed(0)} MiB) in ${secs.toFixed(2)} s: ${(N / secs).toFixed(0)} tasks/s, ${(bytes / 2 ** 20 / secs).toFixed(0)} MiB/s`);
console.log(`digest mismatches: ${mismatches}`);
console.log(`summary: total=${summary.total} ok=${summary.ok} error=${summary.error} timeout=${summary.timeout} crashed=${summary.crashed} cancelled=${summary.cancelled}`);
if (mismatches || summary.ok !== N) process.exitCode = 1;
