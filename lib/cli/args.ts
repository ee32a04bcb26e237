/**
 * Argument parsing for `mpms run`. The engine flags are derived from `OPTION_SPECS` (every spec
 * with a `cli` entry), so a new setting gets its flag, its value conversion and its `--help`
 * line by being declared once in lib/options.ts.
 *
 * This module checks only the *syntax* of values (is it a number at all?); ranges and every
 * other rule stay in `resolveOptions`, and `describeConfigError` maps its messages back to flags.
 */
import { parseArgs } from 'node:util';
import { ConfigError } from '../errors.js';
import { OPTION_SPECS, resolveOptions, type MPMSOptions, type OptionSpec } from '../options.js';

/** Bad usage of the command line: printed with a hint, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
  /** Every problem found, one sentence each (the message lists them all). */
  readonly problems: string[];
  constructor(message: string, problems: string[] = [message]) {
    super(message);
    this.problems = problems;
  }

  /** One error for every problem at once: a single one as it is, several as a list. */
  static of(problems: string[]): UsageError {
    return new UsageError(problems.length === 1 ? problems[0]! : `${problems.length} problems:\n  - ${problems.join('\n  - ')}`, problems);
  }
}

/** How the progress display was asked for. */
export type ProgressMode = 'auto' | 'on' | 'off';

/** Everything `mpms run` needs, parsed and converted. */
export interface RunArgs {
  /** The worker module, as given (a path relative to cwd or a URL). */
  worker: string;
  /** Engine settings given on the command line (no `worker`); unset flags are absent. */
  engine: Omit<MPMSOptions, 'worker'>;
  /** `-` for stdin, else a file path. */
  input: string;
  /** `-` for stdout, else a file path. */
  output: string;
  progress: ProgressMode;
  /** ms between live stats lines, or undefined for none. */
  stats: number | undefined;
  /** Each output line also carries the task's `args`. */
  echoArgs: boolean;
  /** Skip input lines that already have an ok line in the --output file, and append to it. */
  resume: boolean;
  help: boolean;
}

/** Default ms between `--stats` lines. */
export const STATS_INTERVAL_MS = 1000;

type ParseOption = { type: 'string' | 'boolean'; short?: string; multiple?: boolean };

/** The specs that have a command-line flag, in declaration order. */
export const CLI_SPECS: readonly (OptionSpec & { cli: NonNullable<OptionSpec['cli']> })[] = OPTION_SPECS.filter(
  (s): s is OptionSpec & { cli: NonNullable<OptionSpec['cli']> } => s.cli !== undefined,
);

/** Flags that belong to the command line itself, not to the engine. */
const CLI_ONLY: Record<string, ParseOption & { help: string; valueName?: string }> = {
  input: { type: 'string', short: 'i', valueName: 'FILE|-', help: 'JSONL tasks, one argument list per line (default: - = stdin)' },
  output: { type: 'string', short: 'o', valueName: 'FILE|-', help: 'JSONL results, one line per task as it settles (default: - = stdout)' },
  progress: { type: 'boolean', help: 'where stderr is not a terminal, a plain progress line every second (default there: every minute)' },
  'no-progress': { type: 'boolean', help: 'never show progress' },
  stats: { type: 'boolean', help: 'print a line of live figures (done, queued, running, outcomes, tasks/s, run/wait p50/p99, threads, restarts) on stderr every second, terminal or not' },
  'stats-interval': { type: 'string', valueName: 'MS', help: 'ms between --stats lines (implies --stats; default 1000)' },
  'echo-args': { type: 'boolean', help: 'each output line also carries the task\'s "args"' },
  resume: {
    type: 'boolean',
    help: 'finish an interrupted job: skip input lines that already have an ok line in the --output FILE and append the rest to it (needs --output FILE and the same input)',
  },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

const NUM = String.raw`[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?`;
const MS_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const MIB_UNITS: Record<string, number> = { k: 1 / 1024, kib: 1 / 1024, m: 1, mib: 1, g: 1024, gib: 1024 };

function flagLabel(spec: { cli: { flag: string; short?: string } }): string {
  return spec.cli.short ? `--${spec.cli.flag} (-${spec.cli.short})` : `--${spec.cli.flag}`;
}

function parseOptionFor(spec: OptionSpec): ParseOption {
  const base: ParseOption = spec.kind === 'boolean' ? { type: 'boolean' } : spec.kind === 'string[]' ? { type: 'string', multiple: true } : { type: 'string' };
  if (spec.cli?.short) base.short = spec.cli.short;
  return base;
}

/**
 * Converts one flag's text to the setting's value. Only the syntax is checked here, so that
 * e.g. `-p 0` reaches `resolveOptions` and fails there with the same rule the API uses.
 * @throws UsageError naming the flag and the text it got.
 */
export function convertValue(spec: OptionSpec & { cli: NonNullable<OptionSpec['cli']> }, raw: string | boolean | string[]): unknown {
  const label = flagLabel(spec);
  if (typeof raw === 'boolean' || Array.isArray(raw)) return raw;
  const text = raw.trim();
  const bad = (what: string) => new UsageError(`${label} expects ${what}, got ${JSON.stringify(raw)}`);
  switch (spec.kind) {
    case 'int>=1':
    case 'int>=0': {
      if (!/^[+-]?\d+$/.test(text)) throw bad('an integer');
      const n = Number(text);
      if (!Number.isSafeInteger(n)) throw bad('an integer of a sane size');
      return n;
    }
    case 'ms':
    case 'ms>=0':
      return parseMs(label, raw);
    case 'mib': {
      const m = new RegExp(`^(${NUM})\\s*(k|kib|m|mib|g|gib)?$`, 'i').exec(text);
      if (!m) throw bad('a size in MiB (e.g. 512, or with a unit: 1.5GiB)');
      return Number(m[1]) * MIB_UNITS[(m[2] ?? 'mib').toLowerCase()]!;
    }
    case 'fraction': {
      const m = new RegExp(`^(${NUM})\\s*(%)?$`).exec(text);
      if (!m) throw bad('a fraction (e.g. 0.1, or 10%)');
      return m[2] ? Number(m[1]) / 100 : Number(m[1]);
    }
    case 'string':
    case 'module':
      if (text.length === 0) throw bad('a non-empty value');
      return raw;
    case 'object':
    case 'any':
    case 'cloneable':
      try {
        return JSON.parse(raw);
      } catch {
        throw bad('a JSON value');
      }
    default:
      // A spec whose kind has no text form was given a `cli` entry: a mistake in lib/options.ts.
      throw new Error(`internal: setting \`${spec.name}\` (kind ${spec.kind}) cannot be given on the command line`);
  }
}

/**
 * A duration: ms, or a number with a unit (1.5s, 2m, 1h). Only the syntax is checked.
 * @throws UsageError naming the flag and the text it got.
 */
function parseMs(label: string, raw: string): number {
  const m = new RegExp(`^(${NUM})\\s*(ms|s|m|h)?$`, 'i').exec(raw.trim());
  if (!m) throw new UsageError(`${label} expects a duration in ms (e.g. 1500, or with a unit: 1.5s, 2m, 1h), got ${JSON.stringify(raw)}`);
  return Number(m[1]) * MS_UNITS[(m[2] ?? 'ms').toLowerCase()]!;
}

/** Levenshtein distance, for "did you mean" on unknown flags. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

function allLongFlags(): string[] {
  return [...CLI_SPECS.map((s) => s.cli.flag), ...Object.keys(CLI_ONLY)];
}

/** Rewrites node:util parseArgs errors into short, precise messages; `flags`: the command's long flags, for "did you mean". */
export function usageFromParseError(err: unknown, flags: readonly string[] = allLongFlags()): UsageError {
  const e = err as { code?: string; message?: string };
  const msg = e.message ?? String(err);
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const m = /Unknown option '([^']+)'/.exec(msg);
    const given = m?.[1] ?? '?';
    let hint = '';
    if (given.startsWith('--')) {
      const name = given.slice(2).split('=')[0]!;
      const best = flags
        .map((f) => [f, distance(name, f)] as const)
        .sort((x, y) => x[1] - y[1])[0];
      if (best && best[1] <= Math.max(2, Math.floor(name.length / 3))) hint = ` (did you mean --${best[0]}?)`;
    }
    return new UsageError(`unknown option '${given}'${hint}`);
  }
  if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    const m = /Unexpected argument '([^']*)'/.exec(msg);
    return new UsageError(`unexpected argument '${m?.[1] ?? '?'}': mpms run takes exactly one worker module`);
  }
  // Missing values and values given to boolean flags: node's own wording is already precise.
  return new UsageError(msg.replace(/^TypeError( \[\w+\])?: /, ''));
}

/** Every option node:util parseArgs should know for `mpms run`, engine flags and CLI flags. */
function runParseOptions(): Record<string, ParseOption> {
  const options: Record<string, ParseOption> = {};
  for (const spec of CLI_SPECS) options[spec.cli.flag] = parseOptionFor(spec);
  for (const [flag, def] of Object.entries(CLI_ONLY)) {
    // A setting added to OPTION_SPECS must not silently shadow a command-line flag.
    const clash = options[flag] ? `--${flag}` : def.short && Object.values(options).some((o) => o.short === def.short) ? `-${def.short}` : undefined;
    if (clash) throw new Error(`internal: the flag ${clash} is declared twice (OPTION_SPECS and lib/cli/args.ts)`);
    const o: ParseOption = { type: def.type };
    if (def.short) o.short = def.short;
    options[flag] = o;
  }
  return options;
}

/**
 * Every unknown option in `argv` at once (strict parsing stops at the first): a lenient parse
 * lists the options it did not know. Empty when the strict error had another cause.
 */
function allUnknownOptions(argv: readonly string[], options: Record<string, ParseOption>): UsageError | undefined {
  let tokens: Array<{ kind: string; name?: string; rawName?: string }>;
  try {
    tokens = parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true }).tokens ?? [];
  } catch {
    return undefined;
  }
  const unknown = tokens.filter((t) => t.kind === 'option' && t.name !== undefined && !(t.name in options) && !Object.values(options).some((o) => o.short === t.name));
  if (unknown.length < 2) return undefined;
  return UsageError.of(unknown.map((t) => usageFromParseError({ code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION', message: `Unknown option '${t.rawName}'` }).message));
}

/** Where a problem's flag appears in `argv` (so problems are listed in the order they were typed). */
function flagPosition(argv: readonly string[], problem: string): number {
  const m = /--([a-z][a-z-]*)(?: \(-(\w)\))?/.exec(problem);
  if (!m) return argv.length;
  const i = argv.findIndex((a) => a === `--${m[1]}` || a.startsWith(`--${m[1]}=`) || (m[2] !== undefined && a.startsWith(`-${m[2]}`)));
  return i < 0 ? argv.length : i;
}

/**
 * Converts the engine flags, then checks their ranges with the same rules as the API
 * (`resolveOptions`), collecting every problem instead of stopping at the first.
 */
function engineFlags(values: Record<string, string | boolean | string[] | undefined>, worker: string, problems: string[]): Record<string, unknown> {
  const engine: Record<string, unknown> = {};
  for (const spec of CLI_SPECS) {
    const raw = values[spec.cli.flag];
    if (raw === undefined) continue;
    try {
      engine[spec.name] = convertValue(spec, raw);
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      problems.push(err.message);
    }
  }
  try {
    resolveOptions({ ...engine, worker: worker || 'worker.mjs' });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems.push(...describeConfigError(err, true).split('\n'));
  }
  return engine;
}

/**
 * Parses the arguments that follow `mpms run`.
 * @throws UsageError for unknown flags, malformed or out-of-range values, a missing or extra
 * worker argument — every problem at once (`problems`), in the order the flags were given.
 */
export function parseRunArgs(argv: readonly string[]): RunArgs {
  const options = runParseOptions();
  let parsed: ReturnType<typeof parseArgs>;
  try {
    // strict: an unknown or misspelled flag must fail loudly, not be ignored.
    parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: true });
  } catch (err) {
    throw allUnknownOptions(argv, options) ?? usageFromParseError(err);
  }
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  const help = values.help === true;
  const problems: string[] = [];
  if (values.progress && values['no-progress']) problems.push('--progress and --no-progress contradict each other; give one');
  const progress: ProgressMode = values.progress ? 'on' : values['no-progress'] ? 'off' : 'auto';

  let stats: number | undefined;
  if (typeof values['stats-interval'] === 'string') {
    try {
      stats = parseMs('--stats-interval', values['stats-interval']);
      if (!(stats >= 10)) problems.push(`--stats-interval must be at least 10 ms, got ${JSON.stringify(values['stats-interval'])}`);
    } catch (err) {
      problems.push((err as Error).message);
    }
  } else if (values.stats) stats = STATS_INTERVAL_MS;

  const positionals = parsed.positionals;
  const engine = engineFlags(values, positionals[0] ?? '', problems);

  const input = typeof values.input === 'string' ? values.input : '-';
  const output = typeof values.output === 'string' ? values.output : '-';
  if (input.length === 0) problems.push('--input (-i) expects a file path or -, got ""');
  if (output.length === 0) problems.push('--output (-o) expects a file path or -, got ""');
  const resume = values.resume === true;
  if (resume && output === '-') problems.push('--resume needs --output FILE: the results of the earlier run are read from it, and the rest appended');

  if (!help && positionals.length === 0) problems.push('missing the worker module: mpms run <worker-module> [options]');
  if (positionals.length > 1) problems.push(`unexpected argument '${positionals[1]}': mpms run takes exactly one worker module`);
  if (problems.length > 0 && !help) {
    const order = new Map(problems.map((p, i) => [p, flagPosition(argv, p) * 1000 + i]));
    throw UsageError.of([...problems].sort((a, b) => order.get(a)! - order.get(b)!));
  }

  return {
    worker: positionals[0] ?? '',
    engine: engine as RunArgs['engine'],
    input,
    output,
    progress,
    stats,
    echoArgs: values['echo-args'] === true,
    resume,
    help,
  };
}

/**
 * Turns a `ConfigError` from the engine into text that names command-line flags instead of
 * option names (e.g. "`processes`" becomes "--processes (-p)"), so the user sees what to fix.
 */
export function describeConfigError(err: ConfigError, oneProblemPerLine = false): string {
  const byName = new Map<string, string>(CLI_SPECS.map((s) => [s.name, flagLabel(s)]));
  const fix = (p: string) => p.replace(/`([A-Za-z]+)`/g, (whole, name: string) => byName.get(name) ?? whole);
  const problems = err.problems.map(fix);
  if (oneProblemPerLine) return problems.join('\n');
  return problems.length === 1 ? problems[0]! : `${problems.length} bad settings:\n  - ${problems.join('\n  - ')}`;
}

function wrap(text: string, width: number, indent: number): string {
  const words = text.split(/\s+/);
  const lines: string[] = [];
  let line = '';
  for (const w of words) {
    if (line && line.length + 1 + w.length > width - indent) {
      lines.push(line);
      line = w;
    } else line = line ? `${line} ${w}` : w;
  }
  if (line) lines.push(line);
  return lines.join('\n' + ' '.repeat(indent));
}

const VALUE_NAMES: Partial<Record<OptionSpec['kind'], string>> = {
  'int>=1': 'N',
  'int>=0': 'N',
  ms: 'MS',
  'ms>=0': 'MS',
  mib: 'MIB',
  fraction: 'F',
  string: 'NAME',
  object: 'JSON',
  any: 'JSON',
  'string[]': 'NAME',
};

/** The `mpms run --help` text; the engine part is generated from `OPTION_SPECS`. */
export function runHelp(): string {
  const col = 34;
  const row = (left: string, text: string) => {
    const pad = left.length >= col - 2 ? `\n${' '.repeat(col)}` : ' '.repeat(col - left.length);
    return `${left}${pad}${wrap(text, 100, col)}`;
  };
  const engineRows = CLI_SPECS.map((s) => {
    const short = s.cli.short ? `-${s.cli.short}, ` : '    ';
    const value = s.kind === 'boolean' ? '' : ` <${VALUE_NAMES[s.kind] ?? 'VALUE'}>`;
    return row(`  ${short}--${s.cli.flag}${value}`, `${s.description} (default: ${s.defaultText})`);
  });
  const cliRows = Object.entries(CLI_ONLY).map(([flag, def]) => {
    const short = def.short ? `-${def.short}, ` : '    ';
    const value = def.valueName ? ` <${def.valueName}>` : '';
    return row(`  ${short}--${flag}${value}`, def.help);
  });
  return [
    'Usage: mpms run <worker-module> [options]',
    '',
    'Runs the default export (or --export) of <worker-module> once per input line, in child',
    'processes x worker threads. Each input line is JSON: an array is the argument list, any',
    'other value is the single argument; blank lines are skipped. Each output line is',
    '{"line","taskId","status","result"|"error","runMs"}, written as tasks settle: "line" is the',
    'input line number, "taskId" counts accepted lines from 1. An error keeps its name, message',
    'and own fields (code...). Values JSON has no form for are one-key objects naming their type:',
    '{"$bigint":"1"}, {"$map":[...]}, {"$set":[...]}, {"$bytes":"<base64>"}... (docs/guide.md).',
    '',
    'Input and output:',
    ...cliRows,
    '',
    'Engine (durations take ms or a unit: 500ms, 1.5s, 2m):',
    ...engineRows,
    '',
    'Exit status: 0 when the whole input ran and every task is ok; 1 when any task is not ok,',
    'an input line is not valid JSON, or the run was interrupted; 2 on bad usage.',
    'SIGINT/SIGTERM: stop reading input, cancel the tasks that have not started, let running ones',
    'finish (up to 10 s); a second signal stops at once. Then run the same command again with',
    '--resume to finish the job.',
  ].join('\n');
}
