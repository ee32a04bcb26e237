/**
 * The one argument parser of the `mpms` commands. A command is a list of settings
 * (lib/cli/flags.ts); this turns a command line into their values, reporting every problem at
 * once — unknown flags (with "did you mean"), values of the wrong form, values out of range,
 * a missing or extra argument — in the order they were typed. The ranges are the settings'
 * own rules (lib/settings.ts), the ones the API checks: `-p 0` fails with the words
 * `new MPMS({ processes: 0 })` uses, naming the flag instead of the option.
 */
import { parseArgs } from 'node:util';
import type { ConfigError } from '../errors.js';
import { settingProblems, type Setting } from '../settings.js';
import type { Command, Flag } from './flags.js';

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
    return new UsageError(
      problems.length === 1 ? problems[0]! : `${problems.length} problems:\n  - ${problems.join('\n  - ')}`,
      problems,
    );
  }
}

/** A command line after parsing: values by setting name (only what was given), and the arguments. */
export interface ParsedLine {
  given: Record<string, unknown>;
  positionals: string[];
  /** Every problem, not yet ordered (`fail` orders them). */
  problems: string[];
}

type Raw = string | boolean | string[];

const NUM = String.raw`[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?`;
const MS_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const MIB_UNITS: Record<string, number> = { k: 1 / 1024, kib: 1 / 1024, m: 1, mib: 1, g: 1024, gib: 1024 };

/** `--processes (-p)`: how problems name a flag. */
export function flagLabel(spec: { cli: { flag: string; short?: string } }): string {
  return spec.cli.short ? `--${spec.cli.flag} (-${spec.cli.short})` : `--${spec.cli.flag}`;
}

/** A number with an optional unit, scaled; undefined when the text is not one. */
function withUnit(text: string, units: Record<string, number>, unit: string): number | undefined {
  const m = new RegExp(`^(${NUM})\\s*(${Object.keys(units).join('|')})?$`, 'i').exec(text);
  return m ? Number(m[1]) * units[(m[2] ?? unit).toLowerCase()]! : undefined;
}

/** Each text kind: its conversion (undefined: not of that form) and what it expects, for the message. */
const CONVERT: Partial<Record<Setting['kind'], [(text: string) => unknown, string]>> = {
  'int>=1': [(t) => (/^[+-]?\d+$/.test(t) && Number.isSafeInteger(Number(t)) ? Number(t) : undefined), 'an integer'],
  ms: [(t) => withUnit(t, MS_UNITS, 'ms'), 'a duration in ms (e.g. 1500, or with a unit: 1.5s, 2m, 1h)'],
  mib: [(t) => withUnit(t, MIB_UNITS, 'mib'), 'a size in MiB (e.g. 512, or with a unit: 1.5GiB)'],
  fraction: [(t) => withUnit(t, { '': 1, '%': 0.01 }, ''), 'a fraction (e.g. 0.1, or 10%)'],
  string: [(t) => (t.length > 0 ? t : undefined), 'a non-empty value'],
  object: [(t) => json(t), 'a JSON value'],
};
CONVERT['int>=0'] = CONVERT['int>=1'];
CONVERT['ms>=0'] = CONVERT.ms;
CONVERT.module = CONVERT.string;
CONVERT.any = CONVERT.cloneable = CONVERT.object;

function json(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * Converts one flag's text to the setting's value. Only the form is checked here; the range is
 * the setting's rule, checked after (`-p 0` is an integer, and fails as `processes: 0` does).
 * @throws UsageError naming the flag and the text it got.
 */
export function convertValue(spec: Flag, raw: Raw): unknown {
  if (typeof raw === 'boolean' || Array.isArray(raw)) return raw;
  const conversion = CONVERT[spec.kind];
  // A setting whose kind has no text form was given a flag: a mistake in its declaration.
  if (!conversion)
    throw new Error(`internal: setting \`${spec.name}\` (kind ${spec.kind}) cannot be given on the command line`);
  // A name or a path is taken as typed; a number may have spaces around it.
  const value = conversion[0](spec.kind === 'string' || spec.kind === 'module' ? (raw.trim() ? raw : '') : raw.trim());
  if (value === undefined)
    throw new UsageError(`${flagLabel(spec)} expects ${conversion[1]}, got ${JSON.stringify(raw)}`);
  return value;
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

/** "unknown option '--proceses' (did you mean --processes?)" */
function unknownOption(given: string, flags: readonly Flag[]): string {
  if (!given.startsWith('--')) return `unknown option '${given}'`;
  const name = given.slice(2).split('=')[0]!;
  const best = flags.map((f) => [f.cli.flag, distance(name, f.cli.flag)] as const).sort((x, y) => x[1] - y[1])[0];
  const near = best && best[1] <= Math.max(2, Math.floor(name.length / 3));
  return `unknown option '${given}'${near ? ` (did you mean --${best[0]}?)` : ''}`;
}

/** node:util's options for a command's flags; a flag or short form declared twice is a mistake in lib/cli/flags.ts. */
function parseOptions(
  flags: readonly Flag[],
): Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> {
  const options: ReturnType<typeof parseOptions> = {};
  const names = new Set<string>();
  const shorts = new Set<string>();
  for (const s of flags) {
    if (options[s.cli.flag] || names.has(s.name) || (s.cli.short && shorts.has(s.cli.short)))
      throw new Error(`internal: --${s.cli.flag} (${s.name}) is declared twice for one command`);
    names.add(s.name);
    options[s.cli.flag] = {
      type: s.kind === 'boolean' ? 'boolean' : 'string',
      ...(s.kind === 'string[]' ? { multiple: true } : {}),
      ...(s.cli.short ? { short: s.cli.short } : {}),
    };
    if (s.cli.short) shorts.add(s.cli.short);
  }
  return options;
}

/**
 * Splits `argv` into the raw text of each known flag and the arguments, noting every unknown
 * flag, missing value and value given to a switch. Parsed leniently and checked here, so that
 * one problem does not hide the others.
 */
function tokenize(
  argv: readonly string[],
  flags: readonly Flag[],
): { raw: Map<Flag, Raw>; seen: Set<string>; positionals: string[]; problems: string[] } {
  const options = parseOptions(flags);
  const byFlag = new Map(flags.map((f) => [f.cli.flag, f]));
  const { tokens } = parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true });
  const raw = new Map<Flag, Raw>();
  const seen = new Set<string>();
  const positionals: string[] = [];
  const problems: string[] = [];
  // An unknown flag may have taken a value: the word after it is then no argument of ours.
  let afterUnknown = false;
  for (const t of tokens) {
    if (t.kind === 'positional') {
      if (!afterUnknown) positionals.push(t.value);
      afterUnknown = false;
      continue;
    }
    afterUnknown = false;
    if (t.kind !== 'option') continue;
    const spec = byFlag.get(t.name);
    if (!spec) {
      problems.push(unknownOption(t.rawName, flags));
      afterUnknown = t.value === undefined;
      continue;
    }
    seen.add(spec.name);
    const problem = tokenProblem(spec, t.value, t.inlineValue);
    if (problem) problems.push(problem);
    else if (spec.kind === 'boolean') raw.set(spec, true);
    else if (spec.kind === 'string[]') raw.set(spec, [...((raw.get(spec) as string[] | undefined) ?? []), t.value!]);
    else raw.set(spec, t.value!);
  }
  return { raw, seen, positionals, problems };
}

/** What strict parsing would refuse in one flag's token: a switch with a value, a value missing or taken from the next flag. */
function tokenProblem(spec: Flag, value: string | undefined, inline: boolean | undefined): string | undefined {
  const label = flagLabel(spec);
  if (spec.kind === 'boolean')
    return value === undefined ? undefined : `${label} takes no value, got ${JSON.stringify(value)}`;
  if (value === undefined) return `${label} expects a value`;
  if (!inline && value.startsWith('-') && value.length > 1)
    return `${label} expects a value, got the flag ${value} (a value starting with "-": --${spec.cli.flag}=${value})`;
  return undefined;
}

/**
 * Parses a command line of `command`: every flag converted and checked by its setting's rule,
 * every problem collected. Required flags and the worker argument are checked unless `--help`.
 */
export function parseLine(argv: readonly string[], command: Command): ParsedLine {
  const { raw, seen, positionals, problems } = tokenize(argv, command.flags);
  const given: Record<string, unknown> = {};
  for (const [spec, text] of raw) {
    try {
      given[spec.name] = convertValue(spec, text);
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      problems.push(err.message);
    }
  }
  const help = given.help === true;
  // Each value by its setting's rule; a required flag only when it was not given at all (a bad one is said already).
  const toCheck = command.flags.filter((s) => s.name in given || (s.required && !help && !seen.has(s.name)));
  const checked = settingProblems(toCheck, Object.fromEntries(toCheck.map((s) => [s.name, given[s.name]])), false);
  problems.push(...checked.map((p) => namingFlags(p, command.flags)));
  if (!help && command.takesWorker && positionals.length === 0)
    problems.push(`missing the worker module: ${command.usage}`);
  const most = command.takesWorker ? 1 : 0;
  if (positionals.length > most)
    problems.push(
      `unexpected argument '${positionals[most]}': mpms ${command.name} takes ${most ? 'exactly one worker module' : 'no arguments'}`,
    );
  return { given, positionals, problems };
}

/** A problem worded for a command line: each `setting` it names becomes its flag. */
function namingFlags(problem: string, flags: readonly Flag[]): string {
  const byName = new Map<string, string>(flags.map((s) => [s.name, flagLabel(s)]));
  return problem.replace(/`([A-Za-z]+)`/g, (whole, name: string) => byName.get(name) ?? whole);
}

/** Where a problem's flag appears in `argv`, so that problems are listed in the order they were typed. */
function flagPosition(argv: readonly string[], problem: string): number {
  const m = /--([a-z][a-z-]*)(?: \(-(\w)\))?/.exec(problem);
  if (!m) return argv.length;
  const i = argv.findIndex(
    (a) => a === `--${m[1]}` || a.startsWith(`--${m[1]}=`) || (m[2] !== undefined && a.startsWith(`-${m[2]}`)),
  );
  return i < 0 ? argv.length : i;
}

/** Every problem in one `UsageError`, in the order their flags were given. */
export function usageFailure(argv: readonly string[], problems: readonly string[]): UsageError {
  const order = new Map(problems.map((p, i) => [p, flagPosition(argv, p) * 1000 + i]));
  return UsageError.of([...problems].sort((a, b) => order.get(a)! - order.get(b)!));
}

/**
 * Turns a `ConfigError` from the API into text that names command-line flags instead of
 * option names (e.g. "`processes`" becomes "--processes (-p)"), so the user sees what to fix.
 */
export function describeConfigError(err: ConfigError, command: Command): string {
  const problems = err.problems.map((p) => namingFlags(p, command.flags));
  return problems.length === 1 ? problems[0]! : `${problems.length} bad settings:\n  - ${problems.join('\n  - ')}`;
}

function wrap(text: string, width: number, indent: number): string {
  const lines: string[] = [];
  let line = '';
  for (const w of text.split(/\s+/)) {
    if (line && line.length + 1 + w.length > width - indent) {
      lines.push(line);
      line = w;
    } else line = line ? `${line} ${w}` : w;
  }
  if (line) lines.push(line);
  return lines.join(`\n${' '.repeat(indent)}`);
}

const VALUE_NAMES: Partial<Record<Setting['kind'], string>> = {
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

/** One `--help` line per flag: `  -p, --processes <N>   child processes (default: ...)`, wrapped at 100 columns. */
export function helpRows(flags: readonly Flag[]): string[] {
  const col = 34;
  return flags.map((s) => {
    const short = s.cli.short ? `-${s.cli.short}, ` : '    ';
    const value = s.kind === 'boolean' ? '' : ` <${s.cli.value ?? VALUE_NAMES[s.kind] ?? 'VALUE'}>`;
    const left = `  ${short}--${s.cli.flag}${value}`;
    const pad = left.length >= col - 2 ? `\n${' '.repeat(col)}` : ' '.repeat(col - left.length);
    const said = s.required
      ? ' (required)'
      : s.kind === 'boolean' || s.defaultText === 'none'
        ? ''
        : ` (default: ${s.defaultText})`;
    const text = s.description + said;
    return `${left}${pad}${wrap(text, 100, col)}`;
  });
}

/** A setting's value on a command line: as given, else its declared default. */
export function flagValue<T>(command: Command, given: Readonly<Record<string, unknown>>, name: string): T {
  if (given[name] !== undefined) return given[name] as T;
  const spec = command.flags.find((s) => s.name === name);
  if (!spec) throw new Error(`internal: mpms ${command.name} has no setting \`${name}\``);
  return (spec.derive ? spec.derive(given) : spec.default) as T;
}
