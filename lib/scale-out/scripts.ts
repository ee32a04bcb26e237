/**
 * The Redis side of scale-out: key names and the Lua scripts that move jobs. Every state change
 * of a job is one of these scripts, so each is atomic, and each is safe to run twice (ioredis
 * re-sends a command whose reply a dropped connection lost).
 *
 * A job is a BullMQ job (hash `<prefix>:<queue>:<jobId>` with BullMQ's fields, its id on the
 * queue's `wait` list, BullMQ's marker to wake blocked fetchers), so BullMQ's Queue API counts,
 * pauses and shows waiting jobs. What happens after a worker engine takes a job is mpms's own,
 * under `<prefix>:<queue>:mpms:` (docs/scale-out.md, "What is in Redis"):
 *
 * - `workers` / `beats` / `load` (hashes by worker id): the fleet — each worker engine's
 *   identity (with its liveness deadline), its last heartbeat (Redis time, ms) and its figures.
 * - `w:<worker>:held` (set): jobs a worker engine fetched and has not started. If it dies they go
 *   back to `wait` and run elsewhere: it never started them.
 * - `w:<worker>:run` (set): jobs it marked started — the mark is written before the task is
 *   handed to the local engine. If it dies they settle `crashed` (they may have run).
 * - `run:<runId>:out` (list): the run's finished outcomes, `<jobId>|o|<outcome>` or
 *   `<jobId>|L|<worker>|<ms silent>` (lost with a dead worker engine), drained by its master,
 *   which then deletes the job (it settles first, then deletes: at-least-once across restarts).
 * - `run:<runId>:jobs` (set): the run's jobs in Redis (re-attach reads it).
 * - `run:<runId>:bell` (list): a doorbell the master blocks on while the outbox is empty.
 * - `clock` (hash): the last time any mpms script ran, and the total time Redis was away for
 *   everyone (gaps in mpms traffic); an engine's silence does not count that time, so a Redis
 *   paused 10 s does not make every worker engine look dead.
 */
import type { Redis } from 'ioredis';

/** Key names of one queue. */
export interface QueueKeys {
  /** `<prefix>:<queue>:` — BullMQ's job keys are this plus the job id. */
  base: string;
  /** `<prefix>:<queue>:mpms:` */
  m: string;
  wait: string;
  meta: string;
  marker: string;
  workers: string;
  beats: string;
  load: string;
  clock: string;
  reaper: string;
}

export function queueKeys(prefix: string, queue: string): QueueKeys {
  const base = `${prefix}:${queue}:`;
  const m = `${base}mpms:`;
  return {
    base,
    m,
    wait: `${base}wait`,
    meta: `${base}meta`,
    marker: `${base}marker`,
    workers: `${m}workers`,
    beats: `${m}beats`,
    load: `${m}load`,
    clock: `${m}clock`,
    reaper: `${m}reaper`,
  };
}

export const heldKey = (k: QueueKeys, worker: string) => `${k.m}w:${worker}:held`;
export const runSetKey = (k: QueueKeys, worker: string) => `${k.m}w:${worker}:run`;
export const outKey = (k: QueueKeys, runId: string) => `${k.m}run:${runId}:out`;
export const jobsKey = (k: QueueKeys, runId: string) => `${k.m}run:${runId}:jobs`;
export const bellKey = (k: QueueKeys, runId: string) => `${k.m}run:${runId}:bell`;

/**
 * ms without any mpms script call that count as Redis having been away for everyone (paused,
 * restarting, unreachable): twice the heartbeat, so a fleet that merely beats never looks away.
 */
export const CLOCK_GAP_MS = 1000;
/** ms between a worker engine's heartbeats (and its reap checks). */
export const BEAT_MS = 500;

/**
 * Sets `now` (Redis time, ms) and `down`: the total ms Redis was away for everyone (every gap
 * in mpms traffic longer than `gap`, summed). A heartbeat records `now:down`; a reaper counts
 * an engine's silence as the time since its beat minus the time Redis was away meanwhile, so
 * an outage of any length never makes live engines look dead. Needs `clockKey` and `gap`.
 */
const CLOCK = `
local rcall = redis.call
local t = rcall('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = tonumber(rcall('HGET', clockKey, 'last') or now)
local down = tonumber(rcall('HGET', clockKey, 'down') or '0')
if now - last > gap then
  down = down + (now - last)
  rcall('HSET', clockKey, 'down', down)
end
rcall('HSET', clockKey, 'last', now)
local stamp = now .. ':' .. down
`;

/** `<runId>` of a job id `<runId>.<taskId>.<attempt>`. */
const RUN_OF = `local function runOf(id) return string.match(id, '^([^.]+)%.') end`;

/**
 * A run's outbox and its doorbell: `outbox(mb, run, entry)` appends an outcome entry,
 * `ring(mb, run)` wakes its master (one ring is enough: a bell that rings already is left).
 * Needs `rcall` and the mpms base `mb`.
 */
const OUTBOX = `
local function outbox(mb, run, entry) rcall('RPUSH', mb .. 'run:' .. run .. ':out', entry) end
local function ring(mb, run)
  local bell = mb .. 'run:' .. run .. ':bell'
  if rcall('LLEN', bell) == 0 then rcall('RPUSH', bell, 1) end
end`;

/** `requeue(base, wait, id)`: a job that still exists goes back to the head of the queue; 1 when it did. Needs `rcall`. */
const REQUEUE = `
local function requeue(base, wait, id)
  if rcall('EXISTS', base .. id) == 0 then return 0 end
  rcall('RPUSH', wait, id)
  return 1
end`;

/** `forget(keys, w)`: drops worker `w` from the fleet hashes (workers, beats, load). Needs `rcall`. */
const FORGET = `
local function forget(workers, beats, load, w)
  rcall('HDEL', workers, w)
  rcall('HDEL', beats, w)
  rcall('HDEL', load, w)
end`;

const SCRIPTS = {
  /**
   * Adds jobs (BullMQ's fields; `opts.attempts` 1: retries are the master's) and indexes them in
   * the run. A job id that exists is skipped, so a batch re-sent after a lost reply adds nothing twice.
   * KEYS wait, meta, marker, run jobs. ARGV base, timestamp, name, then id, data pairs.
   */
  mpmsAdd: {
    keys: 4,
    lua: `
local rcall = redis.call
local base, ts, name = ARGV[1], ARGV[2], ARGV[3]
local ids = {}
for i = 4, #ARGV, 2 do
  local id = ARGV[i]
  if rcall('EXISTS', base .. id) == 0 then
    rcall('HSET', base .. id, 'name', name, 'data', ARGV[i + 1], 'opts', '{"attempts":1}', 'timestamp', ts, 'delay', 0, 'priority', 0)
    rcall('LPUSH', KEYS[1], id)
    ids[#ids + 1] = id
  end
end
if #ids > 0 then
  rcall('SADD', KEYS[4], unpack(ids))
  if not rcall('HGET', KEYS[2], 'paused') then rcall('ZADD', KEYS[3], 0, '0') end
end
return #ids`,
  },
  /**
   * Takes up to `max` jobs from the head of the queue into the worker engine's held set, and
   * counts as a heartbeat. Returns ['ok', id, name, data, ...], ['paused'] or ['unknown'] (this
   * worker engine is not registered: it was declared dead, or Redis lost its data — it must
   * register again before it may hold jobs).
   * KEYS wait, meta, marker, held, workers, beats, clock. ARGV base, worker, max, gap.
   */
  mpmsFetch: {
    keys: 7,
    lua: `
local clockKey, gap = KEYS[7], tonumber(ARGV[4])
${CLOCK}
if rcall('HEXISTS', KEYS[5], ARGV[2]) == 0 then return {'unknown'} end
rcall('HSET', KEYS[6], ARGV[2], stamp)
if rcall('HGET', KEYS[2], 'paused') then return {'paused'} end
local out = {'ok'}
local max, n = tonumber(ARGV[3]), 0
while n < max do
  local id = rcall('RPOP', KEYS[1])
  if not id then break end
  local f = rcall('HMGET', ARGV[1] .. id, 'name', 'data')
  if f[2] then
    rcall('SADD', KEYS[4], id)
    out[#out + 1] = id
    out[#out + 1] = f[1] or ''
    out[#out + 1] = f[2]
    n = n + 1
  end
end
-- Jobs left: wake another fetcher (BullMQ's marker holds one wake-up at a time).
if n == max and rcall('LLEN', KEYS[1]) > 0 then rcall('ZADD', KEYS[3], 0, '0') end
return out`,
  },
  /**
   * Marks held jobs started, before they are handed to the local engine. 1 per id when it is
   * (now or already) marked, 0 when this engine no longer holds it (it was handed back: it must
   * not run here). KEYS held, run. ARGV ids.
   */
  mpmsMark: {
    keys: 2,
    lua: `
local rcall = redis.call
local out = {}
for i = 1, #ARGV do
  if rcall('SMOVE', KEYS[1], KEYS[2], ARGV[i]) == 1 or rcall('SISMEMBER', KEYS[2], ARGV[i]) == 1 then out[i] = 1 else out[i] = 0 end
end
return out`,
  },
  /**
   * Publishes outcomes to their runs' outboxes and rings each run's bell. Only for jobs this
   * engine still holds: one it lost (declared dead meanwhile) already has its outcome.
   * KEYS held, run. ARGV base, mpms base, then id, outcome pairs.
   */
  mpmsFinish: {
    keys: 2,
    lua: `
local rcall = redis.call
${RUN_OF}
${OUTBOX}
local done, bells = 0, {}
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  if (rcall('SREM', KEYS[2], id) == 1 or rcall('SREM', KEYS[1], id) == 1) and rcall('EXISTS', ARGV[1] .. id) == 1 then
    local run = runOf(id)
    outbox(ARGV[2], run, id .. '|o|' .. ARGV[i + 1])
    bells[run] = true
    done = done + 1
  end
end
-- Each run's bell once per batch, after all its entries.
for run in pairs(bells) do ring(ARGV[2], run) end
return done`,
  },
  /**
   * Hands jobs back to the head of the queue (they never started here, or were cancelled by a
   * drain). KEYS held, run, wait, marker. ARGV base, ids.
   */
  mpmsRelease: {
    keys: 4,
    lua: `
local rcall = redis.call
${REQUEUE}
local n = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  if rcall('SREM', KEYS[1], id) == 1 or rcall('SREM', KEYS[2], id) == 1 then n = n + requeue(ARGV[1], KEYS[3], id) end
end
if n > 0 then rcall('ZADD', KEYS[4], 0, '0') end
return n`,
  },
  /**
   * After a reconnect: jobs Redis has in this engine's sets that the engine does not know (a
   * fetch or mark whose reply was lost with the connection) never started here: back to the
   * queue. KEYS held, run, wait, marker. ARGV base, known ids.
   */
  mpmsReconcile: {
    keys: 4,
    lua: `
local rcall = redis.call
${REQUEUE}
local known = {}
for i = 2, #ARGV do known[ARGV[i]] = true end
local n = 0
for s = 1, 2 do
  for _, id in ipairs(rcall('SMEMBERS', KEYS[s])) do
    if not known[id] then
      rcall('SREM', KEYS[s], id)
      n = n + requeue(ARGV[1], KEYS[3], id)
    end
  end
end
if n > 0 then rcall('ZADD', KEYS[4], 0, '0') end
return n`,
  },
  /**
   * Registers (if needed) and records a heartbeat and the engine's figures. Returns 1 when it
   * had to register (first beat, or it had been declared dead, or Redis lost its data).
   * KEYS workers, beats, load, clock. ARGV worker, info JSON, load JSON, gap.
   */
  mpmsBeat: {
    keys: 4,
    lua: `
local clockKey, gap = KEYS[4], tonumber(ARGV[4])
${CLOCK}
rcall('HSET', KEYS[2], ARGV[1], stamp)
rcall('HSET', KEYS[3], ARGV[1], ARGV[3])
return rcall('HSETNX', KEYS[1], ARGV[1], ARGV[2])`,
  },
  /**
   * Leaves the fleet: only once this engine holds nothing (else the reaper handles the rest
   * after its deadline). KEYS workers, beats, load, held, run. ARGV worker. 1 when it left.
   */
  mpmsLeave: {
    keys: 5,
    lua: `
local rcall = redis.call
${FORGET}
if rcall('SCARD', KEYS[4]) > 0 or rcall('SCARD', KEYS[5]) > 0 then return 0 end
forget(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
return 1`,
  },
  /**
   * Declares dead every worker engine silent for longer than its own deadline (the time since
   * its last heartbeat, less the time Redis was away for everyone meanwhile): its held jobs
   * go back to the queue, its started ones get a "lost" outcome in their run's outbox. With a
   * run filter (a master) only that run's jobs are touched. With a lock time (worker engines)
   * one caller per period does the work. Returns [worker, requeued, lost, silentMs, ...].
   * KEYS workers, beats, load, clock, wait, marker, reaper lock. ARGV base, mpms base, filter, lock ms, gap.
   */
  mpmsReap: {
    keys: 7,
    lua: `
local clockKey, gap = KEYS[4], tonumber(ARGV[5])
${CLOCK}
${RUN_OF}
${OUTBOX}
${REQUEUE}
${FORGET}
if tonumber(ARGV[4]) > 0 and not rcall('SET', KEYS[7], '1', 'PX', ARGV[4], 'NX') then return {} end
local base, mb, filter = ARGV[1], ARGV[2], ARGV[3]
local function mine(id) return filter == '' or string.sub(id, 1, #filter) == filter end
local out, requeued = {}, 0
for _, w in ipairs(rcall('HKEYS', KEYS[1])) do
  local ok, info = pcall(cjson.decode, rcall('HGET', KEYS[1], w) or '{}')
  local deadline = (ok and type(info) == 'table' and tonumber(info.deadline)) or 3000
  local at, downAt = string.match(rcall('HGET', KEYS[2], w) or '0:0', '^(%d+):?(%d*)$')
  local silent = (now - tonumber(at or '0')) - (down - tonumber(downAt ~= '' and downAt or down))
  if silent > deadline then
    local held, run = mb .. 'w:' .. w .. ':held', mb .. 'w:' .. w .. ':run'
    local nh, nl = 0, 0
    for _, id in ipairs(rcall('SMEMBERS', held)) do
      if mine(id) then
        rcall('SREM', held, id)
        nh = nh + requeue(base, KEYS[5], id)
      end
    end
    for _, id in ipairs(rcall('SMEMBERS', run)) do
      if mine(id) then
        rcall('SREM', run, id)
        if rcall('EXISTS', base .. id) == 1 then
          outbox(mb, runOf(id), id .. '|L|' .. w .. '|' .. silent)
          ring(mb, runOf(id))
          nl = nl + 1
        end
      end
    end
    if rcall('EXISTS', held) == 0 and rcall('EXISTS', run) == 0 then forget(KEYS[1], KEYS[2], KEYS[3], w) end
    out[#out + 1] = w
    out[#out + 1] = nh
    out[#out + 1] = nl
    out[#out + 1] = silent
    requeued = requeued + nh
  end
end
if requeued > 0 then rcall('ZADD', KEYS[6], 0, '0') end
return out`,
  },
  /**
   * The master's ack and read of its outbox: drops the acked entries (the head of the list,
   * checked id by id, so a re-sent call drops nothing more), deletes their jobs, then returns
   * up to `max` entries. KEYS out, run jobs. ARGV base, max, acked ids.
   */
  mpmsDrain: {
    keys: 2,
    lua: `
local rcall = redis.call
local base = ARGV[1]
for i = 3, #ARGV do
  local id = ARGV[i]
  local head = rcall('LINDEX', KEYS[1], 0)
  if head and string.sub(head, 1, #id + 1) == id .. '|' then rcall('LPOP', KEYS[1]) end
  rcall('DEL', base .. id)
  rcall('SREM', KEYS[2], id)
end
local max = tonumber(ARGV[2])
if max <= 0 then return {} end
return rcall('LRANGE', KEYS[1], 0, max - 1)`,
  },
  /**
   * A stopping master takes back its jobs no worker engine has started: those on the wait list
   * and those held (fetched, unmarked) by a live worker engine. Only ids of its own run are
   * touched. Returns the ids taken (their jobs are deleted).
   * KEYS wait, workers, run jobs. ARGV base, mpms base, run prefix (`<runId>.`).
   */
  mpmsTakeBack: {
    keys: 3,
    lua: `
local rcall = redis.call
local base, mb, pfx = ARGV[1], ARGV[2], ARGV[3]
local function mine(id) return string.sub(id, 1, #pfx) == pfx end
local taken = {}
local tomb = '\\0mpms-taken\\0'
local len = rcall('LLEN', KEYS[1])
for start = 0, len - 1, 1000 do
  local chunk = rcall('LRANGE', KEYS[1], start, start + 999)
  for j, id in ipairs(chunk) do
    if mine(id) then
      rcall('LSET', KEYS[1], start + j - 1, tomb)
      taken[#taken + 1] = id
    end
  end
end
if #taken > 0 then rcall('LREM', KEYS[1], 0, tomb) end
for _, w in ipairs(rcall('HKEYS', KEYS[2])) do
  local held = mb .. 'w:' .. w .. ':held'
  for _, id in ipairs(rcall('SMEMBERS', held)) do
    if mine(id) then
      rcall('SREM', held, id)
      taken[#taken + 1] = id
    end
  end
end
for _, id in ipairs(taken) do
  rcall('DEL', base .. id)
  rcall('SREM', KEYS[3], id)
end
return taken`,
  },
} as const;

type ScriptName = keyof typeof SCRIPTS;

/** An ioredis client with the mpms scripts defined (EVALSHA, falling back to EVAL after a Redis restart). */
export type ScriptedRedis = Redis & { [K in ScriptName]: (...args: (string | number)[]) => Promise<unknown> };

export function withScripts(client: Redis): ScriptedRedis {
  for (const [name, s] of Object.entries(SCRIPTS)) {
    if (!(name in client)) client.defineCommand(name, { numberOfKeys: s.keys, lua: s.lua });
  }
  return client as ScriptedRedis;
}

/** Jobs read or written per Redis call (and the Lua `unpack` stays far below its limit). */
export const BATCH = 500;
