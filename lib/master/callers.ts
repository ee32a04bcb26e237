/**
 * Who is calling: used only where the answer decides between waiting and a deadlock, i.e. when
 * a `put()` must wait, or `join()`/a shutdown is called, while the result consumer (collector or
 * `iterResults()` reader) holds an outcome. The consumer is recognised by a function among the
 * frames of the engine method's continuation: the engine's own frame that awaits the collector's
 * promise, or the function that reads `iterResults()`. V8 appends the functions awaiting the
 * current one ("async" frames) once their promises are linked, so a call the consumer awaits
 * through `await`, helpers, `Promise.all`, `.then` or a returned promise is found; one made from a
 * timer or an event callback, which no promise links to the consumer, is not
 * (docs/guarantees.md, "User code").
 *
 * Why not AsyncLocalStorage: on Node 20 it hooks every promise in the process; measured on a
 * no-op P2×T2 run it costs the master ~0.75 µs of CPU per task. A stack is read here only on the
 * rare slow paths above (a capture is ~2-5 µs).
 */
import { fileURLToPath } from 'node:url';

/** A function's identity: its file and the position of its definition (survives renaming by bundlers). */
export type FrameKey = string;

interface CallSite {
  getFileName(): string | null | undefined;
  getEnclosingLineNumber?(): number | null;
  getEnclosingColumnNumber?(): number | null;
  getLineNumber(): number | null;
  getColumnNumber(): number | null;
}

/** Deep enough for a consumer a few helpers away; async frames count towards the limit too. */
const STACK_LIMIT = 200;

function keyOf(cs: CallSite): FrameKey | undefined {
  const file = cs.getFileName();
  if (!file) return undefined;
  // getEnclosing* give the position of the function itself, whatever line of it is running.
  const line = cs.getEnclosingLineNumber?.() ?? null;
  const col = cs.getEnclosingColumnNumber?.() ?? null;
  return line === null ? undefined : `${file}:${line}:${col ?? 0}`;
}

/** The call sites of the current stack, sync and async, innermost first; [] if V8 gives none. */
function callSites(): CallSite[] {
  const limit = Error.stackTraceLimit;
  const prepare = Error.prepareStackTrace;
  try {
    Error.stackTraceLimit = STACK_LIMIT;
    Error.prepareStackTrace = (_err, sites) => sites;
    const holder: { stack?: unknown } = {};
    Error.captureStackTrace(holder, callSites);
    return Array.isArray(holder.stack) ? (holder.stack as CallSite[]) : [];
  } catch {
    return [];
  } finally {
    Error.stackTraceLimit = limit;
    Error.prepareStackTrace = prepare;
  }
}

/** Keys of every function on the current stack (sync and async frames). */
export function stackKeys(): Set<FrameKey> {
  const out = new Set<FrameKey>();
  for (const cs of callSites()) {
    const k = keyOf(cs);
    if (k) out.add(k);
  }
  return out;
}

/**
 * The key of the innermost function on the stack that is not defined under `ownDir` (a file
 * URL): the user's function that called into the engine. V8 names a file by its URL under
 * Node's own ESM loader and by its path under other loaders (vitest's), so both are checked.
 */
export function firstForeignKey(ownDir: string): FrameKey | undefined {
  const ownPath = fileURLToPath(ownDir);
  for (const cs of callSites()) {
    const file = cs.getFileName();
    if (!file || file.startsWith(ownDir) || file.startsWith(ownPath) || file.startsWith('node:')) continue;
    const k = keyOf(cs);
    if (k) return k;
  }
  return undefined;
}

/** The key of the function that calls `ownKey()`. */
export function ownKey(): FrameKey | undefined {
  const sites = callSites();
  // sites[0] is ownKey itself.
  return sites[1] ? keyOf(sites[1]) : undefined;
}
