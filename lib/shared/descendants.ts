/**
 * A child process's descendants, read from /proc (Linux), so they can be killed when the child
 * ends — including those that left its process group (`detached: true` makes a new session and
 * group, which the group kill of architecture.md's "No orphans" does not reach).
 *
 * A descendant is recorded with its start time (field 22 of /proc/<pid>/stat, in clock ticks
 * since boot): a pid is only killed if the process that has it now started at the same tick, so
 * a pid reused by an unrelated process is never killed. A recorded descendant that led its own
 * process group has the group killed too: members re-parented to init when their parent exited
 * (a shell that backgrounds a daemon and exits) stay in that group, out of the tree. The group
 * is only killed if its leader is gone or is the same process (same start time): while any
 * member lives, Linux never reuses the group's id for a new process.
 *
 * Where /proc is missing (not Linux) every function here finds nothing.
 */
import fs from 'node:fs';

/** One descendant as recorded: pid, start time (clock ticks since boot), process group. */
export interface ProcRecord {
  pid: number;
  start: number;
  pgid: number;
}

interface Stat {
  ppid: number;
  pgid: number;
  start: number;
}

function readStat(pid: number): Stat | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces or ')': fields follow the last ')'.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state), so field n is f[n - 3].
  return { ppid: Number(f[1]), pgid: Number(f[2]), start: Number(f[19]) };
}

/** Direct children of `pid`: the `children` file of each of its threads (CONFIG_PROC_CHILDREN). */
function childrenOf(pid: number): number[] {
  let tids: string[];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const tid of tids) {
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'latin1');
    } catch {
      continue;
    }
    for (const p of text.split(' ')) if (p) out.push(Number(p));
  }
  return out;
}

/** Every live descendant of `root` (children, theirs, ...), whatever their process group. */
export function descendantsOf(root: number): ProcRecord[] {
  const out: ProcRecord[] = [];
  const seen = new Set<number>([root]);
  const todo = [root];
  while (todo.length > 0) {
    for (const pid of childrenOf(todo.pop()!)) {
      if (seen.has(pid)) continue;
      seen.add(pid);
      const st = readStat(pid);
      if (!st) continue;
      out.push({ pid, start: st.start, pgid: st.pgid });
      todo.push(pid);
    }
  }
  return out;
}

/**
 * SIGKILLs each recorded process that is still the same process (same start time), and each
 * process group a recorded process led, other than `ownPgid` (the caller's own group, which it
 * kills last, itself). Returns how many kills were sent.
 */
export function killRecorded(records: Iterable<ProcRecord>, ownPgid: number): number {
  let sent = 0;
  const kill = (target: number) => {
    try {
      process.kill(target, 'SIGKILL');
      sent++;
    } catch {
      // Gone already.
    }
  };
  const groups: ProcRecord[] = [];
  for (const r of records) {
    if (r.pid === r.pgid && r.pgid !== ownPgid) groups.push(r);
    if (readStat(r.pid)?.start === r.start) kill(r.pid);
  }
  for (const leader of groups) {
    const now = readStat(leader.pid);
    if (now === undefined || now.start === leader.start) kill(-leader.pgid);
  }
  return sent;
}

/**
 * Whether a record is of no more use: its process is gone (or its pid now belongs to another
 * process), and if it led a process group, nothing is left in that group either.
 */
export function isGone(r: ProcRecord): boolean {
  if (readStat(r.pid)?.start === r.start) return false;
  if (r.pid !== r.pgid) return true;
  try {
    process.kill(-r.pgid, 0);
    return false;
  } catch (err) {
    // EPERM: a member exists, owned by someone else: not ours to judge, keep the record.
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** Writes the records where the master can read them if this process is killed (see takeRecords). */
export function writeRecords(file: string, records: Iterable<ProcRecord>): void {
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify([...records]));
  fs.renameSync(tmp, file);
}

/** Reads (and removes) the records a child wrote; empty when there are none. */
export function takeRecords(file: string): ProcRecord[] {
  try {
    const records = JSON.parse(fs.readFileSync(file, 'utf8')) as ProcRecord[];
    fs.rmSync(file, { force: true });
    return Array.isArray(records) ? records : [];
  } catch {
    return [];
  }
}

/** File name of a child's descendant records, beside its threads' start logs. */
export function recordsFile(dir: string, childPid: number): string {
  return `${dir}/d${childPid}`;
}
