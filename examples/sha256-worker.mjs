/**
 * A CPU-bound example task for `mpms run`: hashes a 64 KiB block `rounds` times with SHA-256,
 * chaining each digest into the next, and returns the final digest in hex. At 50 rounds one
 * task takes a few ms, small enough that the engine's own overhead is visible in the rate.
 *
 *   node examples/make-tasks.mjs 1000 | mpms run examples/sha256-worker.mjs -p 2
 */
import { createHash } from 'node:crypto';

const BLOCK_BYTES = 64 * 1024;
// Built once per thread (module scope) and only ever read, so concurrent tasks may share it.
const block = Buffer.alloc(BLOCK_BYTES);
for (let i = 0; i < BLOCK_BYTES; i++) block[i] = (i * 131 + 7) & 0xff;

/**
 * @param {number} seed  any integer; different seeds give different digests
 * @param {number} rounds  how many 64 KiB blocks to hash (work per task)
 * @returns {string} the final SHA-256 digest, hex
 */
export default function sha256Rounds(seed, rounds = 50) {
  if (!Number.isInteger(seed)) throw new TypeError(`seed must be an integer, got ${JSON.stringify(seed)}`);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 1_000_000) throw new RangeError(`rounds must be an integer in [1, 1000000], got ${JSON.stringify(rounds)}`);
  let digest = createHash('sha256').update(String(seed)).digest();
  for (let r = 0; r < rounds; r++) digest = createHash('sha256').update(digest).update(block).digest();
  return digest.toString('hex');
}
