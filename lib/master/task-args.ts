/** What `submit()` prepares before a task is accepted: its arguments as they travel (its options: task-options.ts). */
import v8 from 'node:v8';
import { SerializationError } from '../errors.js';
import type { WireArgs } from '../protocol.js';

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
