/**
 * The settings of scale-out, each declared once: those of a worker engine (`serveQueue()`, and
 * so the `mpms worker` flags) and those of the master's `bullmqTransport()`. Validation,
 * defaults, the flags, `--help` and docs/api.md derive from these lists, as the engine's do
 * from `OPTION_SPECS`. Nothing here loads the Redis client: the CLI reads it before it knows
 * whether Redis is needed.
 */
import { settings, type Setting, type SettingInput } from '../settings.js';
import { validFingerprint } from './wire.js';

/**
 * The shortest liveness deadline: a live engine through a short Redis outage (one too short to
 * count as Redis away, CLOCK_GAP_MS) can be silent for a beat, the outage and a reconnect
 * (≤ 500 ms, connection.ts), 2 s; the margin keeps it from being declared dead.
 */
export const MIN_LOCK_MS = 2500;

const queue: SettingInput = {
  name: 'queue',
  kind: 'string',
  required: true,
  defaultText: '(required)',
  description: 'BullMQ queue name; the master (bullmqTransport({ queue })) and its worker engines name the same',
  check: (v: string) => (v.includes(':') ? `must not contain ":", got ${JSON.stringify(v)}` : undefined),
  cli: { flag: 'queue', value: 'NAME' },
};
const connection: SettingInput = {
  name: 'connection',
  kind: 'any',
  required: true,
  defaultText: '(required)',
  description: 'Redis: a redis:// URL, ioredis options, or an ioredis client (it is duplicated)',
  check: (v: unknown) => (v === null ? 'must be a redis:// URL or connection options, got null' : undefined),
};
const prefix: SettingInput = {
  name: 'prefix',
  kind: 'string',
  default: 'bull',
  description: 'BullMQ key prefix',
  cli: { flag: 'prefix', value: 'PREFIX' },
};
const fingerprint = (what: string, flag?: string): SettingInput => ({
  name: 'fingerprint',
  kind: 'string',
  defaultText: "a hash of the worker module's file",
  description: what,
  check: (v: string) =>
    validFingerprint(v) ? undefined : `must be 1-64 letters, digits or "_.+-", got ${JSON.stringify(v)}`,
  ...(flag ? { cli: { flag, value: 'ID' } } : {}),
});

/** The settings `serveQueue()` takes besides the engine's own (`OPTION_SPECS`); those with a flag are `mpms worker`'s. */
export const SERVE_SPECS: readonly Setting[] = settings([
  connection,
  queue,
  {
    name: 'prefetch',
    kind: 'int>=1',
    defaultText: 'adaptive: processes × threads × concurrency × 4 + 8, growing by 50 ms of throughput (at most 512)',
    description: 'jobs held at once, started or not',
    cli: { flag: 'prefetch', value: 'N' },
  },
  {
    name: 'lockDuration',
    kind: 'ms',
    default: 3000,
    description: `ms this engine may stay silent (it beats every 500 ms) before it counts as dead: its unstarted jobs go back to the queue, its started ones settle crashed (at least ${MIN_LOCK_MS})`,
    check: (v: number) => (v >= MIN_LOCK_MS ? undefined : `must be at least ${MIN_LOCK_MS} ms, got ${v}`),
    cli: { flag: 'lock-duration' },
  },
  {
    name: 'stalledInterval',
    kind: 'ms',
    default: 1000,
    description: "ms between the fleet's checks for silent worker engines (one engine checks per period)",
    check: (v: number) => (v >= 100 ? undefined : `must be at least 100 ms, got ${v}`),
    cli: { flag: 'stalled-interval' },
  },
  {
    name: 'drainTimeout',
    kind: 'ms>=0',
    default: 30_000,
    description: 'ms stop() (SIGTERM) lets started jobs finish before the rest go back to the queue',
    cli: { flag: 'drain-timeout' },
  },
  prefix,
  fingerprint("what this engine serves, as the master's bullmqTransport({ fingerprint })", 'fingerprint'),
]);

/** The settings of `bullmqTransport()`. */
export const TRANSPORT_SPECS: readonly Setting[] = settings([
  connection,
  queue,
  {
    name: 'runId',
    kind: 'string',
    defaultText: 'a new random id',
    description: "names this run's jobs; the id of an earlier run re-attaches to it after a master restart",
    check: (v: string) =>
      /^[A-Za-z0-9_-]+$/.test(v) ? undefined : `must be letters, digits, "_" or "-", got ${JSON.stringify(v)}`,
  },
  {
    name: 'maxOutstanding',
    kind: 'int>=1',
    default: 1000,
    description: 'jobs in Redis this master may have unsettled at once (put() waits beyond it)',
  },
  prefix,
  {
    name: 'sweepInterval',
    kind: 'ms',
    default: 1000,
    description: "ms between the master's checks for lost jobs (Redis lost data; a worker engine went silent)",
  },
  fingerprint("what worker engines must serve to run this master's jobs; mpms worker --fingerprint must match"),
]);
