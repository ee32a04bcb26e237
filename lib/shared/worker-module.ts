/** Loading the user's worker module, the same way in the child (for process hooks) and in each thread. */
import path from 'node:path';
import { pathToFileURL } from 'node:url';

/** Turns the `worker` setting (a path relative to cwd, an absolute path, or a URL) into an import specifier. */
export function moduleUrl(worker: string, cwd = process.cwd()): string {
  if (/^(file|data|node):/.test(worker)) return worker;
  return pathToFileURL(path.resolve(cwd, worker)).href;
}

export type Hook = (ctx: unknown) => unknown;

export interface WorkerModule {
  ns: Record<string, unknown>;
  hook(name: 'processInitializer' | 'processFinalizer' | 'threadInitializer' | 'threadFinalizer'): Hook | undefined;
}

/** Imports the module. Throws what the import threw (missing file, syntax error, a throw at load). */
export async function loadWorkerModule(url: string): Promise<WorkerModule> {
  const ns = (await import(url)) as Record<string, unknown>;
  return {
    ns,
    hook(name) {
      const h = ns[name] ?? (ns.default as Record<string, unknown> | undefined)?.[name];
      return typeof h === 'function' ? (h as Hook) : undefined;
    },
  };
}

/** The task function, or a message saying precisely why there is none. */
export function taskFunction(mod: WorkerModule, exportName: string, url: string): ((...args: unknown[]) => unknown) | string {
  let fn = mod.ns[exportName];
  // A CommonJS module's `module.exports = fn` arrives as `default`; its named exports hang off it.
  if (fn === undefined && exportName !== 'default') fn = (mod.ns.default as Record<string, unknown> | undefined)?.[exportName];
  if (fn === undefined) {
    const names = Object.keys(mod.ns).filter((k) => typeof mod.ns[k] === 'function');
    return `worker module ${url} has no export \`${exportName}\` (function exports: ${names.length ? names.join(', ') : 'none'})`;
  }
  if (typeof fn !== 'function') return `export \`${exportName}\` of ${url} is a ${typeof fn}, not a function`;
  return fn as (...args: unknown[]) => unknown;
}
