/**
 * `taskContext()`: what a running task knows about itself, valid across awaits.
 *
 * The store lives on globalThis under a registered symbol, so a worker module that imports its
 * own copy of `mpms` (another install, another path) still sees the running thread's store.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { TaskContext } from '../types.js';

/** Per-task state kept by the thread runner; the AbortController is made only if asked for. */
export interface TaskState {
  id: number;
  attempt: number;
  slot: number;
  settled: boolean;
  abortReason: string | undefined;
  controller: AbortController | undefined;
}

export interface ThreadScope {
  processIndex: number;
  threadIndex: number;
  processData: unknown;
  keepAlive(promise: Promise<unknown>): void;
}

interface Registry {
  als: AsyncLocalStorage<TaskState>;
  scope: ThreadScope | undefined;
  /** Where `taskContext().progress()` goes (thread/progress.ts); set by the thread entry. */
  progress?: (state: TaskState, value: unknown) => void;
}

const KEY = Symbol.for('mpms.taskContext');
const g = globalThis as unknown as Record<symbol, Registry | undefined>;
export const registry: Registry = (g[KEY] ??= { als: new AsyncLocalStorage<TaskState>(), scope: undefined });

/** Aborts the task's signal (creating it aborted if the task never asked for it yet). */
export function abortTask(state: TaskState, reason: string): void {
  if (state.abortReason !== undefined) return;
  state.abortReason = reason;
  state.controller?.abort(new Error(reason));
}

function signalOf(state: TaskState): AbortSignal {
  if (!state.controller) {
    state.controller = new AbortController();
    if (state.abortReason !== undefined) state.controller.abort(new Error(state.abortReason));
  }
  return state.controller.signal;
}

/**
 * The context of the task running in this async scope.
 * @throws Error when called outside a task run by mpms.
 */
export function taskContext(): TaskContext {
  const state = registry.als.getStore();
  const scope = registry.scope;
  if (!state || !scope) throw new Error('taskContext() was called outside a task run by mpms');
  return {
    taskId: state.id,
    attempt: state.attempt,
    get signal() {
      return signalOf(state);
    },
    keepAlive: scope.keepAlive,
    progress(value: unknown) {
      if (!state.settled) registry.progress?.(state, value);
    },
    processIndex: scope.processIndex,
    threadIndex: scope.threadIndex,
    processData: scope.processData,
  };
}
