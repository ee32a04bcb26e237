/**
 * docs/guide.md and docs/migrating-from-python.md cannot rot: every `js` snippet is parsed, and
 * the complete programs in them (`// main*.mjs`, with the modules they import written next to
 * them) are run and their output checked, against the built package linked as `mpms`.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { guardChildren, runNode } from './helpers.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** What each program must print (stdout), beyond exiting 0, per document. */
const DOCS: Record<string, Record<string, RegExp>> = {
  'docs/guide.md': {
    'main.mjs': /total: 20,\s+ok: 20,/,
    'main-iter.mjs': /^50 ok of 50$/m,
    // 3^6 leaves; 1 + 3 + ... + 3^6 tasks.
    'main-crawl.mjs': /^729 leaves, 1093 tasks$/m,
    'main-failures.mjs': /^1 1 1 1 \| fine \| RangeError E_RANGE \| thread exit 3 \| 1000$/m,
    'main-hooks.mjs': /^12 ok; threads retired after their lifecycle: \d+$/m,
    'main-testing.mjs': /^1 1 1$/m,
  },
  'docs/migrating-from-python.md': {
    // 100 lines "taskId sum" in any order, each sum right (taskId i ran worker(i - 1, 1)).
    'main.mjs': new RegExp(`^(?:(?:${Array.from({ length: 100 }, (_, i) => `${i + 1} ${i + 1}`).join('|')})\n){100}$`),
  },
};

/** The `js` blocks of a document, each with the file name its first line gives (`// name.mjs`), if any. */
function blocksOf(doc: string) {
  const text = fs.readFileSync(path.join(ROOT, doc), 'utf8');
  return [...text.matchAll(/```js\n([\s\S]*?)```/g)].map((m, i) => {
    const code = m[1]!;
    const named = /^\/\/ ([\w-]+\.mjs)\n/.exec(code);
    return { name: named ? named[1]! : `snippet-${i}.mjs`, code };
  });
}

guardChildren();

for (const [doc, expectations] of Object.entries(DOCS)) {
  describe(doc, () => {
    const blocks = blocksOf(doc);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mpms-doc-'));
    fs.mkdirSync(path.join(dir, 'node_modules'));
    fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'mpms'), 'dir');
    for (const b of blocks) fs.writeFileSync(path.join(dir, b.name), b.code);
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('has its programs and no two snippets claim the same file', () => {
      const names = blocks.map((b) => b.name);
      expect(new Set(names).size).toBe(names.length);
      expect(names.filter((n) => n.startsWith('main')).sort()).toEqual(Object.keys(expectations).sort());
    });

    it('every js snippet parses as an ES module', async () => {
      for (const b of blocks) {
        await expect(promisify(execFile)(process.execPath, ['--check', path.join(dir, b.name)]), b.name).resolves.toBeDefined();
      }
    });

    for (const [name, expected] of Object.entries(expectations)) {
      it(`${name} runs and prints what the document says`, { timeout: 30_000 }, async () => {
        const { code, stdout, stderr } = await runNode([name], { cwd: dir });
        expect(code, `${stdout}\n${stderr}`).toBe(0);
        expect(stdout, stderr).toMatch(expected);
      });
    }
  });
}
