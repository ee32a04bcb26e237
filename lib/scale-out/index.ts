/**
 * `mpms/bullmq`: scale-out over BullMQ on Redis. A separate entry point so that `bullmq` (an
 * optional peer dependency) is loaded only by those who use it. See docs/scale-out.md.
 */
export { bullmqTransport, type BullmqTransport, type BullmqTransportOptions } from './bullmq-transport.js';
export { serveQueue, type ServeStats, type WorkerEngine, type WorkerEngineOptions, type WorkerHealth } from './worker-engine.js';
export { readFleet, type FleetStatus, type FleetWorker } from './fleet.js';
export { redisFromSources, type RedisConnection, type RedisSources } from './connection.js';
export type { Transport, TransportHost, OutgoingTask, RemoteOutcome, RemotePlace, AdoptedTask } from '../transport/types.js';
