/**
 * `mpms run <worker-module>`: JSONL tasks in, JSONL outcomes out, through one engine.
 *
 * Memory stays bounded whatever the input size: lines are read one at a time and each waits in
 * `put()` while the engine's queue is full; outcomes are written as they settle, and a slow
 * output (a full pipe, a slow disk) pauses the result iterator, which pauses dispatch, which
 * fills the queue, which pauses reading. Nothing here buffers without limit.
 */
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { ConfigError, WorkerStartError } from '../errors.js';
import { MPMS } from '../index.js';
import { countByStatus } from '../protocol.js';
import { unsendable } from '../shared/outcomes.js';
import type { Meta, Summary, TaskStatus } from '../types.js';
import { describeConfigError, parseRunArgs, runHelp, UsageError, type RunArgs } from './args.js';
import { encodeJson, errorFields } from './encode.js';
import { countTaskLines, readEarlierRun, type EarlierRun } from './lines.js';
import { createProgress, type ProgressDisplay } from './progress.js';
import { formatFinalTable, formatStatsLine, plural } from './stats.js';

/** How long the first SIGINT/SIGTERM lets running tasks finish before they are cancelled. */
export const SHUTDOWN_TIMEOUT_MS = 10_000;
/** Bad input lines reported one by one; past this, only counted, so a wrong file cannot flood the terminal. */
const MAX_BAD_LINE_REPORTS = 20;
/** The start-up phases whose failure is the caller's mistake (wrong file, wrong export), not a runtime fault. */
const USAGE_PHASES = new Set(['load', 'export']);

/** Prints a usage error the way every `mpms` usage error looks, and returns exit code 2. */
export function usageError(message: string, command: string | null = 'run'): 2 {
  const who = command ? `mpms ${command}` : 'mpms';
  process.stderr.write(`${who}: ${message}\nTry '${who} --help'.\n`);
  return 2;
}

/**
 * One output line for one outcome: `{"line","taskId","status","result","runMs"}` when ok (with
 * `"args"` after `taskId` when `echoArgs`), with `"error":{"name","message",...own fields}`
 * instead of `result` otherwise. Values JSON has no form for follow the rule in encode.ts. A
 * result no rule covers (a circular structure) becomes an error line, so it is reported rather
 * than mangled; `serializable` is then false.
 */
export function formatOutcome(meta: Meta, result: unknown, options: { echoArgs?: boolean } = {}): { line: string; serializable: boolean } {
  const runMs = typeof meta.runMs === 'number' && meta.runMs >= 0 ? meta.runMs : null;
  const head: Record<string, unknown> = { line: meta.line, taskId: meta.taskId };
  if (options.echoArgs) head.args = meta.args;
  if (meta.status === 'ok') {
    try {
      return { line: encodeJson({ ...head, status: 'ok', result, runMs }) + '\n', serializable: true };
    } catch (err) {
      const error = unsendable(`task ${meta.taskId} succeeded but its result cannot be written as JSON: ${(err as Error).message}`);
      return { line: encodeJson({ ...head, status: 'error', error, runMs }) + '\n', serializable: false };
    }
  }
  let line: string;
  try {
    line = encodeJson({ ...head, status: meta.status, error: errorFields(result), runMs });
  } catch {
    // An own field of the error no rule covers (circular): its name and message still say what happened.
    const { name, message } = errorFields(result);
    line = encodeJson({ ...head, status: meta.status, error: { name, message }, runMs });
  }
  return { line: line + '\n', serializable: true };
}

/** Resolves when `stream` can take more, or can take nothing ever again (error, close). */
function waitDrain(stream: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      stream.off('error', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
    stream.on('error', done);
  });
}

/** Why the worker argument cannot be a module, or undefined when it can (or cannot be checked: data:, node:). */
async function checkWorker(worker: string): Promise<string | undefined> {
  // Same schemes that lib/shared/worker-module.ts passes through untouched.
  if (/^(data|node):/.test(worker)) return undefined;
  let file: string;
  try {
    file = worker.startsWith('file:') ? fileURLToPath(worker) : path.resolve(worker);
  } catch (err) {
    return `bad worker module URL ${JSON.stringify(worker)}: ${(err as Error).message}`;
  }
  try {
    const st = await fs.promises.stat(file);
    if (st.isDirectory()) return `worker module ${JSON.stringify(worker)} is a directory; give the module file`;
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const where = file === worker ? '' : ` (looked for ${file})`;
    return code === 'ENOENT' ? `worker module not found: ${worker}${where}` : `cannot read worker module ${worker}${where}: ${(err as Error).message}`;
  }
}

function describeOpenError(flag: string, file: string, err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const why = e.code === 'ENOENT' ? 'no such file or directory' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EISDIR' ? 'is a directory' : e.message;
  return `cannot open ${flag} ${file}: ${why}`;
}

function formatSummary(s: Summary): string {
  const secs = s.durationMs / 1000;
  const rate = secs > 0 ? s.total / secs : 0;
  return `mpms: ${plural(s.total, 'task')} in ${secs.toFixed(2)} s (${rate.toFixed(1)} tasks/s): ${s.ok} ok, ${s.error} error, ${s.timeout} timeout, ${s.crashed} crashed, ${s.cancelled} cancelled`;
}

/** The input side, opened before any process starts. */
interface OpenedInput {
  stream: Readable;
  /** A regular file: its task lines can be counted up front, for a true progress total. */
  countable: boolean;
}

async function openInput(file: string): Promise<OpenedInput | string> {
  if (file === '-') return { stream: process.stdin, countable: false };
  let handle: fs.promises.FileHandle | undefined;
  try {
    handle = await fs.promises.open(file, 'r');
    const st = await handle.stat();
    if (st.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    return { stream: handle.createReadStream(), countable: st.isFile() };
  } catch (err) {
    await handle?.close();
    return describeOpenError('--input', file, err);
  }
}

/** What --resume found in the output file, or why it cannot resume from it. */
async function readResume(file: string): Promise<EarlierRun | string> {
  let earlier: EarlierRun;
  try {
    earlier = await readEarlierRun(file);
  } catch (err) {
    return `--resume: ${describeOpenError('--output', file, err).replace(/^cannot open --output /, 'cannot read ')}`;
  }
  // Appending to a file of another format would mix two kinds of lines, and skip nothing.
  if (earlier.notJson > 0) return `--resume: ${file} has ${plural(earlier.notJson, 'line')} that ${earlier.notJson === 1 ? 'is' : 'are'} not JSON: it is not an output of mpms run`;
  if (earlier.withoutLine > 0) {
    return `--resume: ${file} has ${plural(earlier.withoutLine, 'ok line')} without a "line" field (written by an older mpms?): which input lines they belong to is unknown`;
  }
  return earlier;
}

/**
 * Runs `mpms run` with the arguments that follow `run`, and resolves with the exit code:
 * 0 when the whole input ran and every task is ok, 1 when anything is not, 2 on bad usage.
 * It never calls `process.exit()`: it returns once every handle it opened is closed.
 */
export async function runCommand(argv: readonly string[]): Promise<number> {
  let args: RunArgs;
  try {
    args = parseRunArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message);
    throw err;
  }
  if (args.help) {
    process.stdout.write(runHelp() + '\n');
    return 0;
  }

  const workerProblem = await checkWorker(args.worker);
  if (workerProblem) return usageError(workerProblem);

  const logSink = new LogSink();
  let engine: MPMS;
  try {
    engine = new MPMS({ ...args.engine, worker: args.worker, logger: pino({ level: 'warn' }, logSink), workerStdout: args.output === '-' ? 'stderr' : 'inherit' });
  } catch (err) {
    if (err instanceof ConfigError) return usageError(describeConfigError(err));
    throw err;
  }

  if (args.input !== '-' && args.output !== '-' && path.resolve(args.input) === path.resolve(args.output)) {
    // Opening the output truncates it: the input would be gone before its first line was read.
    return usageError(`--input and --output are the same file (${args.input})`);
  }
  // Open both ends before starting any process, so a typo in a path costs nothing.
  const input = await openInput(args.input);
  if (typeof input === 'string') return usageError(input);
  let earlier: EarlierRun | undefined;
  if (args.resume) {
    const found = await readResume(args.output);
    if (typeof found === 'string') {
      input.stream.destroy();
      return usageError(found);
    }
    earlier = found;
  }
  let out: Writable;
  if (args.output === '-') {
    out = process.stdout;
  } else {
    try {
      // --resume appends after the lines of the earlier run; otherwise the file starts afresh.
      out = (await fs.promises.open(args.output, args.resume ? 'a' : 'w')).createWriteStream();
    } catch (err) {
      input.stream.destroy();
      return usageError(describeOpenError('--output', args.output, err));
    }
  }

  return new Runner(engine, args, input, out, logSink, earlier).run();
}

const LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

/** `msg` and the error's message, each said once (pino's message of an error already includes its causes'). */
export function logText(msg: string, errMessage: string | undefined): string {
  if (!errMessage || msg.includes(errMessage)) return msg;
  if (!msg || errMessage.startsWith(msg)) return errMessage;
  return `${msg}: ${errMessage}`;
}

/**
 * Where the engine's pino logs go: one readable line each, through the progress display so a
 * warning never lands in the middle of the bar. (Raw pino JSON suits log collectors, not a
 * person watching a terminal; a program should read the results file, not stderr.)
 */
class LogSink {
  display: ProgressDisplay | undefined;

  write(line: string): void {
    let text = line.trimEnd();
    try {
      const rec = JSON.parse(text) as Record<string, unknown>;
      const where = ['processIndex', 'threadIndex', 'taskId']
        .filter((k) => rec[k] !== undefined)
        .map((k) => `${k}=${String(rec[k])}`)
        .join(' ');
      const err = rec.err as { message?: string } | undefined;
      text = `mpms: ${LEVELS[rec.level as number] ?? 'log'}: ${logText(String(rec.msg ?? ''), err?.message)}${where ? ` [${where}]` : ''}`;
    } catch {
      // Not JSON after all: show it as it came.
    }
    if (this.display) this.display.log(text);
    else process.stderr.write(text + '\n');
  }
}

/** How the start failed, as a person reads it: the message, and where a syntax error is (as node shows it). */
function describeStartError(err: WorkerStartError): string {
  const cause = (err as { cause?: { stack?: unknown } }).cause;
  const stack = typeof cause?.stack === 'string' ? cause.stack : '';
  // A SyntaxError carries its file:line, source line and caret above its own first line.
  const block = /^((?:file:\/\/|\/|[A-Za-z]:\\)[^\n]*:\d+\n[^\n]*\n[^\n]*\^[^\n]*)\n/.exec(stack);
  return `mpms run: the worker could not start: ${err.message}${block ? `\n${block[1]}` : ''}\n`;
}

class Runner {
  private readonly counts: Record<TaskStatus, number> = countByStatus();
  private outcomes = 0;
  private unwritable = 0;
  private badLines = 0;
  /** Input lines skipped because the earlier run (--resume) has an ok line for them. */
  private resumed = 0;
  /** Task lines met in the input (blank and resumed lines excluded), bad JSON included. */
  private taskLines = 0;
  /** The number of task lines of this run: counted up front for a file, exact once the input is read to its end. */
  private total: number | undefined;
  private reading = true;
  /** Every input line was read (EOF), so an interruption after it left nothing unread. */
  private inputComplete = false;
  private started = false;
  private stopRequested = false;
  private interruptedBy: NodeJS.Signals | undefined;
  private signals = 0;
  private shutdown: Promise<Summary> | undefined;
  private rl: readline.Interface | undefined;
  private inputError: Error | undefined;
  private feedError: Error | undefined;
  private outputError: Error | undefined;
  private readonly progress: ProgressDisplay;
  private readonly onSignal = (sig: NodeJS.Signals) => this.signal(sig);
  private readonly onOutputError = (err: Error) => {
    if (this.outputError) return;
    this.outputError = err;
    this.progress.log(`mpms: cannot write results to ${this.args.output === '-' ? 'stdout' : this.args.output}: ${err.message}; stopping`);
    // Every result from here on would be lost: running more tasks only wastes their work.
    this.requestStop();
  };
  private readonly onInputError = (err: Error) => {
    this.inputError ??= err;
  };
  private readonly input: Readable;

  constructor(
    private readonly engine: MPMS,
    private readonly args: RunArgs,
    opened: OpenedInput,
    private readonly out: Writable,
    logSink: LogSink,
    private readonly earlier: EarlierRun | undefined,
  ) {
    this.input = opened.stream;
    if (opened.countable) this.countInput();
    this.progress = createProgress(
      args.progress,
      {
        done: () => this.outcomes + this.badLines,
        total: () => this.total,
        ok: () => this.counts.ok,
        failed: () => this.counts.error + this.counts.timeout + this.counts.crashed,
        cancelled: () => this.counts.cancelled,
        bad: () => this.badLines,
      },
      { stderr: process.stderr, resultsOnTty: args.output === '-' && process.stdout.isTTY === true },
    );
    logSink.display = this.progress;
  }

  /** Counts the input file's task lines beside the run (a second, streaming read), for the progress total. */
  private countInput(): void {
    countTaskLines(this.args.input, this.earlier?.ok).then(
      (n) => {
        // The reader may have finished first: its count is exact, keep it.
        if (!this.inputComplete) this.total = n;
      },
      () => {
        // Only the progress total is lost: the run itself reads the input on its own.
      },
    );
  }

  async run(): Promise<number> {
    // Never removed: a late EPIPE on stdout after the run must not become an uncaught exception.
    this.out.on('error', this.onOutputError);
    this.input.on('error', this.onInputError);
    // Installed before start(): a Ctrl+C during a slow start-up must still shut down in order.
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
    try {
      return await this.runStarted();
    } finally {
      process.off('SIGINT', this.onSignal);
      process.off('SIGTERM', this.onSignal);
      this.progress.stop();
    }
  }

  private async runStarted(): Promise<number> {
    try {
      await this.engine.start();
    } catch (err) {
      this.closeInput();
      await this.closeOutput();
      if (err instanceof WorkerStartError) {
        const phase = err.phase;
        process.stderr.write(describeStartError(err));
        return phase !== undefined && USAGE_PHASES.has(phase) ? 2 : 1;
      }
      process.stderr.write(`mpms run: the engine could not start: ${(err as Error).message}\n`);
      return 1;
    }
    this.started = true;
    if (this.stopRequested) this.requestStop();
    if (this.signals > 1) void this.engine.terminate();
    if (this.args.input === '-' && process.stdin.isTTY && !this.stopRequested) {
      this.progress.log('mpms: reading tasks from the terminal, one JSON line each (end with Ctrl+D)');
    }
    if (this.earlier && this.earlier.ok.size > 0) {
      this.progress.log(`mpms: --resume: ${plural(this.earlier.ok.size, 'input line')} already ok in ${this.args.output}; running the rest`);
    }
    if (this.earlier && this.earlier.tornBytes > 0) {
      this.progress.log(`mpms: --resume: cut an incomplete last line (${this.earlier.tornBytes} bytes) off ${this.args.output}; its task runs again`);
    }
    this.progress.start();
    const stopStats = this.startStats();

    const consuming = this.consume();
    await this.feed();
    const summary = await this.engine.join();
    await consuming;
    stopStats();
    await this.closeOutput();
    this.progress.stop();
    return this.report(summary);
  }

  /** Prints the summary, the notes and the table; returns the exit code. */
  private report(summary: Summary): number {
    const err = process.stderr;
    if (this.outcomes !== summary.total) {
      // Exactly one outcome per task is the engine's promise; say so loudly if it was broken.
      err.write(`mpms: warning: the engine reported ${plural(summary.total, 'task')} but ${plural(this.outcomes, 'outcome')} reached the output\n`);
    }
    const notes: string[] = [];
    // Informational only: a signal after the whole input was read may still end in a clean run.
    const info: string[] = [];
    if (this.interruptedBy) (this.inputComplete ? info : notes).push(`interrupted by ${this.interruptedBy}${this.inputComplete ? ' after the whole input was read' : '; the rest of the input was not read'}`);
    if (this.badLines > 0) notes.push(`${plural(this.badLines, 'input line')} not valid JSON (skipped)`);
    if (this.unwritable > 0) notes.push(`${plural(this.unwritable, 'result')} not writable as JSON (reported as errors)`);
    if (this.inputError) notes.push(`reading the input failed: ${this.inputError.message}`);
    if (this.feedError) notes.push(`the engine stopped taking tasks: ${this.feedError.message}`);
    if (this.outputError) notes.push('results were lost: the output failed');
    if (this.earlier) info.push(`${plural(this.resumed, 'input line')} already ok in ${this.args.output} (skipped)`);
    if (this.earlier && this.inputComplete && this.earlier.ok.size > this.resumed) {
      const stray = this.earlier.ok.size - this.resumed;
      info.push(`warning: ${plural(stray, 'ok line')} in ${this.args.output} match${stray === 1 ? 'es' : ''} no input line: was it written for this input?`);
    }
    const clean = summary.ok === summary.total && notes.length === 0 && this.outcomes === summary.total;
    if (!clean && this.args.output !== '-' && (this.interruptedBy || summary.cancelled > 0 || this.outputError)) {
      info.push('to finish the job, run the same command again with --resume');
    }
    const all = [...notes, ...info];
    err.write(formatSummary(summary) + (all.length ? `\nmpms: ${all.join('; ')}` : '') + '\n');
    err.write(formatFinalTable(summary, this.engine.metrics()) + '\n');
    return clean ? 0 : 1;
  }

  /** Prints `--stats` lines until the returned function is called; a no-op without `--stats`. */
  private startStats(): () => void {
    const every = this.args.stats;
    if (every === undefined) return () => {};
    const t0 = Date.now();
    let last = { at: t0, finished: 0 };
    const slots = this.args.engine.concurrency ?? 1;
    const timer = setInterval(() => {
      const m = this.engine.metrics();
      const now = Date.now();
      const recent = now > last.at ? ((m.finished - last.finished) * 1000) / (now - last.at) : 0;
      last = { at: now, finished: m.finished };
      this.progress.log(formatStatsLine(m, now - t0, recent, slots));
    }, every);
    // The stats must never be what keeps the process alive.
    timer.unref();
    return () => clearInterval(timer);
  }

  /** Reads the input line by line and puts one task per line, waiting while the queue is full. */
  private async feed(): Promise<void> {
    if (this.stopRequested) {
      this.reading = false;
      this.engine.close();
      return;
    }
    const rl = readline.createInterface({ input: this.input, crlfDelay: Infinity });
    this.rl = rl;
    let lineNo = 0;
    let broke = false;
    try {
      for await (const raw of rl) {
        lineNo++;
        if (this.stopRequested) {
          broke = true;
          break;
        }
        if (!(await this.feedLine(lineNo, raw))) {
          broke = true;
          break;
        }
      }
      // A shutdown ends the loop by closing the reader, without a break: that is not the end of the input.
      this.inputComplete = !broke && !this.stopRequested;
      // Read to its end: the lines met are the exact total (the up-front count may have raced a growing file).
      if (this.inputComplete) this.total = this.taskLines;
    } catch (err) {
      this.inputError ??= err as Error;
    } finally {
      this.reading = false;
      rl.close();
    }
    if (this.inputError) this.progress.log(`mpms: reading the input failed after line ${lineNo}: ${this.inputError.message}`);
    if (this.stopRequested || this.feedError || this.inputError) this.closeInput();
    this.engine.close();
  }

  /** Puts the task of one input line (if it is one). False when intake must stop. */
  private async feedLine(lineNo: number, raw: string): Promise<boolean> {
    // A UTF-8 BOM (Windows editors) would make the first line unparsable.
    const text = (lineNo === 1 ? raw.replace(/^\uFEFF/, '') : raw).trim();
    if (text.length === 0) return true;
    if (this.earlier?.ok.has(lineNo)) {
      this.resumed++;
      return true;
    }
    this.taskLines++;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      this.badLine(lineNo, text, err as Error);
      return true;
    }
    try {
      const named = namedExportLine(value);
      const id = await (named
        ? this.engine.submit(named.args, { export: named.export, meta: { line: lineNo } })
        : this.engine.submit(Array.isArray(value) ? value : [value], { meta: { line: lineNo } }));
      // Not accepted because a shutdown had begun (put() resolves undefined then): expected, not a fault.
      return id !== undefined;
    } catch (err) {
      // A put rejected while a shutdown is under way: expected, not a fault.
      if (this.stopRequested) return false;
      this.feedError = err as Error;
      this.progress.log(`mpms: input line ${lineNo} was not accepted, stopping intake: ${(err as Error).message}`);
      return false;
    }
  }

  private badLine(lineNo: number, text: string, err: Error): void {
    this.badLines++;
    if (this.badLines <= MAX_BAD_LINE_REPORTS) {
      const shown = text.length > 60 ? `${text.slice(0, 57)}...` : text;
      this.progress.log(`mpms: input line ${lineNo} is not valid JSON (${err.message}); skipped: ${shown}`);
    } else if (this.badLines === MAX_BAD_LINE_REPORTS + 1) {
      this.progress.log('mpms: more input lines are not valid JSON; counting them without reporting each');
    }
  }

  /** Writes one line per outcome as it settles, waiting for the output to drain when it is full. */
  private async consume(): Promise<void> {
    try {
      for await (const { meta, result } of this.engine.iterResults()) {
        this.outcomes++;
        this.counts[meta.status]++;
        if (this.outputError) continue;
        const { line, serializable } = formatOutcome(meta, result, { echoArgs: this.args.echoArgs });
        if (!serializable) this.unwritable++;
        if (!this.out.write(line)) await waitDrain(this.out);
      }
    } catch (err) {
      // Not expected. Stopping is the only safe answer: outcomes would otherwise be lost silently.
      this.outputError ??= err as Error;
      this.progress.log(`mpms: internal error while reading outcomes: ${(err as Error).message}; stopping`);
      this.requestStop();
    }
  }

  private signal(sig: NodeJS.Signals): void {
    this.signals++;
    if (this.signals === 1) {
      this.interruptedBy = sig;
      const intake = this.reading ? 'stopped reading input; ' : '';
      this.progress.log(
        `mpms: ${sig}: ${intake}cancelling the tasks that have not started, letting running ones finish (up to ${SHUTDOWN_TIMEOUT_MS / 1000} s). Send it again to stop at once.`,
      );
      this.requestStop();
    } else {
      this.progress.log(`mpms: ${sig} again: stopping now; unfinished tasks are cancelled`);
      // terminate() during start() would leave start() waiting out its own bound; run() terminates right after start() instead.
      if (!this.started) return;
      void this.engine.terminate().catch((err: Error) => process.stderr.write(`mpms: terminate failed: ${err.message}\n`));
    }
  }

  /** Stops intake and starts the graceful shutdown (once). Before start() resolves, it only marks the request. */
  private requestStop(): void {
    this.stopRequested = true;
    this.reading = false;
    this.closeInput();
    if (!this.started || this.shutdown) return;
    this.shutdown = this.engine.gracefulShutdown({ timeout: SHUTDOWN_TIMEOUT_MS });
    this.shutdown.catch((err: Error) => process.stderr.write(`mpms: shutdown failed: ${err.message}\n`));
  }

  /** Stops reading. Destroying the stream (stdin too) releases its handle, so it cannot keep the process alive. */
  private closeInput(): void {
    this.rl?.close();
    if (!this.input.destroyed) this.input.destroy();
  }

  private async closeOutput(): Promise<void> {
    const out = this.out;
    if (out === process.stdout) {
      // stdout is never ended (other code may still write to it); only wait until it took our lines.
      if (out.writableNeedDrain && !this.outputError) await waitDrain(out);
      return;
    }
    if (out.destroyed) return;
    out.end();
    try {
      await finished(out);
    } catch (err) {
      this.onOutputError(err as Error);
    }
  }
}

/**
 * An input line `{"export": "name", "args": [...]}` (exactly these two keys): that export is
 * called with those arguments. Any other object stays one argument, as before.
 */
function namedExportLine(value: unknown): { export: string; args: unknown[] } | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const v = value as Record<string, unknown>;
  const keys = Object.keys(v);
  if (keys.length !== 2 || typeof v.export !== 'string' || !Array.isArray(v.args)) return undefined;
  return { export: v.export, args: v.args };
}
