/**
 * `mpms worker <worker-module> --redis URL --queue NAME [-p N] [-t N] ...`: serves a BullMQ
 * queue with a local engine (lib/scale-out/worker-engine.ts) until SIGINT/SIGTERM, then drains.
 * The engine flags are those of `mpms run` (derived from OPTION_SPECS); BullMQ is loaded only
 * here, so `mpms run` works without it.
 */
import { parseArgs } from 'node:util';
import { ConfigError } from '../errors.js';
import { CLI_SPECS, convertValue, describeConfigError, usageFromParseError, UsageError } from './args.js';
import { usageError } from './run.js';

const WORKER_ONLY = {
  redis: { type: 'string', valueName: 'URL', help: 'Redis to take jobs from, e.g. redis://127.0.0.1:6379 (required)' },
  queue: { type: 'string', valueName: 'NAME', help: 'BullMQ queue name, as given to bullmqTransport({ queue }) (required)' },
  prefetch: { type: 'string', valueName: 'N', help: 'jobs held at once, started or not (default: processes x threads x concurrency x 4 + 8)' },
  'lock-duration': { type: 'string', valueName: 'MS', help: 'how long this engine may stay silent (it beats every second) before it counts as dead: its unstarted jobs go back to the queue, its started ones settle crashed (default 3s)' },
  'stalled-interval': { type: 'string', valueName: 'MS', help: 'ms between the fleet\'s checks for silent worker engines (default 1s)' },
  'drain-timeout': { type: 'string', valueName: 'MS', help: 'on SIGTERM, how long started jobs may finish before the rest go back to the queue (default 30s)' },
  fingerprint: { type: 'string', valueName: 'ID', help: 'what this engine serves, as bullmqTransport({ fingerprint }) on the master (default: a hash of the worker module file)' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
} as const;

function help(): string {
  const rows = Object.entries(WORKER_ONLY).map(([flag, d]) => `  --${flag}${'valueName' in d ? ` <${d.valueName}>` : ''}`.padEnd(34) + d.help);
  return [
    'Usage: mpms worker <worker-module> --redis URL --queue NAME [-p N] [-t N] [options]',
    '',
    'Serves the jobs a master sends with `transport: bullmqTransport({ connection, queue })`,',
    'in processes x worker threads, until SIGINT/SIGTERM; then it stops taking jobs, lets held',
    'ones finish (up to --drain-timeout) and hands the rest back to the queue. A second signal',
    'stops at once (held jobs then count as crashed at the master). See docs/scale-out.md.',
    '',
    ...rows,
    '',
    'Engine flags are those of `mpms run` (see mpms run --help): -p, -t, --concurrency, --task-timeout, ...',
  ].join('\n');
}

/** A worker flag's value, parsed as the engine flags of the same kind are (`30s` works where `30000` does). */
function flagValue(flag: string, kind: 'int>=1' | 'ms', raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const spec = { name: flag, kind, defaultText: '', description: '', cli: { flag } } as unknown as Parameters<typeof convertValue>[0];
  const n = convertValue(spec, raw) as number;
  if (!(n >= (kind === 'ms' ? 0 : 1))) throw new UsageError(`--${flag} expects ${kind === 'ms' ? 'a duration >= 0' : 'an integer >= 1'}, got ${JSON.stringify(raw)}`);
  return n;
}

/** Runs `mpms worker`; resolves with the exit code once the worker engine has stopped. */
export async function workerCommand(argv: readonly string[]): Promise<number> {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const spec of CLI_SPECS) {
    options[spec.cli.flag] = spec.kind === 'boolean' ? { type: 'boolean' } : spec.kind === 'string[]' ? { type: 'string', multiple: true } : { type: 'string' };
    if (spec.cli.short) options[spec.cli.flag]!.short = spec.cli.short;
  }
  for (const [flag, d] of Object.entries(WORKER_ONLY)) options[flag] = 'short' in d ? { type: d.type, short: d.short } : { type: d.type };
  let engine: Record<string, unknown>;
  let worker: string;
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    let parsed: ReturnType<typeof parseArgs>;
    try {
      parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: true });
    } catch (err) {
      throw usageFromParseError(err);
    }
    values = parsed.values as typeof values;
    if (values.help) {
      process.stdout.write(help() + '\n');
      return 0;
    }
    if (parsed.positionals.length !== 1) throw new UsageError(parsed.positionals.length === 0 ? 'missing the worker module: mpms worker <worker-module> --redis URL --queue NAME' : `unexpected argument '${parsed.positionals[1]}'`);
    worker = parsed.positionals[0]!;
    if (typeof values.redis !== 'string' || !/^rediss?:\/\//.test(values.redis)) throw new UsageError('--redis expects a redis://host:port URL');
    if (typeof values.queue !== 'string' || !values.queue || values.queue.includes(':')) throw new UsageError('--queue expects a queue name (without ":")');
    engine = {};
    for (const spec of CLI_SPECS) {
      const raw = values[spec.cli.flag];
      if (raw !== undefined) engine[spec.name] = convertValue(spec, raw);
    }
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message, 'worker');
    throw err;
  }

  let scaleOut: typeof import('../scale-out/worker-engine.js');
  try {
    scaleOut = await import('../scale-out/worker-engine.js');
  } catch (err) {
    process.stderr.write(`mpms worker: cannot load BullMQ (${(err as Error).message}); install it: npm install bullmq\n`);
    return 1;
  }
  let served;
  try {
    served = await scaleOut.serveQueue({
      ...engine,
      worker,
      connection: values.redis as string,
      queue: values.queue as string,
      prefetch: flagValue('prefetch', 'int>=1', values.prefetch as string | undefined),
      lockDuration: flagValue('lock-duration', 'ms', values['lock-duration'] as string | undefined),
      stalledInterval: flagValue('stalled-interval', 'ms', values['stalled-interval'] as string | undefined),
      drainTimeout: flagValue('drain-timeout', 'ms', values['drain-timeout'] as string | undefined),
      ...(typeof values.fingerprint === 'string' ? { fingerprint: values.fingerprint } : {}),
    });
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message, 'worker');
    if (err instanceof ConfigError) return usageError(describeConfigError(err), 'worker');
    if (err instanceof TypeError && /^serveQueue: /.test(err.message)) return usageError(err.message.replace(/^serveQueue: /, ''), 'worker');
    // Cannot start (a module that does not load, Redis that does not answer): say so plainly.
    process.stderr.write(`mpms worker: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  // A supervisor or test waits for this line before it sends jobs.
  process.stderr.write(`mpms worker: ${served.id} serving queue ${JSON.stringify(values.queue)} (jobs for ${served.serves})\n`);
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    if (++signals === 1) {
      process.stderr.write(`mpms worker: ${sig}: draining (send it again to stop at once)\n`);
      void served.stop();
    } else {
      // Held jobs are abandoned: their locks expire and the master counts them crashed.
      process.exit(130);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const summary = await served.done;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  const { refused, handedBack } = served.serveStats();
  process.stderr.write(`mpms worker: stopped; ${JSON.stringify({ total: summary.total, ok: summary.ok, error: summary.error, timeout: summary.timeout, crashed: summary.crashed, cancelled: summary.cancelled, refused, handedBack })}\n`);
  return 0;
}
