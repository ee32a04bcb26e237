/**
 * One child process as the master sees it: the forked process, its credit window, and the
 * adaptive batching of tasks sent to it (sent at once when the pipe is idle, coalesced while a
 * send is under way).
 */
import { fork, type ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import { TASK_FIELDS, type ChildInit, type FromChild, type TaskColumns, type ToChild, type WireArgs } from '../protocol.js';
import { deferred } from '../shared/bounded.js';
import { childWindow, RunTimeAverage } from '../shared/windows.js';

/** The longest the exit accounting waits for a dead child's IPC channel to be drained. */
const CHANNEL_DRAIN_MS = 1000;

const CHILD_ENTRY = new URL('../child/entry.js', import.meta.url);

export type ChildState = 'starting' | 'ready' | 'retiring' | 'stopping' | 'exited';

export class ChildHandle {
  readonly proc: ChildProcess;
  state: ChildState = 'starting';
  /** Tasks sent to this child that have no outcome and were not handed back. */
  inflight = 0;
  readonly spawnedAt = Date.now();
  /** Tasks it settled: a child that dies before settling any counts as a failed start. */
  settledCount = 0;
  /** Resolves when the child reports every thread ready. */
  readonly ready = deferred<void>();
  /** Why it could not start, when it said so. */
  fatal: Error | undefined;
  /** Its threads that can run tasks, as the child last reported (`threads` in protocol.ts). */
  threadsAlive = 0;
  /**
   * Every line about this child, its own relayed lines included. `childPid`, not `pid`: pino's
   * `pid` is the process that writes the line (always the master) and is already in the
   * parent's bindings, so a second `pid` key would make the line ambiguous JSON.
   */
  readonly log: Logger;
  exitCode: number | null = null;
  signal: NodeJS.Signals | null = null;
  /** The process has exited; its exit is accounted for (state 'exited') once its IPC channel is drained. */
  procExited = false;
  /** Resolves once the exit is accounted for: every outcome it sent was read, `onExit` ran. */
  readonly gone = deferred<void>();
  /** Its IPC channel has been read to its end ('disconnect'). */
  private channelClosed = false;
  private afterChannelClosed: (() => void) | undefined;
  /** Tasks waiting for the current send to complete, as columns (see TaskColumns). */
  private outNums: number[] = [];
  private outArgs: WireArgs[] = [];
  /** Export names of the queued tasks (see TaskColumns.exports); undefined while none names one. */
  private outExports: (string | undefined)[] | undefined;
  private sending = false;
  private readonly afterSend = () => {
    this.sending = false;
    this.flush();
  };

  /** Run times of its tasks, which size its window (shared/windows.ts). */
  readonly runTime = new RunTimeAverage();

  constructor(
    readonly index: number,
    private readonly threads: number,
    /** Tasks each thread runs at once. */
    private readonly concurrency: number,
    init: ChildInit,
    onMessage: (child: ChildHandle, msg: FromChild) => void,
    onExit: (child: ChildHandle) => void,
    /** Tasks that could not be serialized for this child; the engine settles them as errors. */
    private readonly onUnsendable: (child: ChildHandle, ids: number[], err: Error) => void,
    stdout: 'inherit' | 'stderr',
    logger: Logger,
  ) {
    this.proc = fork(CHILD_ENTRY, [], {
      serialization: 'advanced',
      // Its own process group: Ctrl+C in a terminal reaches the master only, and a hard kill of
      // the group takes the child's own children (browsers, ffmpeg) with it.
      detached: process.platform !== 'win32',
      stdio: ['ignore', stdout === 'stderr' ? 2 : 'inherit', 'inherit', 'ipc'],
      execArgv: childExecArgv(process.execArgv),
    });
    this.log = logger.child({ processIndex: index, childPid: this.pid });
    this.proc.on('message', (msg: FromChild) => onMessage(this, msg));
    // 'disconnect' comes once the channel read EOF: after every message the child wrote.
    this.proc.once('disconnect', () => {
      this.channelClosed = true;
      this.afterChannelClosed?.();
    });
    this.proc.once('exit', (code, signal) => {
      this.exitCode = code;
      this.signal = signal;
      this.procExited = true;
      // Node may emit 'exit' before it has read the last messages the child wrote to the IPC
      // channel (a busy master): accounting for the exit at once settled `crashed` a task
      // whose outcome was still in the pipe — a graceful die's own task, for one (found by the
      // property suite). So the accounting waits until the channel is drained, bounded in case
      // a descendant holds the channel open; the group is killed first, so none can.
      this.killGroup();
      let timer: NodeJS.Timeout | undefined;
      const accounted = () => {
        if (this.state === 'exited') return;
        clearTimeout(timer);
        this.state = 'exited';
        onExit(this);
        this.gone.resolve();
      };
      if (this.channelClosed) return accounted();
      this.afterChannelClosed = accounted;
      timer = setTimeout(accounted, CHANNEL_DRAIN_MS);
    });
    // An IPC write to a child that just died raises EPIPE here; its exit event does the accounting.
    this.proc.on('error', () => {});
    this.post({ t: 'init', init });
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  /** Tasks it may hold: what its threads may hold plus a hop allowance (shared/windows.ts). */
  get window(): number {
    return childWindow(this.threads, this.concurrency, this.runTime.ms);
  }

  get credit(): number {
    return this.state === 'ready' && !this.procExited ? this.window - this.inflight : 0;
  }

  /**
   * Credit worth a message now: a refill waits until half the window is free (fewer, larger
   * writes: each IPC write wakes another process), unless the child is running low, so a lone
   * task still leaves at once.
   */
  get sendableCredit(): number {
    const credit = this.credit;
    return credit * 2 >= this.window || this.inflight < this.threads * this.concurrency * 2 ? credit : 0;
  }

  /** Queues a task for this child; call `flush()` after queueing a batch. */
  queueTask(id: number, args: WireArgs, timeoutMs: number, attempt: number, exportName: string | undefined): void {
    this.outNums.push(id, timeoutMs, attempt);
    if (exportName !== undefined) {
      this.outExports ??= [];
      this.outExports[this.outArgs.length] = exportName;
    }
    this.outArgs.push(args);
    this.inflight++;
  }

  /** Sends what is queued at once, unless a send is under way (it then leaves after that one). */
  flush(): void {
    if (this.sending || this.outArgs.length === 0 || this.state === 'exited' || this.procExited) return;
    const tasks: TaskColumns = { nums: new Float64Array(this.outNums), args: this.outArgs };
    if (this.outExports) tasks.exports = Array.from({ length: this.outArgs.length }, (_, i) => this.outExports![i]);
    this.outNums = [];
    this.outArgs = [];
    this.outExports = undefined;
    this.sending = true;
    // The next batch leaves one event-loop turn after this write completed: tasks put meanwhile
    // coalesce into it, while a lone task still leaves at once.
    const sent = (): void => void setImmediate(this.afterSend);

    try {
      this.proc.send({ t: 'tasks', tasks } satisfies ToChild, undefined, undefined, sent);
    } catch (err) {
      if (!this.proc.connected) return sent(); // it died: its exit event settles these tasks
      // One bad argument spoils a batch: send one by one so only the bad task fails.
      const bad: number[] = [];
      for (let i = 0, o = 0; i < tasks.args.length; i++, o += TASK_FIELDS) {
        const one: TaskColumns = { nums: tasks.nums.slice(o, o + TASK_FIELDS), args: [tasks.args[i]] };
        if (tasks.exports?.[i] !== undefined) one.exports = [tasks.exports[i]];
        try {
          this.proc.send({ t: 'tasks', tasks: one } satisfies ToChild);
        } catch {
          bad.push(one.nums[0]!);
        }
      }
      this.inflight -= bad.length;
      this.onUnsendable(this, bad, err as Error);
      sent();
    }
  }

  post(msg: ToChild, cb?: () => void): boolean {
    if (!this.proc.connected) {
      cb?.();
      return false;
    }
    try {
      return this.proc.send(msg, undefined, undefined, () => cb?.());
    } catch {
      cb?.();
      return false;
    }
  }

  /** SIGKILLs the child's whole process group (its descendants too). Idempotent. */
  killTree(): void {
    if (this.state === 'exited' || this.proc.pid === undefined) return;
    this.killGroup();
  }

  /**
   * SIGKILLs whatever is left of the child's process group. Called once more after the child
   * exited, so a grandchild its finalizer failed to close (a browser, ffmpeg) does not outlive it.
   */
  killGroup(): void {
    if (this.proc.pid === undefined) return;
    try {
      if (process.platform !== 'win32') process.kill(-this.proc.pid, 'SIGKILL');
      else this.proc.kill('SIGKILL');
    } catch {
      try {
        this.proc.kill('SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
}

/** Flags that give Node its entry code; with them a child would run the master's code, not ours. */
const ENTRY_FLAGS = new Set(['-e', '--eval', '-p', '--print', '--input-type']);

/**
 * The master's Node flags (loaders, `--conditions`, `--cpu-prof`) carry over to the children,
 * except those that name the entry code: under `node -e "..."` a child given `-e` would run the
 * master's script again instead of the child entry, and fork again, without end.
 */
export function childExecArgv(execArgv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const arg = execArgv[i]!;
    const name = arg.split('=')[0]!;
    if (ENTRY_FLAGS.has(name)) {
      if (!arg.includes('=') && name !== '-p' && name !== '--print') i++; // skip its separate value
      else if ((name === '-p' || name === '--print') && execArgv[i + 1] !== undefined && !execArgv[i + 1]!.startsWith('-')) i++;
      continue;
    }
    out.push(arg);
  }
  return out;
}
