#!/usr/bin/env node
/**
 * The `mpms` command: `mpms run <worker-module> ...`, `mpms bench ...`, `--help`, `--version`.
 *
 * It sets `process.exitCode` and returns instead of calling `process.exit()`: exiting while the
 * engine's children or a pipe are still being closed would cut their cleanup short, and the
 * process ending by itself is the proof that nothing was left open.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { runCommand, usageError } from './run.js';
import { workerCommand } from './worker.js';
import { statusCommand } from './status.js';

/** Package root: this file is dist/cli/main.js (or lib/cli/main.ts), two levels down. */
const ROOT = new URL('../../', import.meta.url);

function version(): string {
  try {
    return (JSON.parse(fs.readFileSync(new URL('package.json', ROOT), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

// Names only files the npm package has (test/package.test.ts checks): docs/ ships with it.
const HELP = `Usage: mpms <command> [options]

Commands:
  run <worker-module> [options]   run the worker once per JSONL input line; JSONL results out
  worker <worker-module> --redis URL --queue NAME [options]
                                  serve a BullMQ queue for masters using bullmqTransport (docs/scale-out.md)
  status --redis URL --queue NAME show a queue's backlog, its worker engines and their rates
  bench [args]                    run the benchmark suite (from a clone of the mpms repository; --quick: < 2 min)

Options:
  -h, --help                      show this help ('mpms run --help' for the run options)
  -v, --version                   print the version

Example:
  printf '[1, 2]\\n[3, 4]\\n' | mpms run ./worker.mjs -p 2 -o results.jsonl

Documentation: docs/guide.md (the command line: docs/guide.md#the-command-line) and docs/api.md,
in the package (node_modules/mpms/docs/ where it is installed).
`;

/** Runs bench/suite.mjs in its own node process with the remaining args; resolves with its exit code. */
function bench(args: readonly string[]): Promise<number> {
  const script = fileURLToPath(new URL('bench/suite.mjs', ROOT));
  if (!fs.existsSync(script)) {
    // The npm package leaves the suite out: it needs the peer pools it compares against (dev dependencies).
    process.stderr.write(
      'mpms bench: the benchmark suite is not part of the npm package: it runs mpms against its peers\n' +
        '(tinypool, piscina, workerpool), which are development dependencies. In a clone of the mpms\n' +
        "repository: 'npm install', then 'npm run bench' (or 'npx mpms bench --quick', < 2 min).\n" +
        'Its last results are in docs/benchmarks.md of this package.\n',
    );
    return Promise.resolve(1);
  }
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: 'inherit' });
    // A terminal's Ctrl+C reaches the child by itself (same process group); a signal sent to this
    // pid alone (kill, a supervisor) must be passed on, or the child would outlive us.
    const forward = (sig: NodeJS.Signals) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(sig);
    };
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    const done = (code: number) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      resolve(code);
    };
    child.on('error', (err) => {
      process.stderr.write(`mpms bench: cannot start ${script}: ${err.message}\n`);
      done(1);
    });
    child.on('exit', (code, signal) => done(code ?? 128 + (signal ? (os.constants.signals[signal] ?? 0) : 0)));
  });
}

/**
 * Dispatches the command line and resolves with the exit code.
 * @param argv the arguments after `node main.js`
 */
export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'run':
      return runCommand(rest);
    case 'worker':
      return workerCommand(rest);
    case 'status':
      return statusCommand(rest);
    case 'bench':
      return bench(rest);
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(HELP);
      return 0;
    case '-v':
    case '--version':
      process.stdout.write(version() + '\n');
      return 0;
    case undefined:
      process.stderr.write(HELP);
      return 2;
    default:
      return usageError(
        command.startsWith('-') ? `unknown option '${command}' (give a command first: run, worker, status, bench)` : `unknown command '${command}' (commands: run, worker, status, bench)`,
        null,
      );
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`mpms: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
