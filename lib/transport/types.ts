/**
 * The transport seam: where the engine sends tasks when they do not go to its own children.
 *
 * Without a transport the engine runs its local path (children, credit windows, start logs)
 * exactly as before. With one, the master keeps everything that decides outcomes — the ledger,
 * the bounded queue, retries, the result sink, the teardown — and the transport only moves
 * tasks out and outcomes back. A transport never settles a task itself: it reports to the
 * host, and the ledger decides (once).
 */
import type { Logger } from 'pino';

/** A task as the engine hands it to a transport. */
export interface OutgoingTask {
  taskId: number;
  /** 1 for the first run, then one more per retry; a transport keys its jobs by (taskId, attempt). */
  attempt: number;
  args: unknown[];
  /** Hard limit in ms for one run, 0 for none. */
  timeout: number;
}

/** Where a remote outcome was decided, for `meta`. */
export interface RemotePlace {
  /** The serving worker engine, e.g. `host:pid`. */
  worker?: string;
  processIndex?: number;
  threadIndex?: number;
  pid?: number;
}

/** One outcome reported by a transport: `value` is the result when ok, else an ErrorWire. */
export interface RemoteOutcome extends RemotePlace {
  taskId: number;
  attempt: number;
  /** `Code` of lib/protocol.ts (no SERIALIZED bit: the value is already decoded). */
  code: number;
  value: unknown;
  /** Epoch ms; 0 when the task never started (or it is unknown, as for a lost machine). */
  startedAt: number;
  endedAt: number;
}

/** A task found in the transport at start-up that an earlier master of the same run sent (re-attach). */
export interface AdoptedTask {
  taskId: number;
  attempt: number;
  args: unknown[];
  timeout: number;
}

/** What the engine offers a transport. */
export interface TransportHost {
  logger: Logger;
  /** URL of the engine's worker module (`worker`), for a transport that checks what its remote side runs. */
  module: string;
  /** The engine's `export`. */
  exportName: string;
  /** Reports a final outcome of one attempt. Returns false if the engine had no such open attempt (a duplicate). */
  settle(outcome: RemoteOutcome): boolean;
  /** Reports an attempt that was taken back before it started (shutdown, abort): the engine requeues or cancels it. */
  returned(taskId: number, attempt: number): void;
  /** Room opened up (an outcome came back): the engine sends more. */
  wake(): void;
}

/** A task transport. See docs/scale-out.md for the BullMQ one. */
export interface Transport {
  /** For logs and errors. */
  readonly kind: string;
  /** Connects; returns the tasks a previous master of this run left in flight (empty for a new run). */
  start(host: TransportHost): Promise<AdoptedTask[]>;
  /** How many more tasks it takes now (its bound on tasks outstanding). */
  readonly credit: number;
  /** Tasks sent and not yet settled. */
  readonly outstanding: number;
  /** Sends tasks; at most `credit` of them. Must not throw: delivery problems are retried or reported as outcomes. */
  send(tasks: OutgoingTask[]): void;
  /**
   * Stops: takes back unstarted tasks (`host.returned`), waits up to `graceMs` for started ones
   * to report, then disconnects. Bounded by `graceMs` plus a few seconds of network time.
   */
  stop(graceMs: number): Promise<void>;
}
