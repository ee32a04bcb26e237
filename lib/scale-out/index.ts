/**
 * `mpms/bullmq`: scale-out over BullMQ on Redis. A separate entry point so that `bullmq` (an
 * optional peer dependency) is loaded only by those who use it. See docs/scale-out.md.
 */
export { bullmqTransport, type BullmqTransportOptions } from './bullmq-transport.js';
export { serveQueue, type WorkerEngine, type WorkerEngineOptions } from './worker-engine.js';
export type { RedisConnection } from './connection.js';
export type { Transport, TransportHost, OutgoingTask, RemoteOutcome, RemotePlace, AdoptedTask } from '../transport/types.js';
