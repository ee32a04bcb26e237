/**
 * A fragile native resource per thread: threadInitializer launches a long-lived process (a
 * stand-in for a headless browser), threadFinalizer closes it, and `lifecycle: 20` recycles every
 * thread after 20 tasks, so each "browser" serves at most 20 tasks before a fresh one replaces it
 * (the usual cure for browsers that leak memory or go stale).
 *
 *   node examples/fragile-resource.mjs
 *
 * Prints how many browsers were opened and closed, and checks after join() that none is left.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MPMS } from 'mpms';

const N = 200;
const LIFECYCLE = 20;
const logFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mpms-fragile-')), 'browsers.log');
fs.writeFileSync(logFile, '');

const usedBy = new Map(); // browser pid -> tasks it served
let restarts = 0;
const m = new MPMS({
  worker: new URL('./workers/browser-like.mjs', import.meta.url),
  processes: 2,
  threads: 2,
  lifecycle: LIFECYCLE,
  hookTimeout: 10_000, // launching or closing a browser may take this long at most
  taskTimeout: 5_000,
  initArgs: { logFile },
  collector(meta, result) {
    if (meta.status === 'ok') usedBy.set(result.browserPid, (usedBy.get(result.browserPid) ?? 0) + 1);
    else console.error(`task ${meta.taskId}: ${meta.status}: ${result.message}`);
  },
});
m.on('restart', ({ reason }) => {
  if (reason === 'lifecycle') restarts++;
});

await m.start();
for (let i = 0; i < N; i++) await m.put(i);
const summary = await m.join();

// After join() every thread has run its finalizer: read what the hooks recorded.
const events = fs.readFileSync(logFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => l.split(' '));
const opened = events.filter(([e]) => e === 'open').map(([, pid]) => Number(pid));
const closed = new Set(events.filter(([e]) => e === 'close').map(([, pid]) => Number(pid)));
const alive = opened.filter((pid) => {
  try {
    process.kill(pid, 0); // signal 0: only checks that the process exists
    return true;
  } catch {
    return false;
  }
});
fs.rmSync(path.dirname(logFile), { recursive: true, force: true });

console.log(`${N} tasks, each pinging its thread's browser; lifecycle ${LIFECYCLE} -> ${restarts} thread recycles`);
console.log(`browsers opened: ${opened.length}, closed by threadFinalizer: ${opened.filter((p) => closed.has(p)).length}`);
console.log(`tasks per browser: max ${Math.max(...usedBy.values())} (limit ${LIFECYCLE}), ${usedBy.size} browsers served tasks`);
console.log(alive.length === 0 ? 'browsers left running after join(): 0' : `browsers left running after join(): ${alive.length} (pids ${alive.join(', ')})`);
console.log(`summary: total=${summary.total} ok=${summary.ok} error=${summary.error} timeout=${summary.timeout} crashed=${summary.crashed} cancelled=${summary.cancelled}`);
if (alive.length || summary.ok !== N) process.exitCode = 1;
