/**
 * What travels through Redis between a master and the worker engines: declared once here and
 * used by both sides (bullmq-transport.ts, worker-engine.ts; the Lua side is in scripts.ts).
 *
 * BullMQ stores JSON, which would turn Buffers into objects and drop Maps, Dates and BigInts.
 * Arguments and outcomes therefore travel as `v8.serialize` bytes in base64, so a task sees
 * over Redis exactly what it sees locally.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import { Code, STATUS_BY_CODE, type ErrorWire } from '../protocol.js';
import type { RemoteOutcome } from '../transport/types.js';
import { crashed } from '../shared/outcomes.js';

/**
 * Version of this format (job data, job name, outbox entries, Redis keys). A worker engine
 * refuses a job of another version. 1 was the BullMQ-Worker format of mpms 0.1 (no version).
 */
export const WIRE_VERSION = 2;

/** `job.data` of a task job. */
export interface JobData {
  /** `v8.serialize(args)`, base64. */
  a: string;
  /** Hard limit in ms for this run, 0 for none. */
  t: number;
}

/**
 * What a master and a worker engine must agree on before a job runs: the wire version, the
 * worker module (a content hash, or a fingerprint the user gives) and the export.
 */
export interface Compat {
  fingerprint: string;
  exportName: string;
}

/** A job's BullMQ name: `mpms/<wire>/<fingerprint>/<export>` — readable in Redis UIs, checked by worker engines. */
export function jobName(c: Compat): string {
  return `mpms/${WIRE_VERSION}/${c.fingerprint}/${c.exportName}`;
}

/**
 * The fingerprint of a worker module: the first 16 hex digits of the SHA-256 of its file (of
 * its URL when it is not a file). Only the entry file is hashed: a module whose imports
 * changed keeps its fingerprint — give your own (a release or commit id) for those.
 */
export function moduleFingerprint(href: string): string {
  let bytes: Buffer | string = href;
  if (href.startsWith('file:')) {
    try {
      bytes = fs.readFileSync(fileURLToPath(href));
    } catch {
      // Unreadable here: the engine's own start-up reports a missing module precisely.
    }
  }
  return crypto.createHash('sha256').update(bytes).digest('hex').slice(0, 16);
}

/** A fingerprint a user gives: what fits in a job name. */
export function validFingerprint(s: unknown): s is string {
  return typeof s === 'string' && /^[A-Za-z0-9_.+-]{1,64}$/.test(s);
}

/** A job id: the run, the task and the attempt. Re-adding the same attempt is a no-op. */
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

export function encodeArgs(args: unknown[], timeout: number): string {
  return JSON.stringify({ a: v8.serialize(args).toString('base64'), t: timeout } satisfies JobData);
}

export function decodeData(data: string): { args: unknown[]; timeout: number } {
  const d = JSON.parse(data) as JobData;
  return { args: v8.deserialize(Buffer.from(d.a, 'base64')) as unknown[], timeout: d.t };
}

/** An outcome as a worker engine reports it: [code, value, startedAt, endedAt, worker, processIndex, threadIndex, pid]. */
type OutcomeTuple = [number, unknown, number, number, string, number, number, number];

/** A worker engine's outcome → the payload of its outbox entry. */
export function encodeOutcome(o: Omit<RemoteOutcome, 'taskId' | 'attempt'>): string {
  const tuple: OutcomeTuple = [o.code, o.value, o.startedAt, o.endedAt, o.worker ?? '', o.processIndex ?? -1, o.threadIndex ?? -1, o.pid ?? -1];
  return v8.serialize(tuple).toString('base64');
}

/** An outbox entry, split: the job id and what follows it. */
export function splitEntry(entry: string): { id: string; kind: string; rest: string } | undefined {
  const a = entry.indexOf('|');
  if (a < 0 || entry[a + 2] !== '|') return undefined;
  return { id: entry.slice(0, a), kind: entry[a + 1]!, rest: entry.slice(a + 3) };
}

/**
 * An outbox entry → an outcome. `o`: the worker engine's own report. `L`: written by a reaper
 * for a job that a worker engine had marked started when it went silent: `crashed`.
 */
export function decodeEntry(taskId: number, attempt: number, kind: string, rest: string): RemoteOutcome {
  if (kind === 'o') {
    try {
      const [code, value, startedAt, endedAt, worker, processIndex, threadIndex, pid] = v8.deserialize(Buffer.from(rest, 'base64')) as OutcomeTuple;
      const out: RemoteOutcome = { taskId, attempt, code, value, startedAt, endedAt };
      if (worker) out.worker = worker;
      if (processIndex >= 0) out.processIndex = processIndex;
      if (threadIndex >= 0) out.threadIndex = threadIndex;
      if (pid >= 0) out.pid = pid;
      return out;
    } catch {
      return lostOutcome(taskId, attempt, 'came back unreadable from Redis');
    }
  }
  if (kind === 'L') {
    const bar = rest.lastIndexOf('|');
    const worker = bar > 0 ? rest.slice(0, bar) : rest;
    const silent = bar > 0 ? rest.slice(bar + 1) : '?';
    const out = lostOutcome(taskId, attempt, `was lost with worker engine ${worker}, which had started it and then went silent (no heartbeat for ${silent} ms)`);
    out.worker = worker;
    return out;
  }
  return lostOutcome(taskId, attempt, `came back from Redis in an unknown form (${JSON.stringify(kind)})`);
}

/** `crashed`, for a job whose run nobody can report: its machine died, or Redis lost the job. */
export function lostOutcome(taskId: number, attempt: number, what: string, endedAt = Date.now()): RemoteOutcome {
  const wire = crashed(`task ${taskId} (attempt ${attempt}) ${what}`, 'process');
  return { taskId, attempt, code: Code.Crashed, value: wire, startedAt: 0, endedAt };
}

/** The `error` a worker engine reports for a job it refuses to run (another module, export or wire version). */
export function refusal(worker: string, expected: string, got: string): Omit<RemoteOutcome, 'taskId' | 'attempt'> {
  const wire: ErrorWire = {
    name: 'IncompatibleWorkerError',
    message:
      `worker engine ${worker} refused the job: it was sent for ${got} but this engine serves ${expected} ` +
      '(wire version/module fingerprint/export). Run the same worker module on the master and every worker engine ' +
      '(or give both the same --fingerprint); use one queue per version during a rolling deploy.',
    props: { worker, expected, got },
  };
  const now = Date.now();
  return { code: Code.Error, value: wire, startedAt: 0, endedAt: now, worker };
}

export { STATUS_BY_CODE };
