/**
 * Progress display for `mpms run`, on stderr so it never mixes with the results on stdout.
 * On a terminal: one line redrawn in place (at most 10 times a second), fitted to the width.
 * Elsewhere (when forced with --progress): a plain line at most once a second, since `\r`
 * makes a mess of log files.
 *
 * What it shows is what is known: with a total (an --input file, counted up front) done/total,
 * percent, a bar and an ETA; without one (stdin) done, rate and elapsed time, and no bar — a bar
 * against "lines read so far" would be full from the first second and mean nothing.
 */

/** Where the numbers come from; read on every redraw, so they are always current. */
export interface ProgressSource {
  /** Input lines finished: an outcome written, or skipped as not valid JSON. */
  done(): number;
  /** Lines this run will finish in all, once known (an --input file is counted up front); else undefined. */
  total(): number | undefined;
  ok(): number;
  /** Outcomes `error`, `timeout` or `crashed`. */
  failed(): number;
  /** Outcomes `cancelled` (a shutdown cancelled them before they started): not failures of the task. */
  cancelled(): number;
  /** Input lines skipped as not valid JSON. */
  bad(): number;
}

/** What run.ts talks to, whether or not anything is displayed. */
export interface ProgressDisplay {
  start(): void;
  /** Prints a message line on stderr without tearing the bar. */
  log(message: string): void;
  /** Final redraw, ends the bar's line and clears the timer. Idempotent. */
  stop(): void;
}

/** One reading of the numbers, as rendered. */
export interface ProgressSnapshot {
  done: number;
  total: number | undefined;
  ok: number;
  failed: number;
  cancelled: number;
  bad: number;
  /** Lines per second, recent. */
  rate: number;
  /** ms to go at the recent rate, when there is a total and a rate. */
  etaMs: number | undefined;
  elapsedMs: number;
}

const TTY_INTERVAL_MS = 100;
/** Plain lines when asked for (`--progress`). */
const PLAIN_INTERVAL_MS = 1000;
/**
 * Plain lines nobody asked for (stderr is a file or a pipe): once a minute, so a long batch
 * under nohup leaves a trace of its pace in its log, and a short run prints none.
 */
const QUIET_INTERVAL_MS = 60_000;
/** The rate shown is over this recent window, so it follows slow-downs instead of averaging them away. */
const RATE_WINDOW_MS = 3000;
/** The ETA uses a longer window: steadier, and still follows a lasting change of pace. */
const ETA_WINDOW_MS = 15_000;
/** Below this, a bar is not worth its brackets. */
const MIN_BAR = 10;

/** Recent samples of `done`, for rates over a window. */
class Sampler {
  private samples: Array<[number, number]> = [];
  constructor(private readonly startedAt: number) {}

  add(now: number, done: number): void {
    this.samples.push([now, done]);
    while (this.samples.length > 2 && now - this.samples[1]![0] >= ETA_WINDOW_MS) this.samples.shift();
  }

  /** Lines per second over the last `window` ms (or since the start, when younger). */
  rate(now: number, done: number, window: number): number {
    let [t0, d0] = [this.startedAt, 0];
    for (const [t, d] of this.samples) {
      if (now - t <= window) break;
      [t0, d0] = [t, d];
    }
    const dt = now - t0;
    return dt > 0 ? ((done - d0) * 1000) / dt : 0;
  }
}

/** Takes a snapshot from `src` at `now`, feeding `sampler`. */
function snapshot(src: ProgressSource, sampler: Sampler, startedAt: number, now: number): ProgressSnapshot {
  const done = src.done();
  const total = src.total();
  sampler.add(now, done);
  const etaRate = sampler.rate(now, done, ETA_WINDOW_MS);
  const left = total === undefined ? undefined : Math.max(0, total - done);
  const etaMs = left === undefined ? undefined : left === 0 ? 0 : etaRate > 0 ? (left / etaRate) * 1000 : undefined;
  return {
    done,
    total,
    ok: src.ok(),
    failed: src.failed(),
    cancelled: src.cancelled(),
    bad: src.bad(),
    rate: sampler.rate(now, done, RATE_WINDOW_MS),
    etaMs,
    elapsedMs: now - startedAt,
  };
}

/** `m:ss`, or `h:mm:ss` past an hour. */
export function clock(ms: number): string {
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60));
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${mm.padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

function fmtRate(r: number): string {
  return r >= 100 ? r.toFixed(0) : r.toFixed(1);
}

function percent(s: ProgressSnapshot): string {
  if (!s.total) return '100%';
  // Floor, so 100% means done and not 99.6% rounded up.
  return `${Math.floor((Math.min(s.done, s.total) * 100) / s.total)}%`;
}

/** A count in at most 6 characters when `compact`: 1234, 12.3k, 1.23M. */
function count(n: number, compact: boolean): string {
  if (!compact || n < 10_000) return String(n);
  return n < 1_000_000 ? `${(n / 1000).toFixed(1)}k` : `${(n / 1_000_000).toFixed(2)}M`;
}

/** How much a terminal line gives up to fit: elapsed time, double spacing, exact counts, long labels — in that order. */
const LEVELS = [
  { elapsed: true, sep: '  ', compact: false, short: false },
  { elapsed: false, sep: '  ', compact: false, short: false },
  { elapsed: false, sep: ' ', compact: false, short: false },
  { elapsed: false, sep: ' ', compact: true, short: false },
  { elapsed: false, sep: ' ', compact: true, short: true },
] as const;
type Level = (typeof LEVELS)[number];

/** The figures of a terminal line at one level of fitting. */
function figures(s: ProgressSnapshot, level: Level): string {
  const c = (n: number) => count(n, level.compact);
  const [failed, cancelled, elapsed] = level.short ? ['fail', 'canc', ''] : ['failed', 'cancelled', 'elapsed '];
  const out = [s.total === undefined ? `${c(s.done)} done` : `${c(s.done)}/${c(s.total)} ${percent(s)}`, `ok ${c(s.ok)}`, `${failed} ${c(s.failed)}`];
  if (s.cancelled > 0) out.push(`${cancelled} ${c(s.cancelled)}`);
  if (s.bad > 0) out.push(`bad ${c(s.bad)}`);
  out.push(`${fmtRate(s.rate)}/s`);
  if (s.total !== undefined) out.push(`ETA ${s.etaMs === undefined ? '--:--' : clock(s.etaMs)}`);
  if (level.elapsed || s.total === undefined) out.push(`${elapsed}${clock(s.elapsedMs)}`);
  return out.join(level.sep);
}

/**
 * The terminal line for `columns` columns: never wider than `columns - 1` (a line that exactly
 * fills the width wraps on some terminals). The layout — the bar's width, which figures are
 * shown and how — is decided for the widest figures the run can soon reach (every count at the
 * total, a 4-digit rate, an ETA under an hour), so it does not shift as the numbers gain digits.
 * The bar takes what the figures leave, up to `maxBar`; when the width is short the figures give
 * up elapsed time, spacing, then exact counts (12.3k) to keep a bar; then the bar goes.
 */
export function renderProgressLine(s: ProgressSnapshot, columns: number, maxBar = 40): string {
  const width = Math.max(20, columns) - 1;
  const fit = (text: string) => `mpms ${text}`.slice(0, width);
  if (s.total === undefined) {
    const level = LEVELS.find((l) => `mpms ${figures(s, l)}`.length <= width) ?? LEVELS[LEVELS.length - 1]!;
    return fit(figures(s, level));
  }
  const t = Math.max(s.total, s.done);
  const widest: ProgressSnapshot = {
    done: t,
    total: t,
    ok: t,
    failed: t,
    cancelled: s.cancelled > 0 ? t : 0,
    bad: s.bad > 0 ? t : 0,
    rate: Math.max(s.rate, 9999),
    etaMs: Math.max(s.etaMs ?? 0, 3_599_000),
    elapsedMs: Math.max(s.elapsedMs, 599_000),
  };
  // `mpms [` + bar + `] ` + figures
  const withBar = LEVELS.find((l) => 8 + MIN_BAR + figures(widest, l).length <= width);
  if (!withBar) {
    const level = LEVELS.find((l) => `mpms ${figures(widest, l)}`.length <= width) ?? LEVELS[LEVELS.length - 1]!;
    return fit(figures(s, level));
  }
  const barWidth = Math.min(maxBar, width - 8 - figures(widest, withBar).length);
  const filled = s.total > 0 ? Math.floor((Math.min(s.done, s.total) * barWidth) / s.total) : barWidth;
  return `mpms [${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}] ${figures(s, withBar)}`;
}

/** The plain line printed when stderr is not a terminal. */
export function renderPlainLine(s: ProgressSnapshot): string {
  const counts = [`${s.ok} ok`, `${s.failed} failed`];
  if (s.cancelled > 0) counts.push(`${s.cancelled} cancelled`);
  if (s.bad > 0) counts.push(`${s.bad} bad`);
  const head = s.total === undefined ? `${s.done} done` : `${s.done}/${s.total} done (${percent(s)})`;
  const eta = s.total === undefined ? '' : `, ETA ${s.etaMs === undefined ? '--:--' : clock(s.etaMs)}`;
  return `mpms progress: ${head}, ${counts.join(', ')}, ${fmtRate(s.rate)}/s${eta}, elapsed ${clock(s.elapsedMs)}`;
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
  /** Only ever shrinks for a given width: a bar that changes length as the figures gain digits looks like jitter. */
  private maxBar = 40;
  private columns = 0;

  constructor(private readonly stream: NodeJS.WriteStream, private readonly src: ProgressSource) {}

  start(): void {
    this.timer = setInterval(() => this.draw(), TTY_INTERVAL_MS);
    // The display must never be what keeps the process alive.
    this.timer.unref();
    this.draw();
  }

  private render(): string {
    const columns = this.stream.columns || 80;
    if (columns !== this.columns) [this.columns, this.maxBar] = [columns, 40];
    const line = renderProgressLine(snapshot(this.src, this.sampler, this.startedAt, Date.now()), columns, this.maxBar);
    const bar = /^mpms \[([#-]*)\]/.exec(line);
    if (bar) this.maxBar = bar[1]!.length;
    return line;
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

  constructor(
    private readonly stream: NodeJS.WritableStream,
    private readonly src: ProgressSource,
    private readonly every: number,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.print(), this.every);
    this.timer.unref();
  }

  private print(final = false): void {
    if (this.stopped) return;
    const s = snapshot(this.src, this.sampler, this.startedAt, Date.now());
    // A log that repeats the same line every second while nothing moves is noise.
    const key = `${s.done}/${s.total}`;
    if (key === this.lastKey && !final) return;
    this.lastKey = key;
    this.stream.write(renderPlainLine(s) + '\n');
  }

  log(message: string): void {
    this.stream.write(message + '\n');
  }

  stop(): void {
    if (this.stopped) return;
    clearInterval(this.timer);
    // The last word on progress, so a log shows where the run ended even if it ended between ticks
    // (when asked for; otherwise the summary that follows says it).
    if (this.timer && this.every === PLAIN_INTERVAL_MS) this.print(true);
    this.stopped = true;
  }
}

/**
 * Picks the display. `auto`: the bar when stderr is a terminal, unless the results are printed
 * to that same terminal (the bar would tear every result line); a plain line once a minute when
 * stderr is not a terminal. `on` forces it: the bar on a terminal, plain lines once a second
 * elsewhere. `off` shows nothing.
 */
export function createProgress(
  mode: 'auto' | 'on' | 'off',
  src: ProgressSource,
  env: { stderr: NodeJS.WriteStream; resultsOnTty: boolean } = { stderr: process.stderr, resultsOnTty: false },
): ProgressDisplay {
  const tty = env.stderr.isTTY === true;
  if (mode === 'off' || (mode === 'auto' && tty && env.resultsOnTty)) return new NoProgress(env.stderr);
  if (tty) return new TtyProgress(env.stderr, src);
  return new PlainProgress(env.stderr, src, mode === 'on' ? PLAIN_INTERVAL_MS : QUIET_INTERVAL_MS);
}
