// The one parser of the mpms commands and the settings behind it: pure functions, no process.
import { describe, expect, it } from 'vitest';
import { ConfigError, OPTION_SPECS } from '../../dist/index.js';
import { parseRunArgs } from '../../dist/cli/args.js';
import { ENGINE_FLAGS, RUN, STATUS, WORKER } from '../../dist/cli/flags.js';
import { helpRows, parseLine, usageFailure, UsageError } from '../../dist/cli/parse.js';
import { parseWorkerArgs } from '../../dist/cli/worker.js';
import { SERVE_SPECS, TRANSPORT_SPECS } from '../../dist/scale-out/settings.js';
import { resolveSettings, settingProblems, settings } from '../../dist/settings.js';

/** The problems a command line is refused with (fails the test when it is accepted). */
function refused(parse: () => unknown): string[] {
  try {
    parse();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as UsageError).problems;
  }
  throw new Error('the command line was accepted');
}

describe('mpms run', () => {
  it('converts every flag by its setting and fills the command-line defaults', () => {
    const a = parseRunArgs([
      'w.mjs',
      '-p',
      '2',
      '--threads=3',
      '--task-timeout',
      '1.5s',
      '--lifecycle-memory',
      '1GiB',
      '--lifecycle-jitter',
      '10%',
      '-o',
      'out.jsonl',
    ]);
    expect(a).toMatchObject({
      worker: 'w.mjs',
      input: '-',
      output: 'out.jsonl',
      progress: 'auto',
      stats: undefined,
      echoArgs: false,
      resume: false,
      help: false,
    });
    expect(a.engine).toEqual({
      processes: 2,
      threads: 3,
      taskTimeout: 1500,
      lifecycleMemory: 1024,
      lifecycleJitter: 0.1,
    });
    expect(parseRunArgs(['w.mjs', '--stats']).stats).toBe(1000);
    expect(parseRunArgs(['w.mjs', '--stats-interval', '2s']).stats).toBe(2000);
    expect(parseRunArgs(['w.mjs', '--no-progress']).progress).toBe('off');
  });

  it('reports every problem at once, in the order the flags were typed', () => {
    const problems = refused(() =>
      parseRunArgs([
        'w.mjs',
        '--bogus',
        '-p',
        '0',
        '--threads=-1',
        '--task-timeout',
        '2x',
        '--progress',
        '--no-progress',
        'extra',
        '--input',
      ]),
    );
    expect(problems).toEqual([
      "unknown option '--bogus'",
      '--processes (-p) must be an integer >= 1, got 0',
      '--threads (-t) must be an integer >= 1, got -1',
      '--task-timeout expects a duration in ms (e.g. 1500, or with a unit: 1.5s, 2m, 1h), got "2x"',
      '--progress and --no-progress contradict each other; give one',
      '--input (-i) expects a value',
      "unexpected argument 'extra': mpms run takes exactly one worker module",
    ]);
  });

  it('says what a flag takes when it was given wrong', () => {
    expect(refused(() => parseRunArgs(['w.mjs', '--stats=yes']))).toEqual(['--stats takes no value, got "yes"']);
    expect(refused(() => parseRunArgs(['w.mjs', '--stats', 'yes']))).toEqual([
      "unexpected argument 'yes': mpms run takes exactly one worker module",
    ]);
    expect(refused(() => parseRunArgs(['w.mjs', '--threads', '--stats']))[0]).toMatch(
      /^--threads \(-t\) expects a value, got the flag --stats/,
    );
    expect(refused(() => parseRunArgs(['w.mjs', '--proceses', '2']))).toEqual([
      "unknown option '--proceses' (did you mean --processes?)",
    ]);
    expect(refused(() => parseRunArgs([]))).toEqual(['missing the worker module: mpms run <worker-module> [options]']);
    expect(refused(() => parseRunArgs(['w.mjs', '--resume']))[0]).toMatch(/^--resume needs --output FILE/);
    expect(refused(() => parseRunArgs(['w.mjs', '--stats-interval', '5']))).toEqual([
      '--stats-interval must be at least 10 ms, got 5',
    ]);
  });

  it('--help wins over every problem', () => {
    expect(parseRunArgs(['--help', '-p', '0']).help).toBe(true);
  });
});

describe('mpms worker', () => {
  it('takes durations with units on its own flags as on the engine flags (--lock-duration 30s as --task-timeout 30s)', () => {
    const a = parseWorkerArgs([
      'w.mjs',
      '--queue',
      'q',
      '--lock-duration',
      '30s',
      '--task-timeout',
      '30s',
      '--drain-timeout',
      '0',
      '--stalled-interval',
      '1.5s',
      '--prefetch',
      '64',
      '-p',
      '1',
    ]);
    expect(a.serve).toEqual({
      queue: 'q',
      lockDuration: 30_000,
      taskTimeout: 30_000,
      drainTimeout: 0,
      stalledInterval: 1500,
      prefetch: 64,
      processes: 1,
    });
    expect(a.statsMs).toBeUndefined();
    expect(parseWorkerArgs(['w.mjs', '--queue', 'q', '--stats-interval', '250ms']).statsMs).toBe(250);
    // Every serveQueue() setting with a flag is a flag of mpms worker: --prefix too, as mpms status has it.
    expect(parseWorkerArgs(['w.mjs', '--queue', 'q', '--prefix', 'p']).serve).toEqual({ queue: 'q', prefix: 'p' });
  });

  it('reports every bad flag at once, its own, the Redis ones and the engine ones alike', () => {
    const problems = refused(() =>
      parseWorkerArgs([
        'w.mjs',
        '--queue',
        'a:b',
        '--lock-duration',
        '1s',
        '--prefetch',
        '0',
        '-p',
        '0',
        '--redis',
        'http://x',
        '--bogus',
        '--metrics-port',
        '70000',
        '--fingerprint',
        'no spaces',
      ]),
    );
    expect(problems).toEqual([
      '--queue must not contain ":", got "a:b"',
      '--lock-duration must be at least 2500 ms, got 1000',
      '--prefetch must be an integer >= 1, got 0',
      '--processes (-p) must be an integer >= 1, got 0',
      '--redis must be a redis://host:port URL (or rediss:// for TLS)',
      "unknown option '--bogus'",
      '--metrics-port must be a port number (0-65535), got 70000',
      '--fingerprint must be 1-64 letters, digits or "_.+-", got "no spaces"',
    ]);
    expect(refused(() => parseWorkerArgs(['w.mjs']))).toEqual([expect.stringMatching(/^--queue is required/)]);
    expect(refused(() => parseWorkerArgs(['--queue', 'q']))).toEqual([
      expect.stringMatching(/^missing the worker module: mpms worker <worker-module>/),
    ]);
    expect(refused(() => parseWorkerArgs(['w.mjs', '--queue', 'q', '--print-systemd']))).toEqual([
      expect.stringMatching(/^--print-systemd needs the worker module as an absolute path/),
    ]);
  });
});

describe('mpms status', () => {
  it('parses its flags with the same parser, defaults from their settings', () => {
    const { given, problems } = parseLine(['--queue', 'q', '--interval', '0', '--json'], STATUS);
    expect(problems).toEqual([]);
    expect(given).toEqual({ queue: 'q', interval: 0, json: true });
    expect(parseLine(['x', '--interval=-1'], STATUS).problems).toEqual([
      expect.stringMatching(/^--queue is required/),
      '--interval must be a finite number >= 0 (milliseconds), got -1',
      "unexpected argument 'x': mpms status takes no arguments",
    ]);
  });
});

describe('every flag is a setting, checked by the rule the API uses', () => {
  it('a flag out of range is refused with the words of the API, naming the flag', () => {
    // For each numeric engine flag: the command line's problem is the API's, with the flag for the name.
    for (const spec of ENGINE_FLAGS.filter((s) => s.kind === 'int>=1' || s.kind === 'ms' || s.kind === 'mib')) {
      let api: string | undefined;
      try {
        resolveSettings(OPTION_SPECS, { worker: 'w.mjs', [spec.name]: 0 });
      } catch (err) {
        api = (err as ConfigError).problems[0];
      }
      expect(api, spec.name).toBeDefined();
      const cli = refused(() => parseRunArgs(['w.mjs', `--${spec.cli.flag}`, '0']));
      expect(cli, spec.name).toEqual([
        api!.replace(
          `\`${spec.name}\``,
          spec.cli.short ? `--${spec.cli.flag} (-${spec.cli.short})` : `--${spec.cli.flag}`,
        ),
      ]);
    }
  });

  it('no command declares a flag, a short form or a setting twice; each has help', () => {
    for (const command of [RUN, WORKER, STATUS]) {
      expect(() => parseLine([], command)).not.toThrow();
      const flags = command.flags.map((s) => s.cli.flag);
      expect(new Set(flags).size, command.name).toBe(flags.length);
      expect(helpRows(command.ownFlags)).toHaveLength(command.ownFlags.length);
    }
    // The worker engine's flags are its serveQueue() settings: one declaration for both.
    for (const spec of SERVE_SPECS.filter((s) => s.cli)) expect(WORKER.flags).toContain(spec);
  });

  it('orders problems by where their flags stand', () => {
    expect(usageFailure(['--b', '--a'], ['--a is bad', '--b is bad', 'no flag']).problems).toEqual([
      '--b is bad',
      '--a is bad',
      'no flag',
    ]);
  });
});

describe('settings', () => {
  it('fills defaults in list order: a derived default sees the settings before it', () => {
    const specs = settings([
      { name: 'a', kind: 'int>=1', default: 2, description: '' },
      {
        name: 'b',
        kind: 'int>=1',
        derive: (o: Record<string, unknown>) => (o.a as number) * 10,
        defaultText: 'a * 10',
        description: '',
      },
    ]);
    expect(resolveSettings(specs, {})).toEqual({ a: 2, b: 20 });
    expect(resolveSettings(specs, { a: 3 })).toEqual({ a: 3, b: 30 });
    expect(specs[0]!.defaultText).toBe('2');
  });

  it("checks a setting's own rule only once its kind holds; required ones are said missing", () => {
    const specs = settings([
      {
        name: 'n',
        kind: 'ms',
        required: true,
        check: (v: number) => (v >= 10 ? undefined : 'must be at least 10'),
        description: 'a duration',
      },
    ]);
    expect(settingProblems(specs, { n: 'x' })).toEqual(['`n` must be a finite number > 0 (milliseconds), got "x"']);
    expect(settingProblems(specs, { n: 5 })).toEqual(['`n` must be at least 10']);
    expect(settingProblems(specs, {})).toEqual(['`n` is required (a duration)']);
    expect(settingProblems(specs, { n: 10, z: 1 })).toEqual(['unknown setting `z`']);
    expect(settingProblems(specs, { n: 10, z: 1 }, false)).toEqual([]);
  });

  it('bullmqTransport() and serveQueue() options resolve from their declarations', () => {
    expect(resolveSettings(TRANSPORT_SPECS, { connection: 'redis://h', queue: 'q' })).toMatchObject({
      maxOutstanding: 1000,
      sweepInterval: 1000,
      prefix: 'bull',
      runId: undefined,
    });
    expect(resolveSettings(SERVE_SPECS, { connection: 'redis://h', queue: 'q' })).toMatchObject({
      lockDuration: 3000,
      stalledInterval: 1000,
      drainTimeout: 30_000,
      prefix: 'bull',
      prefetch: undefined,
    });
  });

  it('bullmqTransport() and serveQueue() throw one ConfigError listing every bad option, before touching Redis or starting a process', async () => {
    const { bullmqTransport, serveQueue } = await import('../../dist/scale-out/index.js');
    let err: unknown;
    try {
      bullmqTransport({ connection: null as never, queue: 'a:b', maxOutstanding: 0, runId: 'x y' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems).toHaveLength(4);
    const serving = serveQueue({
      worker: 'w.mjs',
      connection: 'redis://127.0.0.1:1',
      queue: '',
      lockDuration: 100,
      threads: 0,
      bogus: 1,
    } as never);
    await expect(serving).rejects.toBeInstanceOf(ConfigError);
    await expect(serving).rejects.toMatchObject({
      problems: [
        '`queue` must be a non-empty string, got ""',
        '`lockDuration` must be at least 2500 ms, got 100',
        'unknown setting `bogus`',
        '`threads` must be an integer >= 1, got 0',
      ],
    });
  });
});
