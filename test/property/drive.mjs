// The part of a property-suite run that happens where the engine lives: the engine's options,
// the putting loop (puts, submits with AbortSignals, close() at its point) and the outcomes
// reduced to plain data. Plain JavaScript, so the same code drives the engine both inside the
// test process (test/property/run-scenario.ts) and in a real master script run as a subprocess
// (test/fixtures/property-master.mjs, for the SIGTERM scenarios).
import { TaskCancelledError, TaskTimeoutError, WorkerCrashedError } from '../../dist/index.js';

/**
 * The arguments a task is put with: its behaviour, and a value the result can be checked
 * against (a grandchild task also gets the run's directory, where it records its grandchild's pid).
 * @param {{ kind: string, ms?: number, code?: number, then?: string }} b
 * @param {number} index
 * @param {string} [runDir]
 * @returns {unknown[]}
 */
export function taskArgs(b, index, runDir = '') {
  switch (b.kind) {
    case 'sleep': return ['sleep', b.ms];
    case 'exit': return ['exit', b.code];
    case 'grandchild': return ['grandchild', index, runDir, b.then];
    default: return [b.kind, index];
  }
}

/**
 * The engine's options for a scenario, without collector and logger.
 * @param {any} sc the scenario (see model.ts)
 * @param {string | URL} worker
 * @param {unknown} initArgs
 */
export function engineOptions(sc, worker, initArgs) {
  const s = sc.settings;
  return {
    worker,
    processes: s.processes,
    threads: s.threads,
    concurrency: s.concurrency,
    taskQueueMaxsize: s.taskQueueMaxsize,
    lifecycle: s.lifecycle,
    lifecycleDuration: s.lifecycleDuration,
    lifecycleJitter: s.lifecycleJitter,
    taskTimeout: s.taskTimeout,
    retries: s.retries,
    hookTimeout: s.hookTimeout,
    workerGracefulDieTimeout: s.workerGracefulDieTimeout,
    putTimeout: s.putTimeout,
    initArgs,
  };
}

/**
 * Puts every task of the scenario, in order, and calls close() where the scenario says (just
 * before task `close.beforeTask` is put, or `close.delayMs` after that point, while the loop
 * goes on). Never throws: each put() is accepted or rejected, and reported.
 * @param {any} m the engine
 * @param {any} sc the scenario
 * @param {string} runDir
 * @param {{
 *   onAccepted: (id: number, index: number, afterClose: boolean) => void,
 *   onRejected: (r: { index: number, name: string, error: string, waitedMs: number, afterClose: boolean }) => void,
 *   onWait: (ms: number) => void,
 *   timers: NodeJS.Timeout[],
 * }} on
 */
export async function putAll(m, sc, runDir, on) {
  let closed = false;
  const close = () => {
    closed = true;
    m.close();
  };
  for (let i = 0; i < sc.tasks.length; i++) {
    if (sc.close && sc.close.beforeTask === i) {
      if (sc.close.delayMs === 0) close();
      else on.timers.push(setTimeout(close, sc.close.delayMs));
    }
    const t = sc.tasks[i];
    const args = taskArgs(t, i, runDir);
    // A put() issued after close() must reject: remembered at the call, not at the rejection.
    const afterClose = closed;
    const p0 = Date.now();
    try {
      let id;
      if (t.abortAfterMs === undefined) id = await m.put(...args);
      else {
        const ac = new AbortController();
        if (t.abortAfterMs < 0) ac.abort();
        else on.timers.push(setTimeout(() => ac.abort(), t.abortAfterMs));
        id = await m.submit(args, { signal: ac.signal });
      }
      const waitedMs = Date.now() - p0;
      on.onWait(waitedMs);
      // Not accepted because a shutdown had begun: checked like a rejection (only after the ending).
      if (id === undefined) {
        const error = 'NotAccepted: put() resolved without a task id (a shutdown had begun)';
        on.onRejected({ index: i, name: 'NotAccepted', error, waitedMs, afterClose: afterClose || closed });
      } else on.onAccepted(id, i, afterClose);
    } catch (err) {
      const waitedMs = Date.now() - p0;
      on.onWait(waitedMs);
      on.onRejected({ index: i, name: err?.name, error: `${err?.name}: ${err?.message}`, waitedMs, afterClose: afterClose || closed });
    }
  }
}

/**
 * An outcome as plain data (it crosses a pipe in the subprocess runs): the meta fields the checks
 * use, and the result — its value when ok, else its error class (by instanceof) and name/message.
 * @param {any} meta
 * @param {unknown} result
 */
export function plainOutcome(meta, result) {
  const { taskId, status, attempts, startedAt, processIndex, threadIndex, pid } = meta;
  const out = { meta: { taskId, status, attempts, startedAt, processIndex, threadIndex, pid } };
  if (status === 'ok') {
    let value;
    try {
      value = typeof result === 'function' ? '[function]' : JSON.parse(JSON.stringify(result ?? null));
    } catch {
      value = String(result);
    }
    return { ...out, value };
  }
  const cls =
    result instanceof TaskTimeoutError ? 'TaskTimeoutError'
    : result instanceof WorkerCrashedError ? 'WorkerCrashedError'
    : result instanceof TaskCancelledError ? 'TaskCancelledError'
    : result instanceof Error ? 'Error'
    : 'not an Error';
  return { ...out, error: { cls, name: result?.name, message: result?.message } };
}
