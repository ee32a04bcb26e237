/**
 * mpms: a multiprocess x multithread task engine that never hangs and never silently loses a task.
 * Public exports only; see docs/api.md.
 */
export { MPMS, SIGNAL_SHUTDOWN_TIMEOUT_MS, type MPMSEvents, type FinalSummary } from './master/engine.js';
export type { EngineOptions, TaskArgs, TaskExport, TaskOptions, TaskReturn, TypedCollector, TypedTaskResult } from './typed.js';
export { taskContext } from './thread/context.js';
export {
  WorkerGracefulDie,
  UnrecoverableError,
  TaskTimeoutError,
  WorkerCrashedError,
  TaskCancelledError,
  QueueFullError,
  ConfigError,
  SerializationError,
  EngineStateError,
  WorkerStartError,
} from './errors.js';
export { OPTION_SPECS, type MPMSOptions, type Collector, type OptionSpec } from './options.js';
export type { ProgressInfo, RunningTask, Meta, TaskResult, Summary, Metrics, Percentiles, TaskStatus, RestartReason, TaskContext, HookContext, SubmitOptions } from './types.js';
