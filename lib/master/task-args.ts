/** What `submit()` checks and prepares before a task is accepted: its options, and its arguments as they travel. */
import v8 from 'node:v8';
import { ConfigError, SerializationError } from '../errors.js';
import type { WireArgs } from '../protocol.js';
import type { SubmitOptions } from '../types.js';

/** @throws ConfigError listing every bad option of one `submit()`. */
export function checkSubmitOptions(options: SubmitOptions): void {
  const problems: string[] = [];
  const t = options.timeout;
  if (t !== undefined && !(typeof t === 'number' && t > 0 && Number.isFinite(t))) {
    problems.push(`\`timeout\` must be a finite number > 0, got ${String(t)}`);
  }
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) problems.push('`signal` must be an AbortSignal');
  if (options.meta !== undefined && (options.meta === null || typeof options.meta !== 'object')) {
    problems.push('`meta` must be an object');
  }
  if (problems.length) throw new ConfigError(problems);
}

/**
 * The arguments as they travel (see `TaskWire`): as they are when all are primitives, else
 * serialized once here. Fails fast, at the put() that caused it, for an argument no child
 * could receive.
 */
export function toWireArgs(args: unknown[]): WireArgs {
  let plain = true;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const t = typeof a;
    if (t === 'function' || t === 'symbol') throw new SerializationError(`argument ${i} is a ${t} and cannot be sent to a child process`);
    if (t === 'object' && a !== null) plain = false;
  }
  if (plain) return args.length === 1 ? (args[0] as WireArgs) : args;
  try {
    return v8.serialize(args);
  } catch (err) {
    throw new SerializationError(`an argument cannot be sent to a child process: ${(err as Error).message}`, { cause: err });
  }
}
