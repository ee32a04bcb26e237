/**
 * A worker module written in TypeScript, on a Node that strips types. Node 20 cannot; `.ci/run`
 * runs the whole suite again under Node 24, where these tests really run.
 */
import { describe, expect, it } from 'vitest';
import { MPMS } from '../dist/index.js';
import { fixture, guardChildren, runNode } from './helpers.js';

/** 'strip' or 'transform' where Node runs .ts files itself; false or undefined where it does not. */
const typescript = (process.features as { typescript?: string | false }).typescript;
const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
const strips = Boolean(typescript) || major > 23 || (major === 23 && minor >= 6);
const why = `Node ${process.versions.node} does not strip TypeScript types (needs >= 23.6, or --experimental-strip-types); .ci/run runs this under Node 24`;

/** Runs test/fixtures/ts-flag-script.mjs with these Node flags; resolves with what it printed. */
async function flagScript(flags: string[]): Promise<{ started: boolean; ok?: number; name?: string; phase?: string; message?: string }> {
  const { code, stdout, stderr } = await runNode([...flags, fixture('ts-flag-script.mjs')]);
  expect(code, stderr).toBe(0);
  return JSON.parse(stdout);
}

if (!strips) console.warn(`typescript-worker.test.ts skipped: ${why}`);

guardChildren();

describe.skipIf(!strips)(`TypeScript worker modules (${strips ? `Node ${process.versions.node}` : `skipped: ${why}`})`, () => {
  it('a .ts worker module runs in the children and threads: its hooks and task function, typed', async () => {
    const m = new MPMS({ worker: fixture('ts-worker.ts'), processes: 2, threads: 2, initArgs: { scale: 3 } });
    await m.start();
    const areas: number[] = [];
    const reading = (async () => {
      for await (const r of m.iterResults()) areas.push((r.result as { area: number }).area);
    })();
    for (let i = 1; i <= 8; i++) await m.put({ w: i, h: 1 });
    const summary = await m.join();
    await reading;
    expect(summary).toMatchObject({ total: 8, ok: 8 });
    expect(areas.sort((a, b) => a - b)).toEqual([3, 6, 9, 12, 15, 18, 21, 24]);
  });

  it('a master script written in TypeScript (node master.ts) runs a .ts worker and exits by itself', async () => {
    const { code, stdout, stderr } = await runNode([fixture('ts-master.ts')]);
    expect(code, stderr).toBe(0);
    const got = JSON.parse(stdout) as { summary: { total: number; ok: number }; areas: number[] };
    expect(got.summary).toMatchObject({ total: 6, ok: 6 });
    expect(got.areas).toEqual([20, 40, 60, 80, 100, 120]);
  });
});

describe('TypeScript worker modules: what the children inherit', () => {
  it.skipIf(!strips)('the master\'s Node flags reach the children: with stripping switched off, the .ts worker fails to load', async () => {
    expect(await flagScript([])).toEqual({ started: true, ok: 1 });
    expect(await flagScript(['--no-experimental-strip-types'])).toMatchObject({ started: false, name: 'WorkerStartError', phase: 'load' });
  });

  it.skipIf(strips)('on a Node that cannot strip types, a .ts worker fails start() in phase load, naming the file', async () => {
    const got = await flagScript([]);
    expect(got).toMatchObject({ started: false, name: 'WorkerStartError', phase: 'load' });
    expect(got.message).toMatch(/ts-worker\.ts/);
  });
});
