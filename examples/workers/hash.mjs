/**
 * Worker for examples/cpu-hash.mjs: a CPU-bound task over a Buffer.
 *
 * Each task receives one 64 KiB block (it crosses master -> child -> thread as binary, via
 * structured clone) and returns its SHA-256 digest, both as raw bytes and as hex.
 */
import { createHash } from 'node:crypto';

/**
 * @param {Buffer} block  the data to hash (a Buffer put() in the master arrives as a Buffer)
 * @param {number} rounds  how many times to chain the digest through the block (work per task)
 * @returns {{ digest: Buffer, hex: string, bytes: number }}
 */
export default function hashBlock(block, rounds = 4) {
  if (!(block instanceof Uint8Array)) throw new TypeError('block must be a Buffer/Uint8Array');
  let digest = createHash('sha256').update(block).digest();
  for (let r = 1; r < rounds; r++) digest = createHash('sha256').update(digest).update(block).digest();
  return { digest, hex: digest.toString('hex'), bytes: block.length };
}
