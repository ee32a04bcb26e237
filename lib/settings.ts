/**
 * What one setting is, declared once (as gunicorn's `Setting`): its name, kind (how it is
 * checked, and how a command line spells it), default as a value or as a function of the
 * settings before it, extra validator, CLI flag and description. The engine's settings
 * (lib/options.ts), the scale-out ones (lib/scale-out/settings.ts) and the command-line-only
 * ones (lib/cli/flags.ts) are lists of these; validation, defaults, both command lines, their
 * `--help` and the tables of docs/api.md are derived from the lists, never written again.
 */
import v8 from 'node:v8';
import { ConfigError } from './errors.js';

/** How a value is checked (and, on a command line, parsed from text). */
export type Kind =
  | 'transport'
  | 'stdout'
  | 'int>=1'
  | 'int>=0'
  | 'ms'
  | 'ms>=0'
  | 'number>=1'
  | 'statuses'
  | 'fraction'
  | 'mib'
  | 'string'
  | 'string[]'
  | 'function'
  | 'object'
  | 'boolean'
  | 'module'
  | 'any'
  | 'cloneable'
  | 'logger';

/** One setting: how it is checked, its default, and how a command line exposes it. */
export interface Setting<Name extends string = string> {
  /** The key in the options object (camelCase). */
  name: Name;
  /** How the value is checked (and, for the CLI, parsed): e.g. `'int>=1'`, `'ms'`, `'mib'`, `'fraction'`. */
  kind: Kind;
  /**
   * The default, as a value (`default`) or a function of the settings before it in its list
   * (`derive`); neither: unset. `resolveSettings` applies exactly this.
   */
  default?: unknown;
  derive?: (before: Readonly<Record<string, unknown>>) => unknown;
  /** Human text of the default, for docs and `--help`: derived from `default` unless given. */
  defaultText: string;
  /** One line for docs and `--help`. */
  description: string;
  /** Must be given (`resolveSettings` says so when it is not). */
  required?: boolean;
  /** A rule beyond the kind's, checked once the kind's holds: the problem, or undefined. */
  check?: (value: never) => string | undefined;
  /** CLI flag (long form) when the setting makes sense on the command line; `value`: its placeholder in `--help`. */
  cli?: { flag: string; short?: string; value?: string };
}

/** A setting as written in a list: `defaultText` only where the default is not a plain value. */
export type SettingInput<Name extends string = string> = Omit<Setting<Name>, 'defaultText'> & { defaultText?: string };

/** A list of settings with each `defaultText` filled in from its `default` where not written. */
export function settings<Name extends string>(specs: SettingInput<Name>[]): Setting<Name>[] {
  return specs.map((s) => ({ ...s, defaultText: s.defaultText ?? showDefault(s.default) }));
}

/** A default as the docs show it: `'mpms'`, `2`, `['WorkerGracefulDie']`, `{}`. */
function showDefault(value: unknown): string {
  if (value === undefined) return 'none';
  return JSON.stringify(value).replaceAll('"', "'");
}

/** Each user gets its own copy of an array or object default (a user may mutate the resolved options). */
function fresh(value: unknown): unknown {
  if (Array.isArray(value)) return [...value];
  if (value !== null && typeof value === 'object') return { ...value };
  return value;
}

/** A value as a problem names it: `"x"`, `3`, `a function`, `an object`. */
export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'an object';
  return String(value);
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object';
const hasMethods = (v: unknown, ...names: string[]) => isObject(v) && names.every((n) => typeof v[n] === 'function');

/** The kinds whose rule is one test and one wording. */
const SIMPLE: Partial<Record<Kind, [(v: unknown) => boolean, string]>> = {
  'int>=1': [(v) => Number.isInteger(v) && (v as number) >= 1, 'an integer >= 1'],
  'int>=0': [(v) => Number.isInteger(v) && (v as number) >= 0, 'an integer >= 0'],
  ms: [(v) => typeof v === 'number' && Number.isFinite(v) && v > 0, 'a finite number > 0 (milliseconds)'],
  'ms>=0': [(v) => typeof v === 'number' && Number.isFinite(v) && v >= 0, 'a finite number >= 0 (milliseconds)'],
  'number>=1': [(v) => typeof v === 'number' && Number.isFinite(v) && v >= 1, 'a finite number >= 1'],
  statuses: [
    (v) => Array.isArray(v) && v.every((x) => x === 'crashed' || x === 'timeout' || x === 'error'),
    "an array of 'crashed' | 'timeout' | 'error'",
  ],
  mib: [(v) => typeof v === 'number' && Number.isFinite(v) && v > 0, 'a finite number > 0 (MiB)'],
  fraction: [(v) => typeof v === 'number' && v >= 0 && v < 1, 'a number in [0, 1)'],
  string: [(v) => typeof v === 'string' && v.length > 0, 'a non-empty string'],
  'string[]': [(v) => Array.isArray(v) && v.every((x) => typeof x === 'string'), 'an array of strings'],
  function: [(v) => typeof v === 'function', 'a function'],
  object: [(v) => isObject(v) && !Array.isArray(v), 'a plain object'],
  boolean: [(v) => typeof v === 'boolean', 'a boolean'],
  module: [(v) => (typeof v === 'string' && v.length > 0) || v instanceof URL, 'a module path or URL'],
  logger: [(v) => hasMethods(v, 'child', 'warn'), 'a pino logger'],
  transport: [(v) => hasMethods(v, 'start', 'send'), "a transport such as bullmqTransport(...) from 'mpms/bullmq'"],
  stdout: [(v) => v === 'inherit' || v === 'stderr', "'inherit' or 'stderr'"],
};

/** What is wrong with `value` for `spec` (its kind's rule, then its own `check`), or undefined. */
export function problemFor(spec: Pick<Setting, 'kind' | 'check'>, value: unknown): string | undefined {
  const simple = SIMPLE[spec.kind];
  if (simple && !simple[0](value)) return `must be ${simple[1]}, got ${show(value)}`;
  if (spec.kind === 'cloneable') {
    // What crosses to a child (IPC, advanced serialization) and on to its threads: checked
    // here, so a bad value fails at new MPMS() instead of as children that never become ready.
    try {
      v8.serialize(value);
    } catch (err) {
      return `cannot be sent to a child process (it must be structured-cloneable): ${(err as Error).message}`;
    }
  }
  return spec.check?.(value as never);
}

/**
 * Every problem of `input` against `specs` (unknown keys included when `strict`), one sentence
 * each naming its setting in backquotes (`describeConfigError` turns those into flags).
 */
export function settingProblems(
  specs: readonly Setting[],
  input: Readonly<Record<string, unknown>>,
  strict = true,
): string[] {
  const problems: string[] = [];
  if (strict) {
    const known = new Set(specs.map((s) => s.name));
    for (const key of Object.keys(input)) if (!known.has(key)) problems.push(`unknown setting \`${key}\``);
  }
  for (const spec of specs) {
    const value = input[spec.name];
    if (value === undefined) {
      if (spec.required) problems.push(`\`${spec.name}\` is required (${spec.description})`);
      continue;
    }
    const p = problemFor(spec, value);
    if (p) problems.push(`\`${spec.name}\` ${p}`);
  }
  return problems;
}

/**
 * Validates every setting at once and fills in every default, in list order (so a derived
 * default sees the settings before it).
 * @throws ConfigError listing every problem found, not just the first.
 */
export function resolveSettings<T>(
  specs: readonly Setting[],
  input: Readonly<Record<string, unknown>>,
  strict = true,
): T {
  const problems = settingProblems(specs, input, strict);
  if (problems.length) throw new ConfigError(problems);
  const out: Record<string, unknown> = {};
  for (const spec of specs) {
    const given = input[spec.name];
    out[spec.name] = given !== undefined ? given : spec.derive ? spec.derive(out) : fresh(spec.default);
  }
  return out as T;
}
