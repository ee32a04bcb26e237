/**
 * Worker for examples/pipeline.mjs: parses one JSONL record and returns a small summary of it
 * (its id, word count and a checksum), so results are much smaller than the input lines.
 */
import { createHash } from 'node:crypto';

/**
 * @param {string} line  one line of the input file: {"id":..,"user":..,"text":..}
 * @returns {{ id: number, user: string, words: number, sha1: string }}
 */
export default function parseLine(line) {
  const record = JSON.parse(line);
  const words = record.text.split(/\s+/).filter(Boolean).length;
  const sha1 = createHash('sha1').update(record.text).digest('hex').slice(0, 12);
  return { id: record.id, user: record.user, words, sha1 };
}
