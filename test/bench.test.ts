// The benchmark suite must keep running: `mpms bench` from a checkout runs one small workload end
// to end (a real engine in an isolated, bounded process) and prints its report. Only that it
// runs and reports is checked here; figures are for bench/, never asserted in tests.
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));

describe('mpms bench', () => {
  it('runs a workload of the suite and prints its report and the targets it checks', async () => {
    const child = spawn(process.execPath, [CLI, 'bench', '--quick', '--reps', '1', '--only', 'recovery'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const code = await new Promise((resolve) => child.on('exit', resolve));
    expect(code, err).toBe(0);
    expect(out).toContain('## Recovery after a child is SIGKILLed');
    expect(out).toMatch(/\| SIGKILLed child → tasks settled \+ replacement ready \| ≤ 500 ms \| [\d.]+ \| (met|\*\*missed\*\*) \|/);
    expect(err).toContain('suite finished');
  }, 60_000);
});
