// Runs one benchmark case in its own Node process, so heaps and JIT state do not leak between
// cases, and bounds it: a case that stalls is killed with every process it started, and the
// bench fails with the case's own diagnosis instead of hanging. After printing its result a case
// must exit by itself (a live handle is an engine leak) and leave no descendant behind.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { trackDescendants } from './proc-tree.mjs';

export const RESULT_TAG = 'MPMS-BENCH-RESULT ';
export const DIAGNOSIS_TAG = 'mpms bench: ';

/** Wall-clock ms comparable across processes on this machine. */
export const wallNow = () => performance.timeOrigin + performance.now();

/**
 * Runs `node script ...argv` and waits for one `RESULT_TAG` JSON line. Resolves with
 * `{ res, failure }`: `res` also holds `exitAt`, when the process ended (wall ms).
 */
export function runIsolated(script, argv, { label, timeoutMs, env }) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env: env ? { ...process.env, ...env } : process.env });
    const tree = trackDescendants(child.pid);
    let res = null;
    let exitTimer = null;
    let diagnosis = null;
    const failures = [];
    const killAll = () => {
      tree.sample();
      tree.kill();
      child.kill('SIGKILL');
    };

    createInterface({ input: child.stderr }).on('line', (line) => {
      if (line.startsWith(DIAGNOSIS_TAG)) diagnosis = line.slice(DIAGNOSIS_TAG.length);
      process.stderr.write(`  [${label}] ${line}\n`);
    });
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (!line.startsWith(RESULT_TAG)) return void process.stderr.write(`  [${label}] ${line}\n`);
      res = JSON.parse(line.slice(RESULT_TAG.length));
      exitTimer = setTimeout(() => {
        failures.push(`${label}: printed its result but did not exit within 10 s (a handle is left open); killed`);
        killAll();
      }, 10_000);
    });

    // The case's own bound prints a diagnosis and exits first; this catches a process too stuck for it.
    const hard = setTimeout(() => {
      failures.push(`${label}: did not finish within ${timeoutMs + 15_000} ms; killed it and ${tree.alive().length} descendants`);
      killAll();
    }, timeoutMs + 15_000);

    child.on('exit', async (code, signal) => {
      const exitAt = wallNow();
      clearTimeout(hard);
      clearTimeout(exitTimer);
      tree.stop();
      if (!failures.length && code !== 0) failures.push(diagnosis ?? `${label}: exited with code ${code}${signal ? ` (${signal})` : ''}`);
      // A finished engine's children get a few seconds to go; what stays is reported and killed.
      let left = tree.alive();
      for (let i = 0; i < 50 && left.length; i++) {
        await new Promise((r) => setTimeout(r, 100));
        left = tree.alive();
      }
      if (left.length) {
        failures.push(`${label}: left ${left.length} process(es) alive 5 s after it exited (killed now): ${left.map((p) => `${p.pid} (${p.comm})`).join(', ')}`);
        tree.kill();
      }
      if (res?.problems?.length) failures.push(`${label}: wrong results: ${res.problems.join('; ')}`);
      const failure = failures.length ? failures.join('; and ') : null;
      resolve({ res: failure ? null : { ...res, exitAt }, failure });
    });
  });
}

/**
 * The case side: runs `body(state)` under an inner bound, prints its result for the orchestrator,
 * then lets the process end by itself. `state.phase`/`state.describe()` say where a stall happened.
 */
export async function runCaseBody(label, timeoutMs, body) {
  const state = { phase: 'start', describe: () => '' };
  // Left referenced: a stall with nothing else pending must still end in this diagnosis.
  const guard = setTimeout(() => {
    console.error(`${DIAGNOSIS_TAG}${label} exceeded ${timeoutMs} ms in phase '${state.phase}'${state.describe()}`);
    process.exit(3);
  }, timeoutMs);
  let res;
  try {
    res = await body(state);
  } catch (err) {
    console.error(`${DIAGNOSIS_TAG}${label} threw in phase '${state.phase}': ${err?.stack ?? err}`.replace(/\n\s*/g, ' | '));
    process.exit(1);
  }
  clearTimeout(guard);
  process.stdout.write(RESULT_TAG + JSON.stringify({ problems: [], ...res }) + '\n');
}
