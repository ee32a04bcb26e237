/**
 * What a queue's fleet looks like in Redis, read without changing anything: the backlog, the
 * worker engines (alive or silent, with what they serve and their figures), and the runs with
 * work in Redis. `mpms status` prints it; a program can poll it.
 */
import type { Redis } from 'ioredis';
import { queueKeys } from './scripts.js';

/** One registered worker engine. */
export interface FleetWorker {
  id: string;
  host?: string;
  pid?: number;
  /** mpms version of the engine. */
  version?: string;
  /** The job name it runs: `mpms/<wire>/<fingerprint>/<export>`. */
  serves?: string;
  processes?: number;
  threads?: number;
  concurrency?: number;
  /** A number, or 'adaptive' (the default: see `serveQueue({ prefetch })`). */
  prefetch?: number | 'adaptive';
  /** ms of silence after which it counts as dead. */
  deadline?: number;
  startedAt?: number;
  /** Beat within its deadline. */
  alive: boolean;
  /** ms since its last heartbeat, in Redis time. */
  silentMs: number;
  /** Its figures at its last heartbeat (`serveStats()` plus outcomes and live processes/threads). */
  load: {
    held?: number;
    running?: number;
    fetched?: number;
    published?: number;
    refused?: number;
    handedBack?: number;
    outcomes?: Record<string, number>;
    processesAlive?: number;
    threadsAlive?: number;
    slots?: number;
    stopping?: boolean;
  };
}

/** A run with jobs or outcomes in Redis. */
export interface FleetRun {
  runId: string;
  /** Its jobs in Redis (waiting, held, running, or finished and not yet collected). */
  jobs: number;
  /** Outcomes waiting for its master. */
  outbox: number;
  /** Whether a master of the run is connected (undefined when Redis does not allow CLIENT LIST). */
  masterConnected?: boolean;
}

/** `readFleet()`. */
export interface FleetStatus {
  queue: string;
  /** Redis time of the reading, ms. */
  at: number;
  /** Jobs waiting for a worker engine. */
  waiting: number;
  /** The queue is paused (BullMQ's `queue.pause()`): engines fetch nothing. */
  paused: boolean;
  workers: FleetWorker[];
  runs: FleetRun[];
}

function parse<T>(s: string | undefined | null): T | Record<string, never> {
  try {
    return s ? (JSON.parse(s) as T) : {};
  } catch {
    return {};
  }
}

/** Reads the state of `queue`'s fleet (a handful of Redis reads, plus a SCAN for the runs). */
export async function readFleet(redis: Redis, queue: string, prefix = 'bull'): Promise<FleetStatus> {
  const k = queueKeys(prefix, queue);
  const [time, waiting, paused, infos, beats, loads] = await Promise.all([
    redis.time(),
    redis.llen(k.wait),
    redis.hget(k.meta, 'paused'),
    redis.hgetall(k.workers),
    redis.hgetall(k.beats),
    redis.hgetall(k.load),
  ]);
  const now = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000);
  const workers: FleetWorker[] = Object.entries(infos).map(([id, raw]) => {
    const info = parse<Omit<FleetWorker, 'id' | 'alive' | 'silentMs' | 'load'>>(raw);
    // Plain silence: a reaper also forgives a gap in all mpms traffic (scripts.ts), a reader need not.
    const silentMs = now - Number((beats[id] ?? '0').split(':')[0]);
    return { ...info, id, alive: silentMs <= Number(info.deadline ?? 3000), silentMs, load: parse<FleetWorker['load']>(loads[id]) };
  });
  workers.sort((a, b) => a.id.localeCompare(b.id));
  const runIds: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${k.m}run:*:jobs`, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) runIds.push(key.slice(`${k.m}run:`.length, -':jobs'.length));
  } while (cursor !== '0');
  let masters: Set<string> | undefined;
  try {
    const list = String(await redis.call('CLIENT', 'LIST'));
    masters = new Set([...list.matchAll(/ name=mpms:master:([A-Za-z0-9_-]+) /g)].map((m) => m[1]!));
  } catch {
    // CLIENT LIST denied (a managed Redis, an ACL): whether masters are connected stays unknown.
  }
  const runs = await Promise.all(
    runIds.sort().map(async (runId) => {
      const [jobs, outbox] = await Promise.all([redis.scard(`${k.m}run:${runId}:jobs`), redis.llen(`${k.m}run:${runId}:out`)]);
      return { runId, jobs, outbox, ...(masters ? { masterConnected: masters.has(runId) } : {}) };
    }),
  );
  return { queue, at: now, waiting, paused: paused !== null, workers, runs };
}
