/**
 * What a run saw (the same whether the engine ran in this process or in a master script) and the
 * invariants checked on it after the ending: exactly one outcome per accepted task (by id: none
 * missing, none twice, at every reader that must see it), outcomes the contract allows (so no
 * callback's error, no soft restart, no poison task changes anyone else's), puts settled as the
 * contract says (during a shutdown a put resolves without a taskId, never rejects), a summary
 * that adds up, and no give-up of the engine.
 */
import type { FinalSummary, Metrics } from '../../dist/index.js';
import { allowedStatuses, collateral, expectedErrorName, expectedValue, softLimits } from './expect.js';
import { followUps, type Scenario, type Status, taskAt } from './model.js';

export const STATUSES: Status[] = ['ok', 'error', 'timeout', 'crashed', 'cancelled'];

/** An outcome as plain data (drive.mjs, plainOutcome), and who read it. */
export interface Outcome {
  via: 'collector' | 'iterator';
  meta: {
    taskId: number;
    status: Status;
    attempts: number;
    startedAt?: number;
    processIndex?: number;
    threadIndex?: number;
    pid?: number;
  };
  value?: unknown;
  error?: { cls: string; name?: string; message?: string };
}

export interface PutError {
  index: number;
  name: string;
  error: string;
  waitedMs: number;
  /** The user had called close()/join() when the put was issued, or by the time it rejected. */
  closedAtCall: boolean;
  closed: boolean;
  /** A shutdown had begun when the put was issued. */
  shutdownAtCall: boolean;
  /** A shutdown had begun by the time the driver saw the rejection. */
  shutdown: boolean;
}

/** What a run saw, wherever the engine ran. */
export interface Observed {
  accepted: { id: number; index: number; afterClose: boolean; afterShutdown: boolean }[];
  notAccepted: { index: number; closedAtCall: boolean; closed: boolean; shutdownAtCall: boolean; shutdown: boolean }[];
  putErrors: PutError[];
  putWaits: number[];
  outcomes: Map<number, Outcome[]>;
  events: Map<number, Status[]>;
  /** User callbacks that threw on purpose: where, and for which task. */
  threw: { where: 'collector' | 'task' | 'restart'; taskId?: number }[];
  restarts: number;
  reader?: { how: 'complete' | 'break' | 'throw' | 'stateError' | 'error'; error?: string };
  /** When join() resolved: outcomes handed to the reader so far, tasks accepted, reader calls still busy. */
  ended?: { consumed: number; accepted: number; busy: number; holdingForMs: number };
  /** The collector's time after the ending began: its longest hold of one outcome, its total busy time. */
  collectorTime?: { maxHoldMs: number; busyAfterMs: number };
  engineErrors: string[];
  signals: number;
}

export function observed(): Observed {
  return {
    accepted: [],
    notAccepted: [],
    putErrors: [],
    putWaits: [],
    outcomes: new Map(),
    events: new Map(),
    threw: [],
    restarts: 0,
    engineErrors: [],
    signals: 0,
  };
}

function push<K, V>(map: Map<K, V[]>, key: K, v: V): void {
  const list = map.get(key) ?? [];
  list.push(v);
  map.set(key, list);
}

/** Records one message of the user's side (drive.mjs); returns false for messages it does not know. */
export function apply(o: Observed, msg: Record<string, unknown> & { t?: string }): boolean {
  switch (msg.t) {
    case 'accepted':
      o.accepted.push({
        id: msg.id as number,
        index: msg.index as number,
        afterClose: !!msg.afterClose,
        afterShutdown: !!msg.afterShutdown,
      });
      o.putWaits.push(msg.waitedMs as number);
      return true;
    case 'notAccepted':
      o.notAccepted.push(msg as unknown as Observed['notAccepted'][number]);
      o.putWaits.push(msg.waitedMs as number);
      return true;
    case 'rejected':
      o.putErrors.push(msg as unknown as PutError);
      o.putWaits.push(msg.waitedMs as number);
      return true;
    case 'outcome': {
      const out = msg as unknown as Outcome;
      push(o.outcomes, out.meta.taskId, out);
      return true;
    }
    case 'event':
      push(o.events, msg.taskId as number, msg.status as Status);
      return true;
    case 'threw':
      o.threw.push(msg as unknown as Observed['threw'][number]);
      return true;
    case 'restart':
      o.restarts++;
      return true;
    case 'reader':
      o.reader = msg as unknown as Observed['reader'];
      return true;
    case 'ended':
      o.ended = msg as unknown as Observed['ended'];
      return true;
    case 'collectorTime':
      o.collectorTime = msg as unknown as Observed['collectorTime'];
      return true;
    case 'engineError':
      o.engineErrors.push(msg.message as string);
      return true;
    case 'signal':
      o.signals++;
      return true;
    case 'ending':
      return true;
    default:
      return false;
  }
}

/** Every invariant on what the run saw, once its ending resolved with `summary`. */
export function checkRun(sc: Scenario, summary: FinalSummary, mx: Metrics, o: Observed, v: string[]): void {
  checkPuts(sc, o, v);
  const status = checkOneOutcome(sc, o, v);
  checkStatuses(sc, o, status, v);
  checkSummary(summary, mx, o, status, v);
  // Every child death in this model has a task to blame (a task that killed its process or
  // thread): the engine must keep serving, never give up ('error', innocent tasks cancelled).
  if (o.engineErrors.length)
    v.push(
      `the engine gave up ('error' event) though every child death had a task to blame: ${o.engineErrors.join(' | ')}`,
    );
}

/**
 * Puts, by the contract: accepted only before close() and before a shutdown began; during a
 * shutdown (a signal, gracefulShutdown(), terminate()) a waiting or later put resolves without
 * a taskId — it never rejects; after the user's own close()/join() it rejects; with a
 * putTimeout it may reject with QueueFullError after at least putTimeout; with no reader yet it
 * may reject rather than wait for ever; otherwise it is accepted.
 */
function checkPuts(sc: Scenario, o: Observed, v: string[]): void {
  const s = sc.settings;
  const ids = new Set(o.accepted.map((a) => a.id));
  if (ids.size !== o.accepted.length)
    v.push(`put() returned a task id twice: ${o.accepted.map((a) => a.id).join(',')}`);
  for (const a of o.accepted) {
    if (a.afterClose) v.push(`task ${a.id} (#${a.index}) was accepted by a put() issued after close()`);
    if (a.afterShutdown) v.push(`task ${a.id} (#${a.index}) was accepted by a put() issued after a shutdown began`);
  }
  for (const n of o.notAccepted) {
    if (!n.shutdown && !n.closed)
      v.push(`put() of task #${n.index} resolved without a taskId though no shutdown had begun`);
  }
  const gaveUp = o.engineErrors.length > 0;
  // With no reader at all yet (nobody reads, or the late reader has not started: the seed puts),
  // a put that would have to wait for room may reject with EngineStateError naming the fix
  // instead of waiting for ever (api.md, put()).
  const c = sc.consumer;
  const noReaderYet = (i: number) => c?.kind === 'none' || (c?.kind === 'iterator' && !!c.late && i < sc.tasks.length);
  for (const e of o.putErrors) {
    const queueFull = e.name === 'QueueFullError';
    if (queueFull && s.putTimeout === undefined)
      v.push(`put() of task #${e.index} rejected with QueueFullError without a putTimeout`);
    // setTimeout may fire up to 1 ms early (rounding).
    else if (queueFull && e.waitedMs < s.putTimeout! - 1)
      v.push(
        `put() of task #${e.index} rejected with QueueFullError after ${e.waitedMs} ms < putTimeout ${s.putTimeout}`,
      );
    else if (queueFull || e.closedAtCall || e.closed || gaveUp) continue;
    // The engine refuses such a put at its call (api.md, put()); the driver sees the rejection a few
    // microtasks later, when an ending triggered by the previous put may have begun meanwhile. So the
    // call, not the rejection, must come before the shutdown. (Once a shutdown began, the engine
    // resolves every put() undefined: test/user-side.test.ts, 'the boundary with a shutdown'.)
    else if (e.name === 'EngineStateError' && noReaderYet(e.index) && !e.shutdownAtCall && /would wait for ever/.test(e.error))
      continue;
    else if (e.shutdown)
      v.push(`put() of task #${e.index} rejected during a shutdown (it must resolve without a taskId): ${e.error}`);
    else v.push(`put() of task #${e.index} rejected before any ending: ${e.error}`);
  }
  // putTimeout bounds every put(): it is accepted or rejects within putTimeout (+ event-loop lag).
  if (s.putTimeout !== undefined) {
    const slowest = Math.max(0, ...o.putWaits);
    if (slowest > s.putTimeout + 1500) v.push(`a put() waited ${slowest} ms with putTimeout ${s.putTimeout}`);
  }
  // Every seed put settled once; follow-ups were put in order, each settled once.
  const settled = new Map<number, number>();
  for (const i of [
    ...o.accepted.map((a) => a.index),
    ...o.notAccepted.map((n) => n.index),
    ...o.putErrors.map((e) => e.index),
  ])
    settled.set(i, (settled.get(i) ?? 0) + 1);
  for (let i = 0; i < sc.tasks.length; i++)
    if (settled.get(i) !== 1) v.push(`put() of task #${i} settled ${settled.get(i) ?? 0} times`);
  const follow = [...settled.keys()].filter((i) => i >= sc.tasks.length).sort((a, b) => a - b);
  if (follow.some((i, k) => i !== sc.tasks.length + k || settled.get(i) !== 1))
    v.push(`follow-up puts settled out of order or twice: ${follow.join(',')}`);
  if (follow.length > (followUps(sc)?.tasks.length ?? 0))
    v.push(`${follow.length} follow-up puts, more than the ${followUps(sc)?.tasks.length ?? 0} the scenario has`);
}

/**
 * Exactly one outcome per accepted task, by id: one 'task' event each; at a collector exactly
 * one call each (also after its own or a listener's throw); at an iterator that read to the end
 * exactly one each, at one that left early (or, late, was refused) at most one. No outcome for an
 * id put() never returned. Returns each task's status (from its event, else its reader).
 */
function checkOneOutcome(sc: Scenario, o: Observed, v: string[]): Map<number, Status> {
  const ids = new Map(o.accepted.map((a) => [a.id, a.index]));
  const consumer = sc.consumer ?? { kind: 'collector' as const };
  const status = new Map<number, Status>();
  const threwFor = new Map<number, string>();
  for (const t of o.threw)
    if (t.taskId !== undefined) threwFor.set(t.taskId, t.where === 'task' ? "its 'task' listener" : 'the collector');
  const givenUp = collectorMayBeGivenUp(sc, o);
  const complete =
    (consumer.kind === 'collector' && !givenUp) || (consumer.kind === 'iterator' && o.reader?.how === 'complete');
  if (consumer.kind === 'iterator') {
    if (o.reader?.how === 'error') v.push(`the iterator failed: ${o.reader.error}`);
    if (o.reader?.how === 'stateError' && !consumer.late)
      v.push(`iterResults() refused a reader that started before the puts: ${o.reader.error}`);
    if (!o.reader) v.push('the iterator never ended');
  }
  for (const [id, index] of ids) {
    const b = taskAt(sc, index);
    const tag = threwFor.has(id) ? `callback isolation: after ${threwFor.get(id)} threw, ` : '';
    const got = o.outcomes.get(id) ?? [];
    const ev = o.events.get(id) ?? [];
    if (ev.length !== 1) v.push(`${tag}task ${id} (#${index} ${b.kind}): ${ev.length} 'task' events (${ev.join(',')})`);
    if (consumer.kind === 'none' && got.length) v.push(`task ${id}: ${got.length} outcomes read, with no reader`);
    else if (complete && got.length !== 1)
      v.push(
        `${tag}task ${id} (#${index} ${b.kind}): ${got.length} outcomes at the ${consumer.kind} (${got.map((g) => g.meta.status).join(',')})`,
      );
    else if (got.length > 1)
      v.push(`${tag}task ${id} (#${index} ${b.kind}): ${got.length} outcomes at the ${consumer.kind}`);
    const s = ev.length === 1 ? ev[0]! : got[0]?.meta.status;
    if (s !== undefined) status.set(id, s);
    if (ev.length === 1 && got.length === 1 && got[0]!.meta.status !== ev[0])
      v.push(`${tag}task ${id}: the ${consumer.kind} says ${got[0]!.meta.status}, the 'task' event says ${ev[0]}`);
  }
  for (const id of o.outcomes.keys()) if (!ids.has(id)) v.push(`an outcome for task ${id}, which put() never returned`);
  for (const id of o.events.keys())
    if (!ids.has(id)) v.push(`a 'task' event for task ${id}, which put() never returned`);
  // join() resolves once the collector was called for every outcome and each call returned
  // (unless it stalled past its bound: then join() gave up on it).
  if (
    sc.ending.kind === 'join' &&
    consumer.kind === 'collector' &&
    !givenUp &&
    o.ended &&
    (o.ended.consumed !== o.ended.accepted || o.ended.busy)
  ) {
    v.push(
      `join() resolved before the collector was done: ${o.ended.consumed} of ${o.ended.accepted} outcomes handed to it, ${o.ended.busy} calls still running`,
    );
  }
  return status;
}

/** Timer rounding and the few synchronous steps between the engine's clock and the collector's. */
const HOLD_SLACK_MS = 20;

/**
 * Whether the engine may have given up on the collector, as guarantees.md ("It stalls") says it
 * does — after which the collector is never called again and join() does not wait for it: while
 * join() waits, one call held its outcome for `hookTimeout`; or, during a shutdown, the
 * collector was busy for at least the shortest drain bound (`max(timeout, 1000)`: 1000 ms).
 * Measured by the user's side from the moment the ending began (drive.mjs, noteHold), which is
 * never later than the engine's own clock for the same hold.
 */
function collectorMayBeGivenUp(sc: Scenario, o: Observed): boolean {
  if ((sc.consumer ?? { kind: 'collector' }).kind !== 'collector') return false;
  const hold = Math.max(o.collectorTime?.maxHoldMs ?? 0, o.ended?.holdingForMs ?? 0);
  const busy = o.collectorTime?.busyAfterMs ?? 0;
  const joined = sc.ending.kind === 'join' || sc.ending.kind === 'signal';
  const shutdown = sc.ending.kind !== 'join';
  return (joined && hold >= sc.settings.hookTimeout - HOLD_SLACK_MS) || (shutdown && busy >= 1000 - HOLD_SLACK_MS);
}

/**
 * Each task's status is one the model allows (expect.ts), and its result matches it and belongs
 * to it. Two invariants are named where they apply: soft restarts never interrupt a task (a
 * task under soft limits only ends ok/error), and a callback's error never changes an outcome.
 */
function checkStatuses(sc: Scenario, o: Observed, status: Map<number, Status>, v: string[]): void {
  const s = sc.settings;
  const soft = softLimits(sc);
  const noHard = s.taskTimeout === undefined;

  // Callbacks the engine calls itself (the collector, listeners); a reader loop's throw is the user's own code.
  const callbacksThrew = o.threw.length > 0;
  for (const { id, index } of o.accepted) {
    const b = taskAt(sc, index);
    const st = status.get(id);
    if (st === undefined) continue;
    const allowed = allowedStatuses(b, sc);
    const g = o.outcomes.get(id)?.[0];
    if (!allowed.has(st)) {
      const interrupted = (st === 'crashed' && !collateral(sc).has('crashed')) || (st === 'timeout' && noHard);
      const why =
        soft.length && interrupted
          ? `soft restarts (${soft.join(', ')}) must not interrupt a task: `
          : callbacksThrew
            ? `a callback's error must not change an outcome (${describeThrows(o)}): `
            : '';
      v.push(
        `${why}task ${id} (#${index} ${JSON.stringify(b)}): status ${st}, allowed ${[...allowed].join('/')}${g ? ` (result: ${describeOutcome(g)})` : ''}`,
      );
    }
    if (!g) continue;
    if (g.meta.attempts > 1 + s.retries) v.push(`task ${id}: ${g.meta.attempts} attempts with retries ${s.retries}`);
    const e = g.error;
    switch (g.meta.status) {
      case 'ok': {
        const want = expectedValue(b, index, sc);
        if (JSON.stringify(g.value) !== JSON.stringify(want))
          v.push(
            `task ${id} (#${index} ${b.kind}): ok with result ${describeOutcome(g)}, expected ${JSON.stringify(want)}`,
          );
        break;
      }
      case 'error': {
        const name = expectedErrorName(b);
        if (!e || e.cls === 'not an Error') v.push(`task ${id}: error with a non-Error result ${describeOutcome(g)}`);
        else if (name && e.name !== name)
          v.push(`task ${id} (#${index} ${b.kind}): error ${describeOutcome(g)}, expected a ${name}`);
        else if (b.kind === 'throw' && e.message !== `thrown on purpose ${index}`)
          v.push(`task ${id} (#${index} throw): error ${describeOutcome(g)} is not its own`);
        break;
      }
      case 'timeout':
        if (e?.cls !== 'TaskTimeoutError') v.push(`task ${id}: timeout with ${describeOutcome(g)}`);
        break;
      case 'crashed':
        if (e?.cls !== 'WorkerCrashedError') v.push(`task ${id}: crashed with ${describeOutcome(g)}`);
        break;
      case 'cancelled':
        if (e?.cls !== 'TaskCancelledError') v.push(`task ${id}: cancelled with ${describeOutcome(g)}`);
        break;
    }
  }
}

function describeThrows(o: Observed): string {
  const where = new Map<string, number>();
  for (const t of o.threw) where.set(t.where, (where.get(t.where) ?? 0) + 1);
  return [...where].map(([w, n]) => `${w} threw ${n}×`).join(', ');
}

/** The summary adds up, counts what was accepted and what the 'task' events said, and metrics() agrees. */
function checkSummary(summary: FinalSummary, mx: Metrics, o: Observed, status: Map<number, Status>, v: string[]): void {
  const counts: Record<Status, number> = { ok: 0, error: 0, timeout: 0, crashed: 0, cancelled: 0 };
  for (const st of status.values()) counts[st]++;
  const sum = STATUSES.reduce((a, k) => a + summary[k], 0);
  if (summary.total !== sum)
    v.push(`summary does not add up: total ${summary.total}, parts ${sum} (${JSON.stringify(summary)})`);
  if (summary.total !== o.accepted.length) v.push(`summary.total ${summary.total} !== ${o.accepted.length} accepted`);
  for (const k of STATUSES)
    if (summary[k] !== counts[k]) v.push(`summary.${k} ${summary[k]} !== ${counts[k]} tasks seen ${k}`);
  for (const k of STATUSES)
    if (mx.outcomes[k] !== summary[k])
      v.push(`metrics().outcomes.${k} ${mx.outcomes[k]} !== summary.${k} ${summary[k]}`);
  if (mx.total !== summary.total) v.push(`metrics().total ${mx.total} !== summary.total ${summary.total}`);
  if (mx.processesAlive !== 0) v.push(`metrics().processesAlive ${mx.processesAlive} after the ending`);
}

export function describeOutcome(g: Outcome): string {
  if (g.error) return `${g.error.cls === g.error.name ? '' : `${g.error.cls} `}${g.error.name}: ${g.error.message}`;
  return describe(g.value);
}

export function describe(x: unknown): string {
  if (x instanceof Error) return `${x.name}: ${x.message}`;
  if (typeof x === 'function') return '[function]';
  try {
    return JSON.stringify(x) ?? String(x);
  } catch {
    return String(x);
  }
}
