/**
 * `mpms status --redis URL --queue NAME`: the state of a queue's fleet — backlog, worker engines
 * (alive or silent, host, pid, version, what they serve, their load) and rates — read from Redis
 * without changing anything. `--json` for programs.
 */
import type { FleetStatus, FleetWorker } from '../scale-out/fleet.js';
import { STATUS } from './flags.js';
import { helpRows, parseLine, usageFailure, UsageError, flagValue } from './parse.js';
import { usageError } from './run.js';
import { redisOf } from './worker.js';

function help(): string {
  return [`Usage: ${STATUS.usage}`, '', "Prints a queue's backlog, its worker engines and their rates, read from Redis.", '', ...helpRows(STATUS.ownFlags)].join('\n');
}

/** Outcomes a worker engine published per second between two readings (from its heartbeats). */
function rate(before: FleetWorker | undefined, after: FleetWorker): number | undefined {
  const a = before?.load as { published?: number; at?: number } | undefined;
  const b = after.load as { published?: number; at?: number };
  if (!a || a.at === undefined || b.at === undefined || b.at <= a.at) return undefined;
  return (((b.published ?? 0) - (a.published ?? 0)) * 1000) / (b.at - a.at);
}

function fmt(n: number | undefined): string {
  if (n === undefined) return '-';
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1);
}

/** The human form of a status reading. */
export function formatStatus(s: FleetStatus, shown: string, rates: Map<string, number | undefined> | undefined): string {
  const alive = s.workers.filter((w) => w.alive);
  const lines = [`queue ${s.queue} on ${shown}: ${s.waiting.toLocaleString('en-US')} waiting${s.paused ? ' (PAUSED)' : ''}; ${alive.length} worker engine(s) alive, ${s.workers.length - alive.length} silent`];
  if (s.workers.length) {
    const rows = [['worker', 'state', 'version', 'serves', 'P×T', 'slots', 'held', 'running', 'published', 'refused', 'per s', 'last beat']];
    for (const w of s.workers) {
      const l = w.load;
      rows.push([
        w.id,
        w.alive ? (l.stopping ? 'draining' : 'alive') : 'SILENT',
        w.version ?? '?',
        w.serves ?? '?',
        `${w.processes ?? '?'}×${w.threads ?? '?'}`,
        String(l.slots ?? '?'),
        String(l.held ?? 0),
        String(l.running ?? 0),
        String(l.published ?? 0),
        String(l.refused ?? 0),
        fmt(rates?.get(w.id)),
        `${(w.silentMs / 1000).toFixed(1)} s ago`,
      ]);
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const r of rows) lines.push('  ' + r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
  }
  if (rates) {
    const total = [...rates.values()].reduce<number>((a, b) => a + (b ?? 0), 0);
    lines.push(`rate: ${fmt(total)} outcomes/s across the fleet`);
  }
  for (const r of s.runs) lines.push(`run ${r.runId}: ${r.jobs} job(s) in Redis, ${r.outbox} outcome(s) waiting for its master${r.masterConnected === undefined ? '' : r.masterConnected ? ' (master connected)' : ' (NO master connected: re-attach with this runId)'}`);
  return lines.join('\n') + '\n';
}

/** Runs `mpms status`; resolves with the exit code (0; 1 when Redis cannot be read; 2 on bad usage). */
export async function statusCommand(argv: readonly string[]): Promise<number> {
  const { given, problems } = parseLine(argv, STATUS);
  if (given.help) {
    process.stdout.write(help() + '\n');
    return 0;
  }
  if (problems.length) return usageError(usageFailure(argv, problems).message, 'status');
  const intervalMs = flagValue<number>(STATUS, given, 'interval');
  let redis: Awaited<ReturnType<typeof redisOf>>;
  let mod: [typeof import('../scale-out/connection.js'), typeof import('../scale-out/fleet.js')];
  try {
    redis = await redisOf(given);
    mod = await Promise.all([import('../scale-out/connection.js'), import('../scale-out/fleet.js')]);
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message, 'status');
    process.stderr.write(`mpms status: cannot load the Redis client (${(err as Error).message}); install it: npm install ioredis\n`);
    return 1;
  }
  const [{ openRedis, closeRedis }, { readFleet }] = mod;
  const queue = given.queue as string;
  const prefix = flagValue<string>(STATUS, given, 'prefix');
  let client: Awaited<ReturnType<typeof openRedis>> | undefined;
  try {
    client = await openRedis(redis.options, { name: 'mpms:status', what: `Redis for queue ${queue}`, warn: () => undefined });
    const first = await readFleet(client, queue, prefix);
    let last = first;
    let rates: Map<string, number | undefined> | undefined;
    if (intervalMs > 0) {
      await new Promise((r) => setTimeout(r, intervalMs));
      last = await readFleet(client, queue, prefix);
      rates = new Map(last.workers.map((w) => [w.id, rate(first.workers.find((x) => x.id === w.id), w)]));
    }
    if (given.json) {
      const out = { ...last, ...(rates ? { rates: Object.fromEntries(rates), intervalMs } : {}) };
      process.stdout.write(JSON.stringify(out) + '\n');
    } else process.stdout.write(formatStatus(last, redis.shown, rates));
    return 0;
  } catch (err) {
    process.stderr.write(`mpms status: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await closeRedis(client);
  }
}
