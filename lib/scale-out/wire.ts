/**
 * What travels through Redis between a master and the worker engines: declared once here and
 * used by both sides (bullmq-transport.ts, worker-engine.ts).
 *
 * BullMQ stores JSON, which would turn Buffers into objects and drop Maps, Dates and BigInts.
 * Arguments and outcomes therefore travel as `v8.serialize` bytes in base64, so a task sees
 * over Redis exactly what it sees locally.
 */
import v8 from 'node:v8';
import { Code, STATUS_BY_CODE, type ErrorWire } from '../protocol.js';
import type { RemoteOutcome } from '../transport/types.js';

/** `job.data` of a task job. */
export interface JobData {
  /** `v8.serialize(args)`, base64. */
  a: string;
  /** Hard limit in ms for this run, 0 for none. */
  t: number;
}

/** Job name of every task job (BullMQ wants one; workers do not dispatch on it). */
export const JOB_NAME = 'mpms';

/** A job id: the run, the task and the attempt. Re-adding the same attempt is a no-op in BullMQ. */
export function jobId(runId: string, taskId: number, attempt: number): string {
  return `${runId}.${taskId}.${attempt}`;
}

/** The (taskId, attempt) of one of `runId`'s job ids, or undefined for another run's job. */
export function parseJobId(runId: string, id: string | undefined): { taskId: number; attempt: number } | undefined {
  if (!id || !id.startsWith(runId + '.')) return undefined;
  const rest = id.slice(runId.length + 1).split('.');
  if (rest.length !== 2) return undefined;
  const taskId = Number(rest[0]);
  const attempt = Number(rest[1]);
  return Number.isSafeInteger(taskId) && Number.isSafeInteger(attempt) ? { taskId, attempt } : undefined;
}

export function encodeArgs(args: unknown[], timeout: number): JobData {
  return { a: v8.serialize(args).toString('base64'), t: timeout };
}

export function decodeArgs(data: JobData): unknown[] {
  return v8.deserialize(Buffer.from(data.a, 'base64')) as unknown[];
}

/** An outcome as a worker engine reports it: [code, value, startedAt, endedAt, worker, processIndex, threadIndex, pid]. */
type OutcomeTuple = [number, unknown, number, number, string, number, number, number];

/** Marks the machine-readable part of a failedReason; what precedes it is for humans (Redis UIs). */
const FAILED_MARK = '\n#mpms:';

/** A worker engine's outcome → BullMQ's returnvalue (ok) or failedReason (every other status). */
export function encodeOutcome(o: Omit<RemoteOutcome, 'taskId' | 'attempt'>): string {
  const tuple: OutcomeTuple = [o.code, o.value, o.startedAt, o.endedAt, o.worker ?? '', o.processIndex ?? -1, o.threadIndex ?? -1, o.pid ?? -1];
  const bytes = v8.serialize(tuple).toString('base64');
  if (o.code === Code.Ok) return bytes;
  const e = o.value as ErrorWire;
  return `[mpms ${STATUS_BY_CODE[o.code as Code]}] ${e.name}: ${e.message.slice(0, 200)}${FAILED_MARK}${bytes}`;
}

/**
 * BullMQ's final word on a job → an outcome. A failedReason that is not ours — BullMQ failed
 * the job itself, above all "job stalled more than allowable limit" when the worker engine
 * holding it died — means the machine was lost under the task: `crashed`.
 */
export function decodeOutcome(taskId: number, attempt: number, completed: boolean, payload: unknown, finishedOn: number | undefined): RemoteOutcome {
  let text = typeof payload === 'string' ? payload : undefined;
  if (!completed && text !== undefined) {
    const at = text.indexOf(FAILED_MARK);
    text = at >= 0 ? text.slice(at + FAILED_MARK.length) : undefined;
  }
  if (text !== undefined) {
    try {
      const [code, value, startedAt, endedAt, worker, processIndex, threadIndex, pid] = v8.deserialize(Buffer.from(text, 'base64')) as OutcomeTuple;
      const out: RemoteOutcome = { taskId, attempt, code, value, startedAt, endedAt };
      if (worker) out.worker = worker;
      if (processIndex >= 0) out.processIndex = processIndex;
      if (threadIndex >= 0) out.threadIndex = threadIndex;
      if (pid >= 0) out.pid = pid;
      return out;
    } catch {
      // Not ours after all: fall through to the lost-machine reading.
    }
  }
  const reason = typeof payload === 'string' ? payload : completed ? 'a job completed without an mpms result' : 'the job failed outside mpms';
  return lostOutcome(taskId, attempt, `was lost with the worker engine that held it: BullMQ says "${reason.slice(0, 200)}"`, finishedOn);
}

/** `crashed`, for a job whose run nobody can report: its machine died, or Redis lost the job. */
export function lostOutcome(taskId: number, attempt: number, what: string, endedAt = Date.now()): RemoteOutcome {
  const wire: ErrorWire = {
    name: 'WorkerCrashedError',
    message: `task ${taskId} (attempt ${attempt}) ${what}`,
    props: { exitCode: null, signal: null, scope: 'process' },
  };
  return { taskId, attempt, code: Code.Crashed, value: wire, startedAt: 0, endedAt };
}
