// Tracks every descendant of a process we started, so a bench can kill exactly those (and
// notice any that outlive their parent) without broad kills. An engine may put its children in
// their own process groups, so a group kill is not enough; and an orphan is reparented away from
// its tree, so the tree must be sampled while the parent is still alive. Linux /proc only.
import { readdirSync, readFileSync } from 'node:fs';

function readStat(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may hold spaces and parentheses; the fields after the last ')' are fixed.
    const close = s.lastIndexOf(')');
    const fields = s.slice(close + 2).split(' ');
    return { pid, comm: s.slice(s.indexOf('(') + 1, close), ppid: Number(fields[1]), start: fields[19] };
  } catch {
    return null;
  }
}

function snapshot() {
  const all = [];
  for (const name of readdirSync('/proc')) {
    if (name.charCodeAt(0) < 48 || name.charCodeAt(0) > 57) continue;
    const st = readStat(Number(name));
    if (st) all.push(st);
  }
  return all;
}

export function trackDescendants(rootPid, intervalMs = 500) {
  // pid -> start time; the start time guards against a pid reused by an unrelated process.
  const seen = new Map();
  const sample = () => {
    const all = snapshot();
    const kids = new Map();
    for (const p of all) {
      if (!kids.has(p.ppid)) kids.set(p.ppid, []);
      kids.get(p.ppid).push(p);
    }
    const stack = [rootPid];
    while (stack.length) {
      for (const k of kids.get(stack.pop()) ?? []) {
        seen.set(k.pid, { start: k.start, comm: k.comm });
        stack.push(k.pid);
      }
    }
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  timer.unref();
  const alive = () => {
    const out = [];
    for (const [pid, { start, comm }] of seen) {
      const st = readStat(pid);
      if (st && st.start === start) out.push({ pid, comm });
    }
    return out;
  };
  return {
    sample,
    stop: () => clearInterval(timer),
    alive,
    kill: () => {
      for (const { pid } of alive()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {}
      }
    },
  };
}
