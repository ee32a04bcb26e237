/**
 * The command lines of `mpms run`, `mpms worker` and `mpms status`, as data: each command is
 * a list of settings (lib/settings.ts). The engine's come from `OPTION_SPECS`, a worker
 * engine's from `SERVE_SPECS`, and the ones that exist only on a command line are declared
 * here, once each (`--stats-interval` serves `run` and `worker`, the Redis flags `worker` and
 * `status`). lib/cli/parse.ts parses, converts and checks any of them; `--help` and the CLI
 * tables of docs/api.md are generated from the same lists.
 */
import { OPTION_SPECS } from '../options.js';
import { SERVE_SPECS } from '../scale-out/settings.js';
import { settings, type Setting, type SettingInput } from '../settings.js';

/** A setting that has a flag. */
export type Flag = Setting & { cli: NonNullable<Setting['cli']> };

/** A command line: its settings and whether it takes the worker module as its one argument. */
export interface Command {
  /** `run`, `worker`, `status`: as in `mpms <name>`. */
  name: string;
  /** The synopsis line, also said when the worker module is missing. */
  usage: string;
  takesWorker: boolean;
  /** Every flag it knows, in `--help` order. */
  flags: readonly Flag[];
  /** The flags its `--help` lists one by one (the engine's are summed up in a line). */
  ownFlags: readonly Flag[];
}

const hasFlag = (s: Setting): s is Flag => s.cli !== undefined;

/** The engine settings that have a flag, in declaration order (`mpms run` and `mpms worker` both take them). */
export const ENGINE_FLAGS: readonly Flag[] = (OPTION_SPECS as readonly Setting[]).filter(hasFlag);

const flags = (specs: SettingInput[]) => settings(specs) as Flag[];

const help = {
  name: 'help',
  kind: 'boolean',
  description: 'show this help',
  cli: { flag: 'help', short: 'h' },
} satisfies SettingInput;
const stats = {
  name: 'stats',
  kind: 'boolean',
  description: 'print a line of live figures on stderr every second, terminal or not',
  cli: { flag: 'stats' },
} satisfies SettingInput;
const statsInterval = {
  name: 'statsInterval',
  kind: 'ms',
  default: 1000,
  description: 'ms between --stats lines (implies --stats)',
  check: (v: number) => (v >= 10 ? undefined : `must be at least 10 ms, got ${v}`),
  cli: { flag: 'stats-interval' },
} satisfies SettingInput;

/** `mpms run`'s own flags: input, output and what it shows. */
export const RUN_FLAGS: readonly Flag[] = flags([
  {
    name: 'input',
    kind: 'string',
    default: '-',
    defaultText: '- (stdin)',
    description: 'JSONL tasks, one argument list per line',
    cli: { flag: 'input', short: 'i', value: 'FILE|-' },
  },
  {
    name: 'output',
    kind: 'string',
    default: '-',
    defaultText: '- (stdout)',
    description: 'JSONL results, one line per task as it settles',
    cli: { flag: 'output', short: 'o', value: 'FILE|-' },
  },
  {
    name: 'progress',
    kind: 'boolean',
    description: 'where stderr is not a terminal, a plain progress line every second (default there: every minute)',
    cli: { flag: 'progress' },
  },
  { name: 'noProgress', kind: 'boolean', description: 'never show progress', cli: { flag: 'no-progress' } },
  {
    ...stats,
    description:
      'print a line of live figures (done, queued, running, outcomes, tasks/s, run/wait p50/p99, threads, restarts) on stderr every second, terminal or not',
  },
  statsInterval,
  {
    name: 'echoArgs',
    kind: 'boolean',
    description: 'each output line also carries the task\'s "args"',
    cli: { flag: 'echo-args' },
  },
  {
    name: 'resume',
    kind: 'boolean',
    description:
      'finish an interrupted job: skip input lines that already have an ok line in the --output FILE and append the rest to it (needs --output FILE and the same input)',
    cli: { flag: 'resume' },
  },
  help,
]);

/** Where Redis comes from: `mpms worker` and `mpms status`. */
export const REDIS_FLAGS: readonly Flag[] = flags([
  {
    name: 'redis',
    kind: 'string',
    defaultText: '--redis-file, else $MPMS_REDIS_URL',
    description: 'Redis to take jobs from, e.g. redis://10.0.0.5:6379 or rediss://...',
    check: (v: string) =>
      /^rediss?:\/\//.test(v) ? undefined : 'must be a redis://host:port URL (or rediss:// for TLS)',
    cli: { flag: 'redis', value: 'URL' },
  },
  {
    name: 'redisFile',
    kind: 'string',
    description: 'a file holding the Redis URL (a mounted secret: nothing shows in ps)',
    cli: { flag: 'redis-file', value: 'PATH' },
  },
  {
    name: 'redisPasswordFile',
    kind: 'string',
    defaultText: "$MPMS_REDIS_PASSWORD, else the URL's",
    description: 'a file holding the Redis password',
    cli: { flag: 'redis-password-file', value: 'PATH' },
  },
  {
    name: 'tlsCa',
    kind: 'string',
    description: 'CA certificate(s) to trust for Redis over TLS (turns TLS on)',
    cli: { flag: 'tls-ca', value: 'PEM' },
  },
  {
    name: 'tlsCert',
    kind: 'string',
    description: 'client certificate for Redis over TLS',
    cli: { flag: 'tls-cert', value: 'PEM' },
  },
  {
    name: 'tlsKey',
    kind: 'string',
    description: 'client key for Redis over TLS',
    cli: { flag: 'tls-key', value: 'PEM' },
  },
]);

const SERVE_FLAGS: readonly Flag[] = SERVE_SPECS.filter(hasFlag);
const QUEUE_FLAGS = SERVE_FLAGS.filter((s) => s.name === 'queue' || s.name === 'prefix');

/** `mpms worker`'s own flags besides the Redis and `serveQueue()` ones. */
export const WORKER_FLAGS: readonly Flag[] = flags([
  stats,
  statsInterval,
  {
    name: 'metricsPort',
    kind: 'int>=0',
    description: 'serve GET /metrics (Prometheus text) and GET /health (200 while serving, else 503) on this port',
    check: (v: number) => (v <= 65535 ? undefined : `must be a port number (0-65535), got ${v}`),
    cli: { flag: 'metrics-port', value: 'N' },
  },
  {
    name: 'metricsHost',
    kind: 'string',
    default: '0.0.0.0',
    description: 'address for --metrics-port',
    cli: { flag: 'metrics-host', value: 'HOST' },
  },
  {
    name: 'printSystemd',
    kind: 'boolean',
    description: 'print a systemd unit that runs this command line, and exit (docs/scale-out.md, Deployment)',
    cli: { flag: 'print-systemd' },
  },
  help,
]);

/** `mpms status`'s own flags besides the Redis and queue ones. */
export const STATUS_FLAGS: readonly Flag[] = flags([
  {
    name: 'interval',
    kind: 'ms>=0',
    default: 2000,
    description: 'how long rates are measured over: two readings this far apart (0: one reading, no rates)',
    cli: { flag: 'interval' },
  },
  { name: 'json', kind: 'boolean', description: 'print the status as one JSON object', cli: { flag: 'json' } },
  help,
]);

const command = (c: Omit<Command, 'flags'> & { engine: boolean }): Command => {
  const { engine, ...rest } = c;
  return { ...rest, flags: engine ? [...c.ownFlags, ...ENGINE_FLAGS] : c.ownFlags };
};

export const RUN: Command = command({
  name: 'run',
  usage: 'mpms run <worker-module> [options]',
  takesWorker: true,
  ownFlags: RUN_FLAGS,
  engine: true,
});
export const WORKER: Command = command({
  name: 'worker',
  usage: 'mpms worker <worker-module> --redis URL --queue NAME [-p N] [-t N] [options]',
  takesWorker: true,
  ownFlags: [...REDIS_FLAGS, ...SERVE_FLAGS, ...WORKER_FLAGS],
  engine: true,
});
export const STATUS: Command = command({
  name: 'status',
  usage: 'mpms status --redis URL --queue NAME [--interval MS] [--json]',
  takesWorker: false,
  ownFlags: [...REDIS_FLAGS, ...QUEUE_FLAGS, ...STATUS_FLAGS],
  engine: false,
});
