/**
 * Worker for examples/fragile-resource.mjs: one long-lived, expensive, native resource per thread.
 *
 * A real job would launch a headless browser (or ffmpeg, or a database connection) once per
 * thread and reuse it for many tasks. Here a small `node` child process stands in for the
 * browser: it answers every line written to its stdin with "pong <line>".
 *
 *   threadInitializer  launches it (once per thread, before the thread's first task)
 *   default export     uses it: sends a ping and waits for the pong
 *   threadFinalizer    closes it (when the thread retires: `lifecycle`, shutdown, join)
 *
 * The hooks append "open <pid>" / "close <pid>" to `initArgs.logFile`, so the example can count
 * launches and closes and check afterwards that no "browser" is left.
 */
import { spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { taskContext } from 'mpms';

const BROWSER_SOURCE = `
  process.stdin.setEncoding('utf8');
  let buf = '';
  process.stdin.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\\n')) >= 0) { process.stdout.write('pong ' + buf.slice(0, i) + '\\n'); buf = buf.slice(i + 1); }
  });
  process.stdin.on('end', () => process.exit(0));
  setInterval(() => {}, 1000);
  process.stdout.write('ready\\n');
`;

// Module scope is per thread: every worker thread loads its own copy of this module.
let browser; // { child, lines, pending }

export async function threadInitializer(ctx) {
  const child = spawn(process.execPath, ['-e', BROWSER_SOURCE, 'mpms-example-browser'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const pending = []; // resolvers of pings waiting for their pong, in order
  lines.on('line', (line) => pending.shift()?.(line));
  // Wait until it is ready (its first line), or fail the initializer if it dies first.
  const ready = new Promise((resolve) => pending.push(resolve));
  const died = once(child, 'exit').then(([code, signal]) => {
    throw new Error(`browser exited during launch (code ${code}, signal ${signal})`);
  });
  await Promise.race([ready, died]);
  died.catch(() => {}); // later exits are noticed by the tasks (ping fails)
  browser = { child, lines, pending };
  appendFileSync(ctx.initArgs.logFile, `open ${child.pid} ${ctx.processIndex}/${ctx.threadIndex}\n`);
}

export async function threadFinalizer(ctx) {
  if (!browser) return;
  const { child } = browser;
  browser = undefined;
  const exited = child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : once(child, 'exit');
  child.stdin.end(); // the polite way: it exits when its input ends...
  const timer = setTimeout(() => child.kill('SIGKILL'), 2000); // ...or is killed if it will not
  await exited;
  clearTimeout(timer);
  appendFileSync(ctx.initArgs.logFile, `close ${child.pid} ${ctx.processIndex}/${ctx.threadIndex}\n`);
}

/**
 * One task: "use the browser" — ping it and wait for its answer.
 * @param {number} n
 * @returns {Promise<{ n: number, browserPid: number, reply: string }>}
 */
export default async function useBrowser(n) {
  if (!browser) throw new Error('no browser in this thread');
  const { child, pending } = browser;
  const { signal } = taskContext();
  const reply = await new Promise((resolve, reject) => {
    if (child.exitCode !== null || child.signalCode !== null) return reject(new Error(`browser ${child.pid} is gone`));
    pending.push(resolve);
    signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    child.stdin.write(`${n}\n`);
  });
  if (reply !== `pong ${n}`) throw new Error(`unexpected reply ${JSON.stringify(reply)}`);
  return { n, browserPid: child.pid, reply };
}
