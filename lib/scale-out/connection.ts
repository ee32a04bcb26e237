/**
 * Redis connections of the transport and of `mpms worker`: settings from a URL or options, a
 * start-up that names the real cause of a failure (auth, TLS, refused, timeout) at once, and
 * error logging that does not flood while Redis is away.
 */
import fs from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';

/** A connection as given by a user: ioredis options, an ioredis client (duplicated, never used itself), or a redis:// URL. */
export type RedisConnection = RedisOptions | Redis | string;

/** Settings from a `redis[s]://[user:pass@]host:port[/db]` URL (rediss: TLS with the system's CAs). */
export function toConnection(c: RedisOptions | string): RedisOptions {
  if (typeof c !== 'string') return c;
  let u: URL;
  try {
    u = new URL(c);
  } catch {
    throw new TypeError(`not a Redis URL: ${JSON.stringify(redactUrl(c))}`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new TypeError(`a Redis URL must start with redis:// or rediss://, got ${JSON.stringify(redactUrl(c))}`);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  return {
    host: u.hostname || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(db ? { db } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

/** Where a command line takes its Redis settings from (`mpms worker`, `mpms status`). */
export interface RedisSources {
  /** `--redis URL` */
  url?: string;
  /** `--redis-file PATH`: a file holding the URL (first line), e.g. a mounted secret. */
  urlFile?: string;
  /** `--redis-password-file PATH`: a file holding the password; wins over the URL's. */
  passwordFile?: string;
  /** `--tls-ca`, `--tls-cert`, `--tls-key`: PEM files; any of them turns TLS on. */
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
}

/** Environment variables read when the flags do not say: the URL, then the password. */
export const REDIS_URL_ENV = 'MPMS_REDIS_URL';
export const REDIS_PASSWORD_ENV = 'MPMS_REDIS_PASSWORD';

function readSecret(file: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8').split(/\r?\n/)[0]!.trim();
  } catch (err) {
    throw new TypeError(`cannot read ${what} from ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * Redis settings from a command line's flags, files and environment, so that no secret needs
 * to be on the command line (where `ps` shows it). The URL: `--redis`, else `--redis-file`,
 * else `$MPMS_REDIS_URL`. The password: `--redis-password-file`, else `$MPMS_REDIS_PASSWORD`,
 * else the URL's. Returns the options and the URL with its password hidden, for messages.
 * @throws TypeError saying what is missing or unreadable.
 */
export function redisFromSources(src: RedisSources, env: NodeJS.ProcessEnv = process.env): { options: RedisOptions; shown: string } {
  const url = src.url ?? (src.urlFile ? readSecret(src.urlFile, 'the Redis URL') : env[REDIS_URL_ENV]);
  if (!url) throw new TypeError(`no Redis given: --redis URL, --redis-file PATH or $${REDIS_URL_ENV}`);
  const options = toConnection(url);
  const password = src.passwordFile ? readSecret(src.passwordFile, 'the Redis password') : env[REDIS_PASSWORD_ENV];
  if (password) options.password = password;
  if (src.tlsCa || src.tlsCert || src.tlsKey) {
    const file = (p: string | undefined, what: string) => {
      if (!p) return undefined;
      try {
        return fs.readFileSync(p);
      } catch (err) {
        throw new TypeError(`cannot read the TLS ${what} from ${p}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    };
    const ca = file(src.tlsCa, 'CA');
    const cert = file(src.tlsCert, 'certificate');
    const key = file(src.tlsKey, 'key');
    options.tls = { ...(typeof options.tls === 'object' ? options.tls : {}), ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
  }
  return { options, shown: redactUrl(url) + (password && !/:[^@/]*@/.test(url) ? ' (password from file/env)' : '') };
}

/** A URL with its password replaced by `***`, for messages and logs. */
export function redactUrl(url: string): string {
  return url.replace(/^(rediss?:\/\/[^:@/]*:)[^@/]*@/, '$1***@');
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
 * A connection failure in words a person can act on: which of auth, TLS, refused, DNS or
 * timeout it is. Returns undefined for an error that is none of them.
 */
export function connectionCause(err: unknown): string | undefined {
  const e = err as { code?: string; message?: string };
  const msg = String(e?.message ?? err);
  const code = e?.code ?? '';
  if (/WRONGPASS|NOAUTH|invalid password|invalid username-password|AUTH.*(failed|without any password)/i.test(msg)) return `authentication failed (${msg.trim()})`;
  if (/CERT|SSL|TLS|self.signed|unable to (verify|get)|certificate|hostname\/IP does not match|wrong version number/i.test(`${code} ${msg}`)) return `TLS failed (${code || msg.trim()})`;
  if (code === 'ECONNREFUSED') return `connection refused (${msg.trim()}): is Redis running on that host and port?`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `host not found (${msg.trim()})`;
  if (code === 'ETIMEDOUT' || /ETIMEDOUT|connect timeout/i.test(msg)) return `timed out connecting (${msg.trim()})`;
  if (code === 'ECONNRESET' || code === 'EPIPE') return `the connection was closed by the other side (${code}): a TLS server spoken to without TLS, or a proxy?`;
  if (/NOPERM|no permissions/i.test(msg)) return `permission denied (${msg.trim()}): the Redis user needs the commands and keys of the queue`;
  return undefined;
}

/** Options of `openRedis`. */
export interface OpenRedisOptions {
  /** CLIENT SETNAME of the connection (visible in CLIENT LIST). */
  name: string;
  /** For messages: what the connection is for. */
  what: string;
  /** Redis errors after start-up (throttled: Redis away for a while is one line every 5 s). */
  warn: (obj: object, msg: string) => void;
}

/**
 * Opens a connection and resolves once Redis answers. Rejects at once with the cause when the
 * first attempt fails for a reason that retrying cannot fix or that a person must see (auth,
 * TLS, refused, unknown host), and after `CONNECT_TIMEOUT_MS` when Redis does not answer. After
 * start-up it reconnects for ever (commands wait meanwhile) and logs errors throttled.
 */
export async function openRedis(conn: RedisConnection, o: OpenRedisOptions): Promise<Redis> {
  const base: RedisOptions = {
    // Commands wait through an outage instead of failing: every caller is built to wait.
    maxRetriesPerRequest: null,
    connectionName: o.name,
    connectTimeout: CONNECT_TIMEOUT_MS,
    // Back within half a second of Redis coming back (the default backs off to 2 s: longer
    // than a worker engine's liveness allows).
    retryStrategy: (times: number) => Math.min(times * 50, 500),
    lazyConnect: true,
  };
  const client = conn instanceof Redis ? conn.duplicate(base) : new Redis({ ...toConnection(conn), ...base });
  let started = false;
  const throttled = throttledWarn(o.warn, o.what);
  client.on('error', (err: Error) => {
    if (started) throttled(err);
  });
  try {
    await withinMs(
      new Promise<void>((resolve, reject) => {
        const onError = (err: Error) => {
          const cause = connectionCause(err);
          if (cause) reject(new RedisConnectError(`${o.what}: ${cause}`, { cause: err }));
        };
        client.on('error', onError);
        client.connect().then(
          () => {
            client.off('error', onError);
            resolve();
          },
          (err: Error) => reject(new RedisConnectError(`${o.what}: ${connectionCause(err) ?? err.message}`, { cause: err })),
        );
      }),
      CONNECT_TIMEOUT_MS,
      o.what,
    );
  } catch (err) {
    client.disconnect();
    throw err;
  }
  started = true;
  return client;
}

/** A Redis connection that could not be made at start-up; the message says why. */
export class RedisConnectError extends Error {
  override name = 'RedisConnectError';
}

/** Closes a connection: QUIT when Redis answers within `ms`, else drops the socket. */
export async function closeRedis(client: Redis | undefined, ms = 2000): Promise<void> {
  if (!client || client.status === 'end') return;
  try {
    await withinMs(client.quit(), ms, 'closing a Redis connection');
  } catch {
    client.disconnect();
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
    warn({ err, repeats: skipped, cause: connectionCause(err) }, `${what}: Redis error (reconnecting)`);
    skipped = 0;
  };
}
