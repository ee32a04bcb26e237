/**
 * The exports a thread calls for tasks that name one (`submit(args, { export })`): each is
 * resolved once per thread and kept, and so is the reason a name cannot be called.
 */
import { taskFunction, type WorkerModule } from '../shared/worker-module.js';

type TaskFn = (...args: unknown[]) => unknown;

export class Exports {
  private readonly resolved = new Map<string, TaskFn | string>();

  constructor(
    private readonly mod: WorkerModule,
    private readonly url: string,
  ) {}

  /**
   * The function exported as `name`.
   * @throws Error saying the export is missing or not a function: that task settles `error`, nothing else is affected.
   */
  get(name: string): TaskFn {
    let fn = this.resolved.get(name);
    if (fn === undefined) {
      fn = taskFunction(this.mod, name, this.url);
      this.resolved.set(name, fn);
    }
    if (typeof fn === 'string') throw new Error(fn);
    return fn;
  }
}
