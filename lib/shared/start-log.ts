/**
 * The start log: how the master learns, after a child process died, which of the tasks it held
 * had started. Each thread writes a 24-byte record `[taskId, attempt, startedAt]` with one `pwrite` before
 * it calls the task function. The write is in the kernel when the call returns, so it survives
 * a SIGKILL or a segfault of the process an instant later; no message, and no process is woken.
 *
 * One file per thread instance, named `c<childPid>-...`, a ring of `CAPACITY` records: far more
 * than a child can hold unsettled, so every task a dead child held and had started is still there.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const RECORD = 24;
const CAPACITY = 4096;
/** One thread's log in bytes: written in full when it is opened (see StartLog). */
const LOG_BYTES = RECORD * CAPACITY;

/** The thread's writer. */
export class StartLog {
  private readonly fd: number;
  private readonly buf = Buffer.alloc(RECORD);
  private seq = 0;

  /**
   * Opens the log and writes it in full (zeros, which the reader skips), so the disk space it
   * needs is taken now: a full or read-only disk fails this thread's start, with the error
   * named, instead of the `pwrite` before some task — which would end that task, and the
   * tasks queued behind it, as crashes they had no part in.
   * @throws Error naming the file and the system error.
   */
  constructor(file: string) {
    let fd: number | undefined;
    try {
      fd = fs.openSync(file, 'w');
      writeZeros(fd);
    } catch (err) {
      if (fd !== undefined) fs.closeSync(fd);
      throw new Error(`cannot write the start log ${file}: ${(err as Error).message}`, { cause: err });
    }
    this.fd = fd;
  }

  record(id: number, attempt: number, startedAt: number): void {
    this.buf.writeDoubleLE(id, 0);
    this.buf.writeDoubleLE(attempt, 8);
    this.buf.writeDoubleLE(startedAt, 16);
    fs.writeSync(this.fd, this.buf, 0, RECORD, (this.seq++ % CAPACITY) * RECORD);
  }
}

function writeZeros(fd: number): void {
  const zeros = Buffer.alloc(LOG_BYTES);
  for (let off = 0; off < LOG_BYTES; ) off += fs.writeSync(fd, zeros, off, LOG_BYTES - off, off);
}

/**
 * Makes the directory for an engine's start logs in the OS temporary directory (`TMPDIR`) and
 * checks that a thread's log fits there, so that a missing, read-only or full temporary
 * directory fails `start()` with its cause named, before any process is started.
 * @throws Error naming the directory and the system error (ENOENT, EROFS, ENOSPC, EACCES...).
 */
export function makeStartLogDir(): string {
  const base = os.tmpdir();
  let dir: string;
  try {
    dir = fs.mkdtempSync(path.join(base, 'mpms-'));
  } catch (err) {
    const what = `cannot create the start-log directory in ${base} (the temporary directory, TMPDIR)`;
    throw new Error(`${what}: ${(err as Error).message}`, { cause: err });
  }
  const probe = path.join(dir, 'probe');
  let fd: number | undefined;
  try {
    fd = fs.openSync(probe, 'w');
    writeZeros(fd);
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    const what = `cannot write a start log in ${dir} (the temporary directory, TMPDIR)`;
    throw new Error(`${what}: ${(err as Error).message}`, { cause: err });
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
  fs.rmSync(probe, { force: true });
  return dir;
}

/** File name of a thread's start log; the prefix ties it to its child's pid. */
export function startLogFile(dir: string, childPid: number, threadIndex: number, spawnSeq: number): string {
  return path.join(dir, `c${childPid}-t${threadIndex}-${spawnSeq}`);
}

/** A start as `readStartLogs` finds it: the latest record of a task in one live child. */
export interface StartRecord {
  attempt: number;
  threadIndex: number;
  startedAt: number;
}

/** One start record, as written by a thread: task id, attempt, start time. */
type Visit = (id: number, attempt: number, startedAt: number, threadIndex: number) => void;

/**
 * Calls `visit` for every start record in `childPid`'s logs (records of id 0 are empty slots).
 * `remove`: delete each file once read (the child is dead). A missing or unreadable log reads as
 * empty.
 */
function eachStart(dir: string, childPid: number, remove: boolean, visit: Visit): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => n.startsWith(`c${childPid}-`));
  } catch {
    return;
  }
  for (const name of names) {
    const file = path.join(dir, name);
    const threadIndex = Number(/-t(\d+)-/.exec(name)?.[1] ?? -1);
    let data: Buffer;
    try {
      data = fs.readFileSync(file);
      if (remove) fs.rmSync(file, { force: true });
    } catch {
      continue;
    }
    for (let off = 0; off + RECORD <= data.length; off += RECORD) {
      const id = data.readDoubleLE(off);
      if (id !== 0) visit(id, data.readDoubleLE(off + 8), data.readDoubleLE(off + 16), threadIndex);
    }
  }
}

/**
 * Reads, without removing them, the start logs of a live child: `taskId -> its latest start`.
 * On demand only (`m.running()`): tasks pay nothing for it beyond the write they make anyway.
 */
export function readStartLogs(dir: string, childPid: number): Map<number, StartRecord> {
  const out = new Map<number, StartRecord>();
  eachStart(dir, childPid, false, (id, attempt, startedAt, threadIndex) => {
    const seen = out.get(id);
    const later = !seen || seen.attempt < attempt || (seen.attempt === attempt && seen.startedAt < startedAt);
    if (later) out.set(id, { attempt, threadIndex, startedAt });
  });
  return out;
}

/**
 * Reads (and removes) the start logs of a dead child. Returns `taskId -> attempts started`.
 * A missing or unreadable log reads as empty: the caller then treats the task as not started
 * only if it has no other sign that it ran.
 */
export function takeStartLogs(dir: string, childPid: number): Map<number, Set<number>> {
  const started = new Map<number, Set<number>>();
  eachStart(dir, childPid, true, (id, attempt) => {
    const set = started.get(id);
    if (set) set.add(attempt);
    else started.set(id, new Set([attempt]));
  });
  return started;
}
