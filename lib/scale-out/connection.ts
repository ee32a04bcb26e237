/** Redis connection settings from a `redis://[user:pass@]host:port[/db]` URL, shared by the transport and `mpms worker`. */
import type { ConnectionOptions } from 'bullmq';

/** A connection as given by a user: BullMQ's own options, or a redis:// URL. */
export type RedisConnection = ConnectionOptions | string;

export function toConnection(c: RedisConnection): ConnectionOptions {
  if (typeof c !== 'string') return c;
  const u = new URL(c);
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new TypeError(`a Redis URL must start with redis:// or rediss://, got ${JSON.stringify(c)}`);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  return {
    host: u.hostname || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(db ? { db } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    // BullMQ requires this for its blocking connections; it also makes a Redis that is down
    // delay commands (retried by ioredis) instead of failing them.
    maxRetriesPerRequest: null,
  };
}

/** How long start-up waits for Redis before it fails (ioredis would otherwise retry for ever). */
export const CONNECT_TIMEOUT_MS = 10_000;

/** Waits for `p` at most `ms`; then rejects naming `what` (a start-up must never hang on a Redis that is down). */
export async function withinMs<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer from Redis within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A logger for Redis errors that says it once per `everyMs`: while Redis is down, ioredis
 * reports every reconnect attempt, and each client would flood the log.
 */
export function throttledWarn(warn: (obj: object, msg: string) => void, what: string, everyMs = 5000): (err: Error) => void {
  let last = 0;
  let skipped = 0;
  return (err) => {
    const now = Date.now();
    if (now - last < everyMs) {
      skipped++;
      return;
    }
    last = now;
    warn({ err, repeats: skipped }, `${what}: Redis error (reconnecting)`);
    skipped = 0;
  };
}
