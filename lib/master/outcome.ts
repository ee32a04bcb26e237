/** Turning a wire outcome into what the user sees: a rebuilt Error, and the `meta` object. */
import v8 from 'node:v8';
import { STATUS_BY_CODE, type Code, type ErrorWire } from '../protocol.js';
import { SerializationError, TaskCancelledError, TaskTimeoutError, WorkerCrashedError, WorkerGracefulDie } from '../errors.js';
import type { Meta } from '../types.js';
import type { RemotePlace } from '../transport/types.js';
import type { TaskRecord } from './ledger.js';

/**
 * Rebuilds an Error from its wire form, as an instance of our own class when it is one of ours.
 * Throws if its packed cause and fields cannot be decoded here (see ErrorWire.packed).
 */
export function fromErrorWire(wire: ErrorWire): Error {
  if (wire.packed) wire = { ...wire, ...(v8.deserialize(wire.packed) as Pick<ErrorWire, 'cause' | 'props'>) };
  const props = wire.props ?? {};
  let err: Error;
  switch (wire.name) {
    case 'TaskTimeoutError':
      err = new TaskTimeoutError(wire.message, Number(props.timeoutMs ?? 0));
      break;
    case 'WorkerCrashedError':
      err = new WorkerCrashedError(wire.message, {
        exitCode: (props.exitCode as number | null) ?? null,
        signal: (props.signal as NodeJS.Signals | null) ?? null,
        scope: (props.scope as 'thread' | 'process') ?? 'thread',
      });
      break;
    case 'TaskCancelledError':
      err = new TaskCancelledError(wire.message);
      break;
    case 'SerializationError':
      err = new SerializationError(wire.message);
      break;
    case 'WorkerGracefulDie':
      err = new WorkerGracefulDie(wire.message);
      break;
    default:
      err = new Error(wire.message);
      // The worker's own name survives even though its class cannot cross the boundary.
      Object.defineProperty(err, 'name', { value: wire.name, writable: true, configurable: true, enumerable: false });
  }
  if (wire.stack) err.stack = wire.stack;
  if (wire.cause) (err as { cause?: unknown }).cause = 'name' in wire.cause ? fromErrorWire(wire.cause) : wire.cause.value;
  for (const key of Object.keys(props)) {
    if (!(key in err)) (err as unknown as Record<string, unknown>)[key] = props[key];
  }
  return err;
}

/** Builds the `meta` of a settled task. `userMeta` keys never override ours. */
export function buildMeta(
  rec: TaskRecord,
  code: Code,
  startedAt: number,
  endedAt: number,
  processIndex: number | undefined,
  threadIndex: number | undefined,
  pid: number | undefined,
  userMeta: Record<string, unknown> | undefined,
  remote?: RemotePlace,
): Meta {
  const meta: Meta = userMeta ? Object.assign({}, userMeta) as Meta : ({} as Meta);
  meta.taskId = rec.id;
  meta.args = rec.args;
  meta.status = STATUS_BY_CODE[code];
  meta.attempts = rec.attempts;
  if (startedAt > 0) {
    meta.startedAt = startedAt;
    meta.runMs = endedAt - startedAt;
    meta.waitMs = Math.max(0, startedAt - rec.enqueuedAt);
  }
  meta.endedAt = endedAt;
  if (processIndex !== undefined) meta.processIndex = processIndex;
  if (threadIndex !== undefined && threadIndex >= 0) meta.threadIndex = threadIndex;
  if (pid !== undefined) meta.pid = pid;
  if (remote) {
    if (remote.processIndex !== undefined) meta.processIndex = remote.processIndex;
    if (remote.pid !== undefined) meta.pid = remote.pid;
    if (remote.worker !== undefined) meta.worker = remote.worker;
  }
  return meta;
}

/**
 * A final error after retries says how many attempts ran (`err.attempts`). Its message stays the
 * worker's own: a thrown error reaches the user as it was thrown (the property model checks it).
 */
export function noteAttempts(err: unknown, attempts: number): void {
  if (err instanceof Error) (err as Error & { attempts?: number }).attempts = attempts;
}
