/**
 * `mpms worker <worker-module> --redis URL --queue NAME [-p N] [-t N] ...`: serves a queue with a
 * local engine (lib/scale-out/worker-engine.ts) until SIGINT/SIGTERM, then drains. The engine
 * flags are those of `mpms run` (derived from OPTION_SPECS); the Redis client is loaded only
 * here, so `mpms run` works without it.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError } from '../errors.js';
import { CLI_SPECS, convertValue, describeConfigError, usageFromParseError, UsageError } from './args.js';
import { usageError } from './run.js';

type Flag = { type: 'string' | 'boolean'; short?: string; valueName?: string; kind?: 'int>=1' | 'ms'; help: string };

/** Where Redis comes from, shared with `mpms status`. */
export const REDIS_FLAGS = {
  redis: { type: 'string', valueName: 'URL', help: 'Redis to take jobs from, e.g. redis://10.0.0.5:6379 or rediss://... (else --redis-file, else $MPMS_REDIS_URL)' },
  'redis-file': { type: 'string', valueName: 'PATH', help: 'a file holding the Redis URL (a mounted secret: nothing shows in ps)' },
  'redis-password-file': { type: 'string', valueName: 'PATH', help: "a file holding the Redis password (else $MPMS_REDIS_PASSWORD, else the URL's)" },
  'tls-ca': { type: 'string', valueName: 'PEM', help: 'CA certificate(s) to trust for Redis over TLS (turns TLS on)' },
  'tls-cert': { type: 'string', valueName: 'PEM', help: 'client certificate for Redis over TLS' },
  'tls-key': { type: 'string', valueName: 'PEM', help: 'client key for Redis over TLS' },
  queue: { type: 'string', valueName: 'NAME', help: 'queue name, as given to bullmqTransport({ queue }) (required)' },
} as const satisfies Record<string, Flag>;

const WORKER_ONLY = {
  ...REDIS_FLAGS,
  prefetch: { type: 'string', valueName: 'N', kind: 'int>=1', help: 'jobs held at once, started or not (default: adaptive, processes x threads x concurrency x 4 + 8 plus 50 ms of throughput, at most 512)' },
  'lock-duration': { type: 'string', valueName: 'MS', kind: 'ms', help: 'how long this engine may stay silent (it beats every 500 ms) before it counts as dead: its unstarted jobs go back to the queue, its started ones settle crashed (default 3s, at least 2.5s)' },
  'stalled-interval': { type: 'string', valueName: 'MS', kind: 'ms', help: "how often the fleet checks for silent worker engines (default 1s)" },
  'drain-timeout': { type: 'string', valueName: 'MS', kind: 'ms', help: 'on SIGTERM, how long started jobs may finish before the rest go back to the queue (default 30s)' },
  fingerprint: { type: 'string', valueName: 'ID', help: 'what this engine serves, as bullmqTransport({ fingerprint }) on the master (default: a hash of the worker module file)' },
  stats: { type: 'boolean', help: 'print a line of live figures on stderr every second' },
  'stats-interval': { type: 'string', valueName: 'MS', kind: 'ms', help: 'time between --stats lines (implies --stats; default 1s)' },
  'metrics-port': { type: 'string', valueName: 'N', help: 'serve GET /metrics (Prometheus text) and GET /health (200 while serving, else 503) on this port' },
  'metrics-host': { type: 'string', valueName: 'HOST', help: 'address for --metrics-port (default 0.0.0.0)' },
  'print-systemd': { type: 'boolean', help: 'print a systemd unit that runs this command line, and exit (docs/scale-out.md, Deployment)' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
} as const satisfies Record<string, Flag>;

type Values = Record<string, string | boolean | string[] | undefined>;

function help(): string {
  const rows = Object.entries(WORKER_ONLY).map(([flag, d]) => {
    const left = `  --${flag}${'valueName' in d ? ` <${d.valueName}>` : ''}`;
    return left.padEnd(34) + d.help;
  });
  return [
    'Usage: mpms worker <worker-module> --redis URL --queue NAME [-p N] [-t N] [options]',
    '',
    'Serves the jobs a master sends with `transport: bullmqTransport({ connection, queue })`,',
    'in processes x worker threads, until SIGINT/SIGTERM; then it stops taking jobs, hands the',
    'unstarted ones back, lets started ones finish (up to --drain-timeout) and hands the rest',
    'back too. A second signal stops at once (its started jobs then settle crashed at the',
    'master). See docs/scale-out.md.',
    '',
    ...rows,
    '',
    'Engine flags are those of `mpms run` (see mpms run --help): -p, -t, --concurrency, --task-timeout, ...',
  ].join('\n');
}

/** A worker flag's value, parsed as the engine flags of the same kind are (`30s` works where `30000` does). */
export function flagValue(flag: string, kind: 'int>=1' | 'ms', raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const spec = { name: flag, kind, defaultText: '', description: '', cli: { flag } } as unknown as Parameters<typeof convertValue>[0];
  const n = convertValue(spec, raw) as number;
  if (!(n >= (kind === 'ms' ? 0 : 1))) throw new UsageError(`--${flag} expects ${kind === 'ms' ? 'a duration >= 0' : 'an integer >= 1'}, got ${JSON.stringify(raw)}`);
  return n;
}

/** Parses a command line of `own` flags (and the engine flags of `mpms run` when `withEngine`). */
export function parseCommand(argv: readonly string[], own: Record<string, Flag>, withEngine: boolean): { values: Values; positionals: string[] } {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  if (withEngine) {
    for (const spec of CLI_SPECS) {
      options[spec.cli.flag] = spec.kind === 'boolean' ? { type: 'boolean' } : spec.kind === 'string[]' ? { type: 'string', multiple: true } : { type: 'string' };
      if (spec.cli.short) options[spec.cli.flag]!.short = spec.cli.short;
    }
  }
  for (const [flag, d] of Object.entries(own)) options[flag] = 'short' in d && d.short ? { type: d.type, short: d.short } : { type: d.type };
  try {
    const parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: true });
    return { values: parsed.values as Values, positionals: parsed.positionals };
  } catch (err) {
    throw usageFromParseError(err, Object.keys(options));
  }
}

/** Redis flags → the settings `serveQueue`/`readFleet` take (URL from flag, file or env; password; TLS files). */
export async function redisOf(values: Values): Promise<ReturnType<typeof import('../scale-out/connection.js').redisFromSources>> {
  const { redisFromSources } = await import('../scale-out/connection.js');
  const str = (k: string) => (typeof values[k] === 'string' ? (values[k] as string) : undefined);
  const url = str('redis');
  if (url !== undefined && !/^rediss?:\/\//.test(url)) throw new UsageError('--redis expects a redis://host:port URL (or rediss:// for TLS)');
  try {
    return redisFromSources({ url, urlFile: str('redis-file'), passwordFile: str('redis-password-file'), tlsCa: str('tls-ca'), tlsCert: str('tls-cert'), tlsKey: str('tls-key') });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** The systemd unit for this command line (`--print-systemd`): secrets stay in an EnvironmentFile. */
export function systemdUnit(argv: readonly string[], values: Values, drainMs: number): string {
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
  const queue = String(values.queue);
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
  let engine: Record<string, unknown>;
  let worker: string;
  let values: Values;
  let settings: { prefetch?: number; lockDuration?: number; stalledInterval?: number; drainTimeout?: number; statsMs?: number; metricsPort?: number };
  try {
    const parsed = parseCommand(argv, WORKER_ONLY, true);
    values = parsed.values;
    worker = parsed.positionals[0] ?? '';
    if (!values.help && parsed.positionals.length !== 1) {
      throw new UsageError(parsed.positionals.length === 0 ? 'missing the worker module: mpms worker <worker-module> --redis URL --queue NAME' : `unexpected argument '${parsed.positionals[1]}'`);
    }
    if (values.help) {
      process.stdout.write(help() + '\n');
      return 0;
    }
    if (typeof values.queue !== 'string' || !values.queue || values.queue.includes(':')) throw new UsageError('--queue expects a queue name (without ":")');
    engine = {};
    for (const spec of CLI_SPECS) {
      const raw = values[spec.cli.flag];
      if (raw !== undefined) engine[spec.name] = convertValue(spec, raw);
    }
    const ms = (f: string) => flagValue(f, 'ms', values[f] as string | undefined);
    const port = values['metrics-port'] as string | undefined;
    if (port !== undefined && !(/^\d+$/.test(port) && Number(port) <= 65535)) throw new UsageError(`--metrics-port expects a port number, got ${JSON.stringify(port)}`);
    settings = {
      prefetch: flagValue('prefetch', 'int>=1', values.prefetch as string | undefined),
      lockDuration: ms('lock-duration'),
      stalledInterval: ms('stalled-interval'),
      drainTimeout: ms('drain-timeout'),
      statsMs: ms('stats-interval') ?? (values.stats ? 1000 : undefined),
      metricsPort: port === undefined ? undefined : Number(port),
    };
    if (settings.statsMs !== undefined && settings.statsMs < 10) throw new UsageError('--stats-interval must be at least 10 ms');
    if (values['print-systemd']) {
      if (!path.isAbsolute(worker)) throw new UsageError('--print-systemd needs the worker module as an absolute path (a unit has no working directory of yours)');
      process.stdout.write(systemdUnit(argv, values, settings.drainTimeout ?? 30_000));
      return 0;
    }
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message, 'worker');
    throw err;
  }
  return serve(worker, engine, values, settings);
}

async function serve(worker: string, engine: Record<string, unknown>, values: Values, settings: { prefetch?: number; lockDuration?: number; stalledInterval?: number; drainTimeout?: number; statsMs?: number; metricsPort?: number }): Promise<number> {
  let scaleOut: typeof import('../scale-out/worker-engine.js');
  let redis: Awaited<ReturnType<typeof redisOf>>;
  try {
    scaleOut = await import('../scale-out/worker-engine.js');
    redis = await redisOf(values);
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message, 'worker');
    process.stderr.write(`mpms worker: cannot load the Redis client (${(err as Error).message}); install it: npm install bullmq ioredis\n`);
    return 1;
  }
  const { statsMs, metricsPort, ...serveSettings } = settings;
  let served: Awaited<ReturnType<typeof scaleOut.serveQueue>>;
  try {
    served = await scaleOut.serveQueue({
      ...engine,
      worker,
      connection: redis.options,
      queue: values.queue as string,
      ...serveSettings,
      ...(typeof values.fingerprint === 'string' ? { fingerprint: values.fingerprint } : {}),
    });
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message, 'worker');
    if (err instanceof ConfigError) return usageError(describeConfigError(err), 'worker');
    if (err instanceof TypeError && /^serveQueue: /.test(err.message)) return usageError(err.message.replace(/^serveQueue: /, ''), 'worker');
    // Cannot start (a module that does not load, Redis that refuses): say so plainly.
    process.stderr.write(`mpms worker: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  const name = typeof engine.name === 'string' ? engine.name : 'mpms';
  if (metricsPort !== undefined) {
    try {
      const { serveWorkerHttp } = await import('../scale-out/worker-http.js');
      const server = await serveWorkerHttp(served, name, metricsPort, (values['metrics-host'] as string | undefined) ?? '0.0.0.0');
      const addr = server.address();
      process.stderr.write(`mpms worker: metrics on http://${typeof addr === 'object' && addr ? `${addr.address}:${addr.port}` : metricsPort}/metrics and /health\n`);
      void served.done.then(() => server.close());
    } catch (err) {
      process.stderr.write(`mpms worker: cannot serve --metrics-port ${metricsPort}: ${(err as Error).message}; stopping\n`);
      await served.stop();
      return 1;
    }
  }
  // A supervisor or test waits for this line before it sends jobs.
  process.stderr.write(`mpms worker: ${served.id} serving queue ${JSON.stringify(values.queue)} on ${redis.shown} (jobs for ${served.serves})\n`);
  const statsTimer = statsMs === undefined ? undefined : startStats(served, statsMs);
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
