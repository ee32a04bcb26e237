/** Loading the user's worker module, the same way in the child (for process hooks) and in each thread. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

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
  let ns: Record<string, unknown>;
  try {
    ns = (await import(url)) as Record<string, unknown>;
  } catch (err) {
    throw locateSyntaxError(err, url);
  }
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

/** The `file:line` block Node prints above a SyntaxError: location, source line, caret. */
const LOCATION_BLOCK = /^((?:file:\/\/|\/|[A-Za-z]:\\)[^\n]*:\d+)\n[^\n]*\n[^\n]*\^[^\n]*/;

/** Relative static imports of an ES module's source (`import ... from './x.js'`, `import './x.js'`, `export ... from`). */
const RELATIVE_IMPORT = /(?:^|[;\s])(?:import|export)\s*(?:[^'";]*?\sfrom\s*)?['"](\.{1,2}\/[^'"]+)['"]/g;
/** A syntax check spawns a process: at most this many files are checked for one failure. */
const MAX_CHECKS = 20;

/** `node --check` (syntax only: nothing runs) of one file: its location block, '' when it parses, undefined when unknown. */
function checkSyntax(file: string): string | undefined {
  const check = spawnSync(process.execPath, ['--check', file], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'ignore', 'pipe'] });
  if (check.status === 0) return '';
  return LOCATION_BLOCK.exec(check.stderr ?? '')?.[0];
}

/** The first file with a syntax error among `file` and the modules it imports by relative path, breadth first. */
function findSyntaxError(file: string): string | undefined {
  const queue = [file];
  const seen = new Set(queue);
  for (let checks = 0; queue.length > 0 && checks < MAX_CHECKS; checks++) {
    const next = queue.shift()!;
    const block = checkSyntax(next);
    if (block) return block;
    if (block === undefined) return undefined;
    let source: string;
    try {
      source = fs.readFileSync(next, 'utf8');
    } catch {
      continue;
    }
    for (const m of source.matchAll(RELATIVE_IMPORT)) {
      const dep = path.resolve(path.dirname(next), m[1]!);
      if (!seen.has(dep) && /\.(m|c)?js$/.test(dep)) (seen.add(dep), queue.push(dep));
    }
  }
  return undefined;
}

/**
 * Gives a SyntaxError of the worker module its file and line, as `node file.mjs` shows them.
 * Node puts them on a CommonJS module's error, but not on an ES module's caught by `import()`:
 * for that one, `node --check` finds them — in the module, or in a module it imports by a
 * relative path. Only on this failure path.
 */
function locateSyntaxError(err: unknown, url: string): unknown {
  if (!(err instanceof SyntaxError) || !url.startsWith('file:')) return err;
  let block = LOCATION_BLOCK.exec(err.stack ?? '')?.[0];
  const file = fileURLToPath(url);
  if (!block && /\.(m|c)?js$/.test(file)) {
    block = findSyntaxError(file);
    if (block) err.stack = `${block}\n\n${err.stack}`;
  }
  if (block) err.message += ` (${block.slice(0, block.indexOf('\n'))})`;
  return err;
}
