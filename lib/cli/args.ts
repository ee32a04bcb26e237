/**
 * The command line of `mpms run`: its flags are `RUN` (lib/cli/flags.ts: its own, and every
 * engine setting that has a flag), parsed by the one parser of lib/cli/parse.ts; what is left
 * here is what only `mpms run` decides (progress, stats, resume) and its `--help`.
 */
import type { ConfigError } from '../errors.js';
import type { MPMSOptions } from '../options.js';
import { ENGINE_FLAGS, RUN, RUN_FLAGS } from './flags.js';
import { describeConfigError as describeFor, helpRows, parseLine, usageFailure, flagValue } from './parse.js';

export { UsageError } from './parse.js';

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

/**
 * Parses the arguments that follow `mpms run`.
 * @throws UsageError for unknown flags, malformed or out-of-range values, a missing or extra
 * worker argument — every problem at once (`problems`), in the order the flags were given.
 */
export function parseRunArgs(argv: readonly string[]): RunArgs {
  const { given, positionals, problems } = parseLine(argv, RUN);
  const value = <T>(name: string) => flagValue<T>(RUN, given, name);
  const help = given.help === true;
  if (given.progress && given.noProgress) problems.push('--progress and --no-progress contradict each other; give one');
  const output = value<string>('output');
  if (given.resume && output === '-') problems.push('--resume needs --output FILE: the results of the earlier run are read from it, and the rest appended');
  if (problems.length > 0 && !help) throw usageFailure(argv, problems);
  const engine: Record<string, unknown> = {};
  for (const spec of ENGINE_FLAGS) if (given[spec.name] !== undefined) engine[spec.name] = given[spec.name];
  return {
    worker: positionals[0] ?? '',
    engine: engine as RunArgs['engine'],
    input: value('input'),
    output,
    progress: given.progress ? 'on' : given.noProgress ? 'off' : 'auto',
    stats: given.stats || given.statsInterval !== undefined ? value<number>('statsInterval') : undefined,
    echoArgs: given.echoArgs === true,
    resume: given.resume === true,
    help,
  };
}

/**
 * Turns a `ConfigError` from the engine into text that names command-line flags instead of
 * option names (e.g. "`processes`" becomes "--processes (-p)"), so the user sees what to fix.
 */
export function describeConfigError(err: ConfigError): string {
  return describeFor(err, RUN);
}

/** The `mpms run --help` text; the flags' lines are generated from their settings. */
export function runHelp(): string {
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
    ...helpRows(RUN_FLAGS),
    '',
    'Engine (durations take ms or a unit: 500ms, 1.5s, 2m):',
    ...helpRows(ENGINE_FLAGS),
    '',
    'Exit status: 0 when the whole input ran and every task is ok; 1 when any task is not ok,',
    'an input line is not valid JSON, or the run was interrupted; 2 on bad usage.',
    'SIGINT/SIGTERM: stop reading input, cancel the tasks that have not started, let running ones',
    'finish (up to 10 s); a second signal stops at once. Then run the same command again with',
    '--resume to finish the job.',
  ].join('\n');
}
