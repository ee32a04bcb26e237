/**
 * What `mpms run` learns from files before it runs anything: how many task lines an --input file
 * holds (for a true progress total), and which input lines an earlier run already finished ok
 * (for --resume). Both stream: neither file is ever held in memory, whatever its size.
 */
import fs from 'node:fs';

/** A set of line numbers (1-based) as a growable bit set: 10 million lines take 1.25 MB. */
export class LineSet {
  private bits = new Uint8Array(1024);
  size = 0;

  add(line: number): void {
    const i = line >> 3;
    if (i >= this.bits.length) {
      let n = this.bits.length;
      while (n <= i) n *= 2;
      const grown = new Uint8Array(n);
      grown.set(this.bits);
      this.bits = grown;
    }
    const mask = 1 << (line & 7);
    if (!(this.bits[i]! & mask)) {
      this.bits[i]! |= mask;
      this.size++;
    }
  }

  has(line: number): boolean {
    const i = line >> 3;
    return i < this.bits.length && (this.bits[i]! & (1 << (line & 7))) !== 0;
  }
}

/** ASCII whitespace that `String.prototype.trim` removes; a line of only these is blank. */
function isBlankByte(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0d || b === 0x0b || b === 0x0c;
}

/**
 * Counts the lines of `file` that are tasks: not blank, and not in `skip` (already done).
 * Streams the bytes (a UTF-8 BOM at the start is not content). A line of only non-ASCII
 * whitespace counts as a task here and is skipped by the reader; run.ts corrects the total
 * when the input has been read to its end, so the final figures are exact.
 */
export async function countTaskLines(file: string, skip?: LineSet): Promise<number> {
  let count = 0;
  let line = 1;
  let content = false;
  let offset = 0;
  const stream = fs.createReadStream(file, { highWaterMark: 1 << 20 });
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    let i = 0;
    if (offset === 0 && chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) i = 3;
    offset += chunk.length;
    for (; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (b === 0x0a) {
        if (content && !skip?.has(line)) count++;
        line++;
        content = false;
      } else if (!content && !isBlankByte(b)) content = true;
    }
  }
  if (content && !skip?.has(line)) count++;
  return count;
}

/** What an earlier run left in its --output file. */
export interface EarlierRun {
  /** Input lines with an `ok` line. */
  ok: LineSet;
  /** Output lines read (complete ones). */
  lines: number;
  /** Bytes of an incomplete last line (the earlier run was killed while writing it), cut off. */
  tornBytes: number;
  /** Output lines that are JSON but carry no `line` field: written by an mpms without --resume support. */
  withoutLine: number;
  /** Output lines that are not JSON objects: not an output of mpms run. */
  notJson: number;
}

/**
 * Reads `file` (an earlier run's output) for --resume: the input lines that already have an `ok`
 * line. An incomplete last line — the run was killed in the middle of writing it — is cut off
 * the file, so the lines appended next start on a line of their own; its task runs again.
 * A file that does not exist is an empty earlier run.
 */
export async function readEarlierRun(file: string): Promise<EarlierRun> {
  const run: EarlierRun = { ok: new LineSet(), lines: 0, tornBytes: 0, withoutLine: 0, notJson: 0 };
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(file, 'r+');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return run;
    throw err;
  }
  try {
    let pending: Buffer = Buffer.alloc(0);
    let complete = 0;
    for await (const chunk of handle.createReadStream({ autoClose: false, highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
      let data = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      let nl: number;
      while ((nl = data.indexOf(0x0a)) >= 0) {
        noteLine(run, data.subarray(0, nl));
        complete += nl + 1;
        data = data.subarray(nl + 1);
      }
      pending = Buffer.from(data);
    }
    if (pending.length > 0) {
      run.tornBytes = pending.length;
      await handle.truncate(complete);
    }
  } finally {
    await handle.close();
  }
  return run;
}

function noteLine(run: EarlierRun, bytes: Buffer): void {
  const text = bytes.toString('utf8').trim();
  if (text.length === 0) return;
  run.lines++;
  if (!text.startsWith('{') || !text.endsWith('}')) {
    run.notJson++;
    return;
  }
  // Only ok lines matter, and every ok line mpms writes has `"status":"ok"`: the rest need no parse.
  if (!text.includes('"status":"ok"')) return;
  let rec: { line?: unknown; status?: unknown };
  try {
    rec = JSON.parse(text) as typeof rec;
  } catch {
    run.notJson++;
    return;
  }
  if (typeof rec?.line !== 'number' || !Number.isSafeInteger(rec.line) || rec.line < 1) {
    run.withoutLine++;
    return;
  }
  if (rec.status === 'ok') run.ok.add(rec.line);
}
