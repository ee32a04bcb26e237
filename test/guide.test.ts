/**
 * docs/guide.md cannot rot: every `js` snippet is parsed, and the complete programs in it
 * (`// main*.mjs`, with the modules they import written next to them) are run and their output
 * checked, against the built package linked as `mpms`.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { guardChildren } from './helpers.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const guide = fs.readFileSync(path.join(ROOT, 'docs/guide.md'), 'utf8');

/** The `js` blocks, each with the file name its first line gives (`// name.mjs`), if any. */
const blocks = [...guide.matchAll(/```js\n([\s\S]*?)```/g)].map((m, i) => {
  const code = m[1]!;
  const named = /^\/\/ ([\w-]+\.mjs)\n/.exec(code);
  return { name: named ? named[1]! : `snippet-${i}.mjs`, code };
});

/** What each program must print (stdout), beyond exiting 0. */
const EXPECT: Record<string, RegExp> = {
  'main.mjs': /total: 20,\s+ok: 20,/,
  'main-iter.mjs': /^50 ok of 50$/m,
  'main-failures.mjs': /^1 1 1 1 \| fine \| RangeError E_RANGE \| thread exit 3 \| 1000$/m,
  'main-hooks.mjs': /^12 ok; threads retired after their lifecycle: \d+$/m,
  'main-testing.mjs': /^1 1 1$/m,
};

guardChildren();

describe('docs/guide.md', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mpms-guide-'));
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'mpms'), 'dir');
  for (const b of blocks) fs.writeFileSync(path.join(dir, b.name), b.code);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('has its programs and no two snippets claim the same file', () => {
    const names = blocks.map((b) => b.name);
    expect(new Set(names).size).toBe(names.length);
    for (const name of Object.keys(EXPECT)) expect(names).toContain(name);
    expect(names.filter((n) => n.startsWith('main')).sort()).toEqual(Object.keys(EXPECT).sort());
  });

  it('every js snippet parses as an ES module', async () => {
    for (const b of blocks) {
      await expect(promisify(execFile)(process.execPath, ['--check', path.join(dir, b.name)]), b.name).resolves.toBeDefined();
    }
  });

  for (const [name, expected] of Object.entries(EXPECT)) {
    it(`${name} runs and prints what the guide says`, { timeout: 30_000 }, async () => {
      const proc = spawn(process.execPath, [name], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      proc.stdout.on('data', (d) => (out += d));
      proc.stderr.on('data', (d) => (err += d));
      const timer = setTimeout(() => proc.kill('SIGKILL'), 25_000);
      const code = await new Promise<number | null>((resolve) => proc.on('exit', resolve));
      clearTimeout(timer);
      expect(code, `${out}\n${err}`).toBe(0);
      expect(out, err).toMatch(expected);
    });
  }
});
