/**
 * Shared by the scale-out test files: a real Redis (MPMS_REDIS_URL, which .ci/run starts, or a
 * redis-server this file starts on a free port and stops by pid), real `mpms worker` processes
 * (our CLI, each in its own process group, killed by pid if a test leaves one), and the checks
 * every fault test makes: exactly one outcome per task id, and Redis left clean.
 */
import { afterAll, afterEach, expect } from 'vitest';
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { fixture, waitGone } from './helpers.js';

export const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
export const WORKER = fixture('basic-worker.mjs');

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export function reachable(url: string, ms = 3000): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const sock = net.connect({ host: u.hostname, port: Number(u.port || 6379) });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), ms);
    sock.once('error', () => done(false));
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.once('data', (d) => done(d.toString().startsWith('+PONG') || d.toString().startsWith('-NOAUTH')));
  });
}

/** Starts a redis-server as our child on `port`, storing in `dir`; resolves once it answers, or undefined. */
export async function startRedisServer(port: number, dir: string, extra: string[] = []): Promise<ChildProcess | undefined> {
  let proc: ChildProcess;
  try {
    proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, ...extra], { stdio: 'ignore' });
  } catch {
    return undefined;
  }
  const url = `redis://127.0.0.1:${port}`;
  const up = await new Promise<boolean>((resolve) => {
    proc.once('error', () => resolve(false));
    proc.once('exit', () => resolve(false));
    const until = Date.now() + 5000;
    const poll = async () => {
      if (await reachable(url, 500)) return resolve(true);
      if (Date.now() > until) return resolve(false);
      setTimeout(poll, 50);
    };
    void poll();
  });
  return up ? proc : undefined;
}

export const HAS_REDIS_SERVER = spawnSync('redis-server', ['--version']).status === 0;

export function exited(proc: ChildProcess, ms: number): Promise<number | null> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(proc.exitCode);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`pid ${proc.pid} did not exit within ${ms} ms`)), ms);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

/** The engine children of a worker engine (its direct children), from ps. */
export function engineChildren(pid: number): number[] {
  try {
    return execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Polls `cond` every 20 ms until it holds; fails naming `what` after `ms`. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  for (const end = Date.now() + ms; !(await cond()); ) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The worker id (`host:pid`) of a worker engine process. */
export const workerId = (p: ChildProcess) => `${os.hostname()}:${p.pid}`;

/**
 * Registers the hooks of one scale-out test file and finds its Redis. Without Redis the tests
 * skip loudly — but fail when MPMS_REDIS_URL or CI is set.
 */
export async function scaleOutSuite(file: string) {
  let ownRedis: ChildProcess | undefined;
  let url: string | undefined;
  const given = process.env.MPMS_REDIS_URL;
  if (given) url = (await reachable(given)) ? given : undefined;
  else {
    const port = await freePort();
    ownRedis = await startRedisServer(port, fs.mkdtempSync(path.join(os.tmpdir(), 'mpms-redis-')), ['--save', '', '--appendonly', 'no']);
    if (ownRedis) url = `redis://127.0.0.1:${port}`;
  }
  if (!url) {
    if (process.env.CI || given) throw new Error(`scale-out tests need Redis: ${given ?? 'no redis-server could be started'} is not reachable`);
    console.warn(`\n*** ${file} SKIPPED: no Redis (set MPMS_REDIS_URL or install redis-server). CI never skips these. ***\n`);
  }
  const started: ChildProcess[] = [];
  const logs = new Map<ChildProcess, string>();
  const queues = new Set<string>();
  const clients: Redis[] = [];
  let seq = 0;

  afterEach(async () => {
    for (const p of started.splice(0)) {
      if (p.exitCode === null && p.signalCode === null && p.pid) {
        try {
          process.kill(-p.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
  });
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    if (url) {
      const r = new Redis(url, { maxRetriesPerRequest: 1 });
      for (const q of queues) {
        const keys = await r.keys(`bull:${q}:*`).catch(() => [] as string[]);
        if (keys.length) await r.del(...keys).catch(() => undefined);
      }
      r.disconnect();
    }
    if (ownRedis?.pid && ownRedis.exitCode === null) {
      ownRedis.kill('SIGTERM');
      expect(await waitGone([ownRedis.pid], 5000), 'redis-server left behind').toEqual([]);
    }
  });

  return {
    url,
    logs,
    started,
    newQueue(): string {
      const q = `t${process.pid}x${++seq}`;
      queues.add(q);
      return q;
    },
    /** A plain client for the test's own reads. */
    redis(at = url!): Redis {
      const c = new Redis(at, { maxRetriesPerRequest: null });
      // A test's own Redis may be gone by the end of the file: its reconnect errors are not news.
      c.on('error', () => undefined);
      clients.push(c);
      return c;
    },
    /** Starts `mpms worker` in its own process group; resolves once it serves the queue. */
    startWorker(queue: string, extra: string[] = [], redis = url!, worker = WORKER): Promise<ChildProcess> {
      const proc = spawn(process.execPath, [CLI, 'worker', worker, '--redis', redis, '--queue', queue, '-p', '1', '-t', '2', ...extra], {
        detached: true,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      started.push(proc);
      proc.stderr!.on('data', (d: Buffer) => void logs.set(proc, (logs.get(proc) ?? '') + d.toString()));
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`mpms worker did not start within 20 s: ${logs.get(proc) ?? ''}`)), 20_000);
        const look = () => {
          if ((logs.get(proc) ?? '').includes('serving queue')) {
            clearTimeout(timer);
            proc.stderr!.off('data', look);
            resolve(proc);
          }
        };
        proc.stderr!.on('data', look);
        proc.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`mpms worker exited (${code}) before serving: ${logs.get(proc) ?? ''}`));
        });
      });
    },
    /** A worker engine's local summary, from its last stderr line (after it stopped). */
    localSummary(p: ChildProcess): { total: number; ok: number; cancelled: number } {
      return JSON.parse(/stopped; (\{.*\})/.exec(logs.get(p)!)![1]!) as { total: number; ok: number; cancelled: number };
    },
  };
}

/** Collects outcomes by task id; counts a second outcome for any id. */
export function outcomeLog() {
  const status = new Map<number, string>();
  const results = new Map<number, unknown>();
  let duplicates = 0;
  return {
    status,
    results,
    get duplicates() {
      return duplicates;
    },
    add(taskId: number, st: string, result?: unknown) {
      if (status.has(taskId)) duplicates++;
      status.set(taskId, st);
      results.set(taskId, result);
    },
    ids(st?: string): number[] {
      return [...status].filter(([, s]) => st === undefined || s === st).map(([id]) => id).sort((a, b) => a - b);
    },
  };
}

/**
 * Redis after a run has ended: no job of the queue left, and no key but the documented
 * queue-level ones (docs/scale-out.md, "What is in Redis"). Live worker engines keep their
 * registry entries; `workersLeft` says whether any may still be registered.
 */
export async function expectClean(redis: Redis, queue: string, runIds: string[], workersLeft = false): Promise<void> {
  const keys = (await redis.keys(`bull:${queue}:*`)).map((k) => k.slice(`bull:${queue}:`.length)).sort();
  const allowed = new Set(['marker', 'meta', 'mpms:clock', 'mpms:reaper', ...(workersLeft ? ['mpms:workers', 'mpms:beats', 'mpms:load'] : [])]);
  // A live worker engine's own sets exist only while it holds jobs: after a run, none.
  const unexpected = keys.filter((k) => !allowed.has(k));
  expect(unexpected, `keys left in Redis for queue ${queue}`).toEqual([]);
  for (const id of runIds) expect(keys.filter((k) => k.includes(id)), `keys of run ${id}`).toEqual([]);
}
