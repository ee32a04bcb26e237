/**
 * `mpms worker <worker-module> --redis URL --queue NAME [-p N] [-t N] ...`: serves a queue with a
 * local engine (lib/scale-out/worker-engine.ts) until SIGINT/SIGTERM, then drains. Its flags are
 * `WORKER` (lib/cli/flags.ts: the Redis ones, serveQueue()'s, its own, and the engine flags of
 * `mpms run`), parsed by the one parser; the Redis client is loaded only here, so `mpms run`
 * works without it.
 */
import path from 'node:path';
import { ConfigError } from '../errors.js';
import { SERVE_SPECS } from '../scale-out/settings.js';
import type { WorkerEngineOptions } from '../scale-out/worker-engine.js';
import { ENGINE_FLAGS, WORKER } from './flags.js';
import { describeConfigError, flagValue, helpRows, parseLine, UsageError, usageFailure } from './parse.js';
import { usageError } from './run.js';

/** What `mpms worker` was asked for, parsed and checked. */
export interface WorkerArgs {
  worker: string;
  help: boolean;
  /** Every flag given, by setting name. */
  given: Record<string, unknown>;
  /** The engine's and `serveQueue()`'s settings among them (no `worker`, no `connection`). */
  serve: Omit<WorkerEngineOptions, 'worker' | 'connection'>;
  /** ms between `--stats` lines, or undefined for none. */
  statsMs: number | undefined;
}

function help(): string {
  return [
    `Usage: ${WORKER.usage}`,
    '',
    'Serves the jobs a master sends with `transport: bullmqTransport({ connection, queue })`,',
    'in processes x worker threads, until SIGINT/SIGTERM; then it stops taking jobs, hands the',
    'unstarted ones back, lets started ones finish (up to --drain-timeout) and hands the rest',
    'back too. A second signal stops at once (its started jobs then settle crashed at the',
    'master). See docs/scale-out.md.',
    '',
    ...helpRows(WORKER.ownFlags),
    '',
    'Engine flags are those of `mpms run` (see mpms run --help): -p, -t, --concurrency, --task-timeout, ...',
  ].join('\n');
}

/**
 * Parses the arguments that follow `mpms worker`.
 * @throws UsageError with every problem at once, in the order the flags were given.
 */
export function parseWorkerArgs(argv: readonly string[]): WorkerArgs {
  const { given, positionals, problems } = parseLine(argv, WORKER);
  const worker = positionals[0] ?? '';
  if (given.printSystemd && worker && !path.isAbsolute(worker)) {
    problems.push('--print-systemd needs the worker module as an absolute path (a unit has no working directory of yours)');
  }
  const help = given.help === true;
  if (problems.length > 0 && !help) throw usageFailure(argv, problems);
  const serve: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(given)) if (serveKeys.has(name)) serve[name] = value;
  const statsMs = given.stats || given.statsInterval !== undefined ? flagValue<number>(WORKER, given, 'statsInterval') : undefined;
  return { worker, help, given, serve: serve as WorkerArgs['serve'], statsMs };
}

/** The settings that go to `serveQueue()`: the engine's and the worker engine's own (lib/scale-out/settings.ts). */
const serveKeys = new Set<string>([...ENGINE_FLAGS, ...SERVE_SPECS].map((s) => s.name));

/** Redis flags → the settings `serveQueue`/`readFleet` take (URL from flag, file or env; password; TLS files). */
export async function redisOf(given: Record<string, unknown>): Promise<ReturnType<typeof import('../scale-out/connection.js').redisFromSources>> {
  const { redisFromSources } = await import('../scale-out/connection.js');
  const str = (k: string) => given[k] as string | undefined;
  try {
    return redisFromSources({ url: str('redis'), urlFile: str('redisFile'), passwordFile: str('redisPasswordFile'), tlsCa: str('tlsCa'), tlsCert: str('tlsCert'), tlsKey: str('tlsKey') });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** The systemd unit for this command line (`--print-systemd`): secrets stay in an EnvironmentFile. */
export function systemdUnit(argv: readonly string[], queue: string, drainMs: number): string {
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--print-systemd') continue;
    // A URL may carry a password: it belongs in the EnvironmentFile, never on the command line.
    if (a === '--redis') {
      i++;
      continue;
    }
    if (a.startsWith('--redis=')) continue;
    args.push(/^[\w@%+=:,./-]+$/.test(a) ? a : `"${a.replace(/(["\\$`])/g, '\\$1')}"`);
  }
  return [
    '[Unit]',
    `Description=mpms worker for queue ${queue}`,
    'After=network-online.target',
    'Wants=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    'User=mpms',
    '# MPMS_REDIS_URL=redis://redis.internal:6379 and MPMS_REDIS_PASSWORD=... (mode 0600)',
    'EnvironmentFile=/etc/mpms/worker.env',
    `ExecStart=/usr/bin/env mpms worker ${args.join(' ')}`,
    '# SIGTERM drains: unstarted jobs go back at once, started ones get --drain-timeout.',
    'KillSignal=SIGTERM',
    // SIGTERM to the worker only; it stops its own children. SIGKILL to all only if it overruns.
    'KillMode=mixed',
    `TimeoutStopSec=${Math.ceil(drainMs / 1000) + 15}`,
    'Restart=always',
    'RestartSec=2',
    'LimitNOFILE=65536',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/** Runs `mpms worker`; resolves with the exit code once the worker engine has stopped. */
export async function workerCommand(argv: readonly string[]): Promise<number> {
  let args: WorkerArgs;
  try {
    args = parseWorkerArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message, 'worker');
    throw err;
  }
  if (args.help) {
    process.stdout.write(help() + '\n');
    return 0;
  }
  if (args.given.printSystemd) {
    process.stdout.write(systemdUnit(argv, args.serve.queue, flagValue(WORKER, args.given, 'drainTimeout')));
    return 0;
  }
  return serve(args);
}

/** Loads the Redis client and starts the worker engine; a problem found only now is still bad usage (exit 2). */
async function startServing(args: WorkerArgs): Promise<{ served: Served; shown: string } | number> {
  let scaleOut: typeof import('../scale-out/worker-engine.js');
  let redis: Awaited<ReturnType<typeof redisOf>>;
  try {
    scaleOut = await import('../scale-out/worker-engine.js');
    redis = await redisOf(args.given);
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message, 'worker');
    process.stderr.write(`mpms worker: cannot load the Redis client (${(err as Error).message}); install it: npm install bullmq ioredis\n`);
    return 1;
  }
  try {
    return { served: await scaleOut.serveQueue({ ...args.serve, worker: args.worker, connection: redis.options }), shown: redis.shown };
  } catch (err) {
    if (err instanceof ConfigError) return usageError(describeConfigError(err, WORKER), 'worker');
    // Cannot start (a module that does not load, Redis that refuses): say so plainly.
    process.stderr.write(`mpms worker: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

type Served = Awaited<ReturnType<typeof import('../scale-out/worker-engine.js').serveQueue>>;

/** `--metrics-port`: /metrics and /health beside the worker engine. False (and the engine stopped) when the port cannot be served. */
async function serveMetrics(served: Served, args: WorkerArgs, port: number): Promise<boolean> {
  try {
    const { serveWorkerHttp } = await import('../scale-out/worker-http.js');
    const name = (args.given.name as string | undefined) ?? 'mpms';
    const server = await serveWorkerHttp(served, name, port, flagValue(WORKER, args.given, 'metricsHost'));
    const addr = server.address();
    process.stderr.write(`mpms worker: metrics on http://${typeof addr === 'object' && addr ? `${addr.address}:${addr.port}` : port}/metrics and /health\n`);
    void served.done.then(() => server.close());
    return true;
  } catch (err) {
    process.stderr.write(`mpms worker: cannot serve --metrics-port ${port}: ${(err as Error).message}; stopping\n`);
    await served.stop();
    return false;
  }
}

async function serve(args: WorkerArgs): Promise<number> {
  const started = await startServing(args);
  if (typeof started === 'number') return started;
  const { served } = started;
  const metricsPort = args.given.metricsPort as number | undefined;
  if (metricsPort !== undefined && !(await serveMetrics(served, args, metricsPort))) return 1;
  // A supervisor or test waits for this line before it sends jobs.
  process.stderr.write(`mpms worker: ${served.id} serving queue ${JSON.stringify(args.serve.queue)} on ${started.shown} (jobs for ${served.serves})\n`);
  const statsTimer = args.statsMs === undefined ? undefined : startStats(served, args.statsMs);
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    if (++signals === 1) {
      process.stderr.write(`mpms worker: ${sig}: draining (send it again to stop at once)\n`);
      void served.stop();
    } else {
      // Started jobs are abandoned: the fleet's reaper settles them crashed.
      process.exit(130);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const summary = await served.done;
  clearInterval(statsTimer);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  const { refused, handedBack } = served.serveStats();
  process.stderr.write(`mpms worker: stopped; ${JSON.stringify({ total: summary.total, ok: summary.ok, error: summary.error, timeout: summary.timeout, crashed: summary.crashed, cancelled: summary.cancelled, refused, handedBack })}\n`);
  return 0;
}

/** `--stats`: one line of live figures per interval; the rate is over the last interval. */
function startStats(w: { metrics(): import('../types.js').Metrics; serveStats(): import('../scale-out/worker-engine.js').ServeStats; health(): { ok: boolean; reason?: string } }, everyMs: number): NodeJS.Timeout {
  const t0 = Date.now();
  let last = { at: t0, published: 0 };
  const timer = setInterval(() => {
    const now = Date.now();
    const s = w.serveStats();
    const m = w.metrics();
    const h = w.health();
    const rate = ((s.published - last.published) * 1000) / Math.max(1, now - last.at);
    last = { at: now, published: s.published };
    const outcomes = Object.entries(m.outcomes).map(([k, v]) => `${k} ${v}`).join(' ');
    process.stderr.write(
      `mpms worker stats: ${((now - t0) / 1000).toFixed(1)} s  ${h.ok ? 'serving' : `NOT serving (${h.reason})`}  held ${s.held}  running ${s.running}  ` +
        `fetched ${s.fetched}  published ${s.published} (${rate >= 100 ? rate.toFixed(0) : rate.toFixed(1)}/s)  refused ${s.refused}  handed back ${s.handedBack}  ` +
        `${outcomes}  run p50/p99 ${m.runMs.p50}/${m.runMs.p99} ms  processes ${m.processesAlive}  threads ${m.threadsAlive}\n`,
    );
  }, everyMs);
  timer.unref();
  return timer;
}
