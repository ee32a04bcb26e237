/**
 * The npm package as a consumer gets it: `npm pack`, then `npm install <tarball>` into a new app,
 * offline. Then the app runs `npx mpms run`, imports mpms as ESM and requires it from CommonJS,
 * and everything the package points at — README links, source maps, the files `--help` names —
 * is checked to be in the package.
 *
 * Offline: pino (the one runtime dependency) and its own dependencies are packed from this
 * repository's node_modules, the exact versions installed here, and installed from those
 * tarballs with `--offline` and a private cache, so no registry is contacted.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { guardChildren } from './helpers.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const exec = promisify(execFile);

guardChildren();

/** The runtime dependencies of `name`, transitively, as installed in this repository. */
function runtimeTree(name: string, seen = new Set<string>()): Set<string> {
  if (seen.has(name)) return seen;
  seen.add(name);
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
  for (const dep of Object.keys(pkg.dependencies ?? {})) runtimeTree(dep, seen);
  return seen;
}

/** Runs a command to its end (bounded); never rejects: the result says how it went. */
async function run(cmd: string, args: string[], cwd: string, input?: string, env: NodeJS.ProcessEnv = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(input ?? '');
  });
}

let work: string;
let app: string;
let pkgDir: string;
let packed: string[];
let installLog: string;
/** npm, offline, with a cache of its own: nothing is fetched, nothing shared is written. */
let npmEnv: NodeJS.ProcessEnv;

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'mpms-package-'));
  app = path.join(work, 'app');
  fs.mkdirSync(app);
  npmEnv = { npm_config_cache: path.join(work, 'cache'), npm_config_offline: 'true', npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };
  // dist/ is built by `npm test`'s pretest; --ignore-scripts, so packing does not rebuild it under other test files.
  const pack = await exec('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: ROOT, env: { ...process.env, ...npmEnv } });
  const info = JSON.parse(pack.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  packed = info[0]!.files.map((f) => f.path);
  const tarball = path.join(work, info[0]!.filename);
  const deps = [...runtimeTree('pino')].map((d) => path.join(ROOT, 'node_modules', d));
  const depPack = await exec('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', path.join(work), ...deps], { cwd: work, env: { ...process.env, ...npmEnv } });
  const depTarballs = (JSON.parse(depPack.stdout) as Array<{ filename: string }>).map((d) => path.join(work, d.filename.replace(/^@/, '').replace('/', '-')));
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'consumer-app', version: '1.0.0', private: true, type: 'module' }));
  const install = await run('npm', ['install', tarball, ...depTarballs, '--no-package-lock'], app, '', npmEnv);
  installLog = install.stdout + install.stderr;
  if (install.code !== 0) throw new Error(`npm install of the tarball failed:\n${installLog}`);
  pkgDir = path.join(app, 'node_modules', 'mpms');
}, 120_000);

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('the npm package, installed into a new app', () => {
  it('installs without a warning about mpms (no install script) and carries its LICENSE', () => {
    // Warnings about the dependencies packed from node_modules here are not the consumer's
    // (from the registry they carry no install script): only mpms's own are checked.
    const about = installLog.split('\n').filter((l) => /warn/i.test(l) && /\bmpms@/.test(l));
    expect(about, installLog).toEqual([]);
    expect(fs.readFileSync(path.join(pkgDir, 'LICENSE'), 'utf8')).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} the mpms authors\n/);
    const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')) as { license: string; scripts: Record<string, string> };
    expect(pkg.license).toBe('MIT');
    for (const hook of ['preinstall', 'install', 'postinstall', 'prepare']) expect(pkg.scripts, hook).not.toHaveProperty(hook);
    // What a consumer does not need stays out.
    expect(packed.filter((f) => /^(test|bench|scripts|\.ci)\//.test(f))).toEqual([]);
  });

  it('npx mpms run works from the app', { timeout: 60_000 }, async () => {
    fs.writeFileSync(path.join(app, 'worker.mjs'), 'export default (a, b) => a + b;\n');
    const r = await run('npx', ['mpms', 'run', './worker.mjs', '-p', '1', '-t', '2'], app, '[1, 2]\n[3, 4]\n', npmEnv);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { line: number; result: number });
    expect(lines.map((l) => [l.line, l.result]).sort()).toEqual([[1, 3], [2, 7]]);
  });

  it('imports as ESM (mpms/bullmq needs its optional peers, bullmq and ioredis: not installed here)', { timeout: 60_000 }, async () => {
    const main = [
      "import { MPMS, TaskTimeoutError } from 'mpms';",
      "import { fault } from 'mpms/testing';",
      "const m = new MPMS({ worker: './worker.mjs', processes: 1, threads: 1, collector: (meta, r) => console.log(meta.status, r) });",
      'await m.start();',
      'await m.put(20, 22);',
      'await m.join();',
      'console.log(typeof TaskTimeoutError, typeof fault);',
    ].join('\n');
    fs.writeFileSync(path.join(app, 'main.mjs'), main);
    const r = await run(process.execPath, ['main.mjs'], app);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('ok 42\nfunction function\n');
  });

  it('requires from CommonJS where Node can require ES modules (20.19+, 22.12+), else imports', { timeout: 60_000 }, async () => {
    // mpms ships ESM only: require(esm) is how CommonJS loads it, and docs/guide.md says from which Node on.
    const canRequire = (process.features as { require_module?: boolean }).require_module === true;
    const main = canRequire
      ? "const { MPMS } = require('mpms'); const { fault } = require('mpms/testing'); console.log(typeof MPMS, typeof fault);"
      : "import('mpms').then(({ MPMS }) => import('mpms/testing').then(({ fault }) => console.log(typeof MPMS, typeof fault)));";
    fs.writeFileSync(path.join(app, 'main.cjs'), main);
    const r = await run(process.execPath, ['main.cjs'], app);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('function function\n');
  });

  it('README links resolve from the registry page and from node_modules/mpms, whatever the version', () => {
    // The registry page has no repository to resolve a relative link against (package.json names
    // none), so the README links to unpkg without a version (the latest package), which resolves
    // there and from an installed copy alike, and a version bump changes no link. The docs ship
    // in the package: their relative links resolve beside them.
    const docs = ['README.md', ...fs.readdirSync(path.join(pkgDir, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
    const broken: string[] = [];
    for (const doc of docs) {
      const text = fs.readFileSync(path.join(pkgDir, doc), 'utf8');
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const file = target!.split('#')[0]!;
        if (file === '' || /^https?:\/\/(?!unpkg\.com\/mpms)/.test(file)) continue;
        const inPkg = file.startsWith('https://unpkg.com/mpms') ? unpkgPath(file) : doc === 'README.md' ? undefined : path.join(path.dirname(doc), file);
        if (inPkg === undefined || !fs.existsSync(path.join(pkgDir, inPkg))) broken.push(`${doc}: ${target}`);
      }
    }
    expect(broken, 'links that do not resolve (README: https://unpkg.com/mpms/<file in the package>)').toEqual([]);
  });

  it('source maps point at files in the package', () => {
    const missing: string[] = [];
    const maps = packed.filter((f) => f.endsWith('.js.map'));
    expect(maps.length).toBeGreaterThan(10);
    for (const map of maps) {
      const { sources } = JSON.parse(fs.readFileSync(path.join(pkgDir, map), 'utf8')) as { sources: string[] };
      for (const s of sources) if (!fs.existsSync(path.resolve(pkgDir, path.dirname(map), s))) missing.push(`${map}: ${s}`);
    }
    expect(missing).toEqual([]);
  });

  it('--help names no file the package lacks, and mpms bench says how to get the suite', { timeout: 60_000 }, async () => {
    const bin = path.join(app, 'node_modules', '.bin', 'mpms');
    const help = (await run(bin, ['--help'], app)).stdout + (await run(bin, ['run', '--help'], app)).stdout;
    const named = [...help.matchAll(/\b(?:docs|dist|lib|examples|bench|test)\/[\w./-]*\w/g)].map((m) => m[0]);
    expect(named.length).toBeGreaterThan(0);
    expect(named.filter((f) => !fs.existsSync(path.join(pkgDir, f)))).toEqual([]);
    const bench = await run(bin, ['bench', '--quick'], app);
    expect(bench.code).toBe(1);
    expect(bench.stderr).toMatch(/not part of the npm package[\s\S]*clone of the mpms\s+repository/);
  });
});

/**
 * The package path an unversioned unpkg link (the latest package) points at; undefined for a
 * link pinned to a version, which the next version bump would leave stale.
 */
function unpkgPath(url: string): string | undefined {
  return /^https:\/\/unpkg\.com\/mpms\/(.+)$/.exec(url)?.[1];
}
