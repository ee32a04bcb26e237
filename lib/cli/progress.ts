/**
 * Progress display for `mpms run`, on stderr so it never mixes with the results on stdout.
 * On a terminal: one line redrawn in place (at most 10 times a second). Elsewhere (when forced
 * with --progress): a plain line at most once a second, since `\r` makes a mess of log files.
 */

/** Where the numbers come from; read on every redraw, so they are always current. */
export interface ProgressSource {
  /** Outcomes written so far. */
  done(): number;
  /** Tasks accepted so far (grows while the input is read). */
  total(): number;
  ok(): number;
  /** Outcomes that are not ok (error, timeout, crashed, cancelled). */
  failed(): number;
  /** True while more input may come, so `total` is not final yet. */
  reading(): boolean;
}

/** What run.ts talks to, whether or not anything is displayed. */
export interface ProgressDisplay {
  start(): void;
  /** Prints a message line on stderr without tearing the bar. */
  log(message: string): void;
  /** Final redraw, ends the bar's line and clears the timer. Idempotent. */
  stop(): void;
}

const TTY_INTERVAL_MS = 100;
const PLAIN_INTERVAL_MS = 1000;
/** The rate shown is over this recent window, so it follows slow-downs instead of averaging them away. */
const RATE_WINDOW_MS = 3000;

class Sampler {
  private samples: Array<[number, number]> = [];
  constructor(private readonly startedAt: number) {}

  rate(now: number, done: number): number {
    this.samples.push([now, done]);
    while (this.samples.length > 2 && now - this.samples[1]![0] >= RATE_WINDOW_MS) this.samples.shift();
    const [t0, d0] = this.samples.length > 1 ? this.samples[0]! : [this.startedAt, 0];
    const dt = now - t0;
    return dt > 0 ? ((done - d0) * 1000) / dt : 0;
  }
}

function clock(ms: number): string {
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60));
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${mm.padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

function fmtRate(r: number): string {
  return r >= 100 ? r.toFixed(0) : r.toFixed(1);
}

class NoProgress implements ProgressDisplay {
  constructor(private readonly stream: NodeJS.WritableStream) {}
  start(): void {}
  log(message: string): void {
    this.stream.write(message + '\n');
  }
  stop(): void {}
}

class TtyProgress implements ProgressDisplay {
  private timer: NodeJS.Timeout | undefined;
  private readonly startedAt = Date.now();
  private readonly sampler = new Sampler(this.startedAt);
  private lastText = '';
  private stopped = false;
  private barWidth = 30;

  constructor(private readonly stream: NodeJS.WriteStream, private readonly src: ProgressSource) {}

  start(): void {
    this.timer = setInterval(() => this.draw(), TTY_INTERVAL_MS);
    // The display must never be what keeps the process alive.
    this.timer.unref();
    this.draw();
  }

  private render(): string {
    const now = Date.now();
    const done = this.src.done();
    const total = this.src.total();
    const rate = this.sampler.rate(now, done);
    const reading = this.src.reading();
    const counts = `${done}/${total}${reading ? '+' : ''}  ok ${this.src.ok()}  failed ${this.src.failed()}  ${fmtRate(rate)}/s  ${clock(now - this.startedAt)}`;
    const columns = this.stream.columns || 80;
    // Only ever shrinks: a bar that changes length as the numbers gain digits looks like jitter.
    this.barWidth = Math.max(0, Math.min(this.barWidth, columns - counts.length - 10));
    const barWidth = this.barWidth;
    let bar = '';
    if (barWidth >= 5) {
      const frac = total > 0 ? Math.min(1, done / total) : 0;
      const filled = Math.round(frac * barWidth);
      bar = `[${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}] `;
    }
    // One column short of the width: a line that exactly fills it wraps on some terminals.
    return `mpms ${bar}${counts}`.slice(0, columns - 1);
  }

  private draw(force = false): void {
    if (this.stopped) return;
    const text = this.render();
    if (!force && text === this.lastText) return;
    this.lastText = text;
    this.stream.write(`\r${text}\x1b[K`);
  }

  log(message: string): void {
    if (this.stopped) {
      this.stream.write(message + '\n');
      return;
    }
    this.stream.write(`\r\x1b[K${message}\n`);
    this.lastText = '';
    this.draw(true);
  }

  stop(): void {
    if (this.stopped) return;
    if (!this.timer) {
      this.stopped = true;
      return;
    }
    clearInterval(this.timer);
    this.draw(true);
    this.stopped = true;
    this.stream.write('\n');
  }
}

class PlainProgress implements ProgressDisplay {
  private timer: NodeJS.Timeout | undefined;
  private readonly startedAt = Date.now();
  private readonly sampler = new Sampler(this.startedAt);
  private lastKey = '';
  private stopped = false;

  constructor(private readonly stream: NodeJS.WritableStream, private readonly src: ProgressSource) {}

  start(): void {
    this.timer = setInterval(() => this.print(), PLAIN_INTERVAL_MS);
    this.timer.unref();
  }

  private print(): void {
    if (this.stopped) return;
    const now = Date.now();
    const done = this.src.done();
    const rate = this.sampler.rate(now, done);
    const key = `${done}/${this.src.total()}`;
    // A log that repeats the same line every second while nothing moves is noise.
    if (key === this.lastKey) return;
    this.lastKey = key;
    this.stream.write(
      `mpms progress: ${done}/${this.src.total()}${this.src.reading() ? '+' : ''} done, ${this.src.ok()} ok, ${this.src.failed()} failed, ${fmtRate(rate)}/s, ${clock(now - this.startedAt)}\n`,
    );
  }

  log(message: string): void {
    this.stream.write(message + '\n');
  }

  stop(): void {
    if (this.stopped) return;
    clearInterval(this.timer);
    this.stopped = true;
  }
}

/**
 * Picks the display. `auto` shows the bar only when stderr is a terminal and the results are not
 * being printed to that same terminal (the bar would tear every result line). `on` forces it:
 * the bar on a terminal, plain lines elsewhere. `off` shows nothing.
 */
export function createProgress(
  mode: 'auto' | 'on' | 'off',
  src: ProgressSource,
  env: { stderr: NodeJS.WriteStream; resultsOnTty: boolean } = { stderr: process.stderr, resultsOnTty: false },
): ProgressDisplay {
  const tty = env.stderr.isTTY === true;
  if (mode === 'off' || (mode === 'auto' && (!tty || env.resultsOnTty))) return new NoProgress(env.stderr);
  return tty ? new TtyProgress(env.stderr, src) : new PlainProgress(env.stderr, src);
}
